/* Shared helpers and the kernel contract of the k-quant library: not part of the public API.
 *
 * CONTRACT (scalar, AVX2 and NEON kernels all follow it; keep it stable):
 *
 *   void kq_quantize_row_<type>_<isa>(const float *x, uint8_t *y, int64_t n, const float *qw);
 *
 *   <type>  lowercase ggml name: q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k iq4_nl iq4_xs
 *   <isa>   scalar | avx2 | neon
 *   x       one row of n float32 values, all finite (the caller has checked)
 *   y       kq_row_size(type, n) bytes, written completely (packed GGUF blocks)
 *   n       a positive multiple of the type's block size (the caller has checked)
 *   qw      NULL, or the importance-matrix weights of this row's n columns (finite)
 *
 *   The output must be byte-identical to the scalar function (which is byte-identical to
 *   ggml_quantize_chunk). Rows are independent; a kernel keeps no state between calls and
 *   is thread-safe. No heap allocation in kernels (stack buffers sized by the block only).
 *
 * Dispatch: dispatch.c holds one table per ISA indexed by ggml type number, all generated from
 * KQ_FOR_EACH_TYPE below. So every SIMD file (avx2.c, neon.c) defines the kernel of every type;
 * one without a lane kernel yet uses KQ_LANES_USE_SCALAR(type) (kq_lanes_common.h).
 */
#ifndef KQUANT_INTERNAL_H
#define KQUANT_INTERNAL_H

/* KQ_WERROR (build_kquant.py): -Wall and -Wextra warnings are errors from here to the end of
 * the file being compiled. Every .c file of native/ includes this header before its own code,
 * so this is -Werror for native/ alone, and not for the wrapper cffi generates, which does not
 * include it (see build_kquant.py). */
#if defined(KQ_WERROR) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC diagnostic error "-Wall"
#pragma GCC diagnostic error "-Wextra"
#endif

#include <stdint.h>
#include <math.h>
#include <string.h>

#define QK_K 256
#define K_SCALE_SIZE 12

typedef void (*kq_row_fn)(const float *x, uint8_t *y, int64_t n, const float *qw);
typedef void (*kq_dequant_fn)(const uint8_t *x, float *y, int64_t n);

/* X-macro over every supported type: X(lowercase, ggml type number, block size, block bytes). */
#define KQ_FOR_EACH_TYPE(X) \
    X(q4_0, 2, 32, 18)      \
    X(q4_1, 3, 32, 20)      \
    X(q5_0, 6, 32, 22)      \
    X(q5_1, 7, 32, 24)      \
    X(q8_0, 8, 32, 34)      \
    X(q2_k, 10, 256, 84)    \
    X(q3_k, 11, 256, 110)   \
    X(q4_k, 12, 256, 144)   \
    X(q5_k, 13, 256, 176)   \
    X(q6_k, 14, 256, 210)   \
    X(iq4_nl, 20, 32, 18)   \
    X(iq4_xs, 23, 256, 136)

/* Table size: one slot per ggml type number up to the largest we support. */
#define KQ_TYPE_SLOTS 24

/* Scalar reference kernels (scalar_legacy.c, scalar_k.c, scalar_iq4.c), and their dequantizers. */
#define KQ_DECLARE_SCALAR(name, id, blk, bytes)                                                \
    void kq_quantize_row_##name##_scalar(const float *x, uint8_t *y, int64_t n, const float *qw); \
    void kq_dequantize_row_##name(const uint8_t *x, float *y, int64_t n);
KQ_FOR_EACH_TYPE(KQ_DECLARE_SCALAR)
#undef KQ_DECLARE_SCALAR

/* SIMD kernels: every SIMD file defines one for every type (see Dispatch above). */
#define KQ_DECLARE_SIMD(name, id, blk, bytes)                                                 \
    void kq_quantize_row_##name##_avx2(const float *x, uint8_t *y, int64_t n, const float *qw); \
    void kq_quantize_row_##name##_neon(const float *x, uint8_t *y, int64_t n, const float *qw);
KQ_FOR_EACH_TYPE(KQ_DECLARE_SIMD)
#undef KQ_DECLARE_SIMD

/* What the QUANTDESK_ISA value `value` (NULL: unset) selects: an enum kq_isa, or
 * KQ_ERR_ISA_UNKNOWN / KQ_ERR_ISA_UNAVAILABLE (dispatch.c; kquant.h describes the rules). Not
 * public: it lets the tests try any value without changing the process environment. */
int kq_isa_for_setting(const char *value);

/* Row loaders, one pass over the input while it is in registers: convert n values to float32
 * in dst (f16/bf16) or only look at them (f32), and return nonzero if any is NaN or Inf. The
 * dispatcher calls them right before the kernel, so no non-finite value ever reaches a kernel.
 * Conversion is exact (every f16/bf16 value is a float32), so the ISA cannot change the bytes. */
int kq_load_f16_scalar(const uint16_t *src, float *dst, int64_t n);
int kq_load_bf16_scalar(const uint16_t *src, float *dst, int64_t n);
int kq_check_f32_scalar(const float *x, int64_t n);
int kq_load_f16_avx2(const uint16_t *src, float *dst, int64_t n);
int kq_load_bf16_avx2(const uint16_t *src, float *dst, int64_t n);
int kq_check_f32_avx2(const float *x, int64_t n);
int kq_load_f16_neon(const uint16_t *src, float *dst, int64_t n);
int kq_load_bf16_neon(const uint16_t *src, float *dst, int64_t n);
int kq_check_f32_neon(const float *x, int64_t n);

/* Scale searches shared by the scalar kernels (scalar_search.c); SIMD files may call them for
 * the parts they do not vectorise. Semantics and arithmetic order follow ggml's helpers of the
 * same name (make_qx_quants, ...) AS BUILT IN THE WHEEL, which is older than llama.cpp master in
 * places: e.g. make_qkx3_quants' trial levels are clamp(nearest_int(v), 0, nmax), not master's
 * guarded `v > 0 ? nearest_int(MIN(v, nmax)) : 0`. See the comments in scalar_search.c. */
float kq_make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type, const float *qw);
float kq_make_q3_quants(int n, int nmax, const float *x, int8_t *L, int do_rmse);
float kq_make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                          float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                          int use_mad);
float kq_make_qkx3_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                          float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                          int use_mad);
float kq_make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *quant_weights);

/* Groups whose largest |x| is below this are treated as all zero (ggml's GROUP_MAX_EPS). */
#define KQ_GROUP_MAX_EPS 1e-15f

/* IQ4_NL / IQ4_XS non-linear code book (ggml's kvalues_iq4nl). */
extern const int8_t kq_iq4nl_values[16];

/* ---- numeric helpers shared by every ISA ---- */

static inline float kq_bits_to_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t kq_f32_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* IEEE fp32 -> fp16, round to nearest even; NaN becomes sign|0x7E00 (as ggml does). */
static inline uint16_t kq_fp32_to_fp16(float f) {
    const uint32_t x = kq_f32_to_bits(f);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);  /* NaN: quiet, sign kept */
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds past 65504 -> inf */
    if (ax < 0x38800000u) {                                  /* fp16 subnormal or zero */
        /* Adding 0.5 puts the fp16 subnormal grid (2^-24) on the fp32 ulp: the FPU rounds. */
        const float a = kq_bits_to_f32(ax) + 0.5f;
        return (uint16_t)(sign | (kq_f32_to_bits(a) - 0x3f000000u));
    }
    /* Re-bias the exponent (127 -> 15) and round the 13 dropped mantissa bits to even. */
    const uint32_t mant_odd = (ax >> 13) & 1u;
    return (uint16_t)(sign | ((ax + 0xc8000fffu + mant_odd) >> 13));
}

/* IEEE fp16 -> fp32 (exact). */
static inline float kq_fp16_to_fp32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t man = h & 0x3FFu;
    if (exp == 0x1F) return kq_bits_to_f32(sign | 0x7F800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return kq_bits_to_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * 0x1.0p-24f;
        return sign ? -v : v;
    }
    return kq_bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

/* bfloat16 -> fp32 (exact: the top half of the fp32 bits). */
static inline float kq_bf16_to_fp32(uint16_t h) { return kq_bits_to_f32((uint32_t)h << 16); }

/* Round to nearest, ties to even, via the 1.5*2^23 trick; valid for |f| <= 4194303. */
static inline int kq_nearest_int(float f) {
    const float val = f + 12582912.f;
    const int32_t i = (int32_t)kq_f32_to_bits(val);
    return (i & 0x007fffff) - 0x00400000;
}

/* float -> int32 truncation with x86's answer (INT32_MIN) for NaN and out-of-range values,
 * where a plain C cast would be undefined. In-range values truncate toward zero as C does. */
static inline int32_t kq_trunc_i32(float f) {
    if (!(f > -2147483648.0f && f < 2147483648.0f)) return INT32_MIN;
    return (int32_t)f;
}

/* roundf (half away from zero) -> int32 with the same out-of-range convention. */
static inline int32_t kq_round_i32(float f) {
    const float r = roundf(f);
    if (!(r > -2147483648.0f && r < 2147483648.0f)) return INT32_MIN;
    return (int32_t)r;
}

static inline int kq_clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* Sum of x[i]^2, left to right: the order every kernel's sigma^2 uses (legacy rows, K-quant
 * super-blocks, IQ4 blocks), the lane kernels' once-per-block steps included. */
static inline float kq_sum_squares(const float *x, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; ++i) s += x[i] * x[i];
    return s;
}

static inline void kq_put_u16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline uint16_t kq_get_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* ---- K-quant sub-block scales, packed and unpacked (scalar_k.c and kq_lanes_k.h) ---- */

/* Q3_K: 16 six-bit scales into 12 bytes: low nibbles in bytes 0..7, high 2-bit pairs in bytes 8..11. */
static inline void kq_q3_k_pack_scales(const int *ls, uint8_t *sc) {
    memset(sc, 0, 12);
    for (int j = 0; j < 16; ++j) {
        const int l = ls[j];
        if (j < 8) sc[j] = (uint8_t)(l & 0xF);
        else sc[j - 8] = (uint8_t)(sc[j - 8] | ((l & 0xF) << 4));
        sc[j % 4 + 8] = (uint8_t)(sc[j % 4 + 8] | ((l >> 4) << (2 * (j / 4))));
    }
}

/* Q3_K: sub-block j's signed scale (-32..31) from the 12 packed bytes. */
static inline int kq_q3_k_scale(const uint8_t *sc, int j) {
    const int lo = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
    return (lo | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

/* Q4_K/Q5_K: 8 six-bit scales ls and 8 six-bit mins lm into 12 bytes. */
static inline void kq_k4_pack_scales(const uint8_t *ls, const uint8_t *lm, uint8_t *sc) {
    for (int j = 0; j < QK_K / 32; ++j) {
        if (j < 4) {
            sc[j] = ls[j];
            sc[j + 4] = lm[j];
        } else {
            sc[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            sc[j - 4] = (uint8_t)(sc[j - 4] | ((ls[j] >> 4) << 6));
            sc[j] = (uint8_t)(sc[j] | ((lm[j] >> 4) << 6));
        }
    }
}

/* Q4_K/Q5_K: sub-block j's scale *d and min *m from the 12 packed bytes q. */
static inline void kq_k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

#endif
