/* AVX2 kernels (x86-64). Only this file is compiled for AVX2 (the pragma below), so the rest
 * of the extension stays baseline x86-64 and the dispatcher only calls in here when the CPU
 * reports AVX2. FMA is deliberately NOT enabled: a fused multiply-add rounds once where the
 * reference rounds twice, and the output must be byte-identical to the scalar kernels.
 * F16C is enabled for the float16 row loader (_mm256_cvtph_ps): dispatch.c only picks this
 * file when the CPU reports both AVX2 and F16C.
 *
 * The algorithms live in the kq_lanes_*.h files (one per kernel family, as scalar_*.c), written
 * once over the small 8-lane vector API defined here (neon.c defines the same API with NEON). */
#if defined(__x86_64__) || defined(_M_X64)

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,f16c"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC target("avx2,f16c")
#endif

#include <immintrin.h>
#include <stdint.h>

#include "kquant_internal.h"

#define KQ_ISA_SUFFIX avx2

typedef __m256 vf;  /* 8 x float */
typedef __m256i vi; /* 8 x int32 */
typedef __m256 vm;  /* 8 lane mask: all ones where true */

static inline vf vf_set1(float a) { return _mm256_set1_ps(a); }
static inline vf vf_zero(void) { return _mm256_setzero_ps(); }
static inline vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void vf_store(float *p, vf a) { _mm256_storeu_ps(p, a); }
static inline vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vf_div(vf a, vf b) { return _mm256_div_ps(a, b); }
static inline vf vf_sqrt(vf a) { return _mm256_sqrt_ps(a); }
static inline vf vf_abs(vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
/* max/min only where NaN and the sign of zero cannot matter (the result is a_i or b_i). */
static inline vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
static inline vf vf_neg(vf a) { return _mm256_xor_ps(_mm256_set1_ps(-0.0f), a); }
/* Comparisons as C writes them: ordered (false on NaN), except != (true on NaN). */
static inline vm vf_gt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
static inline vm vf_lt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
static inline vm vf_ge(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
static inline vm vf_le(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
static inline vm vf_eq(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
static inline vm vf_ne(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_NEQ_UQ); }
/* m ? a : b, lane by lane */
static inline vf vf_sel(vm m, vf a, vf b) { return _mm256_blendv_ps(b, a, m); }
static inline vm vm_and(vm a, vm b) { return _mm256_and_ps(a, b); }
static inline vm vm_or(vm a, vm b) { return _mm256_or_ps(a, b); }
static inline vm vm_andnot(vm a, vm b) { return _mm256_andnot_ps(b, a); } /* a & ~b */
static inline int vm_bits(vm m) { return _mm256_movemask_ps(m); }
static inline int vm_any(vm m) { return _mm256_movemask_ps(m) != 0; }

static inline vi vi_set1(int a) { return _mm256_set1_epi32(a); }
static inline vi vi_add(vi a, vi b) { return _mm256_add_epi32(a, b); }
static inline vi vi_sub(vi a, vi b) { return _mm256_sub_epi32(a, b); }
static inline vi vi_min(vi a, vi b) { return _mm256_min_epi32(a, b); }
static inline vi vi_max(vi a, vi b) { return _mm256_max_epi32(a, b); }
static inline vi vi_and(vi a, vi b) { return _mm256_and_si256(a, b); }
static inline vi vi_or(vi a, vi b) { return _mm256_or_si256(a, b); }
static inline vi vi_shl(vi a, int s) { return _mm256_slli_epi32(a, s); }
static inline vi vi_shr(vi a, int s) { return _mm256_srli_epi32(a, s); }
static inline vi vi_sra(vi a, int s) { return _mm256_srai_epi32(a, s); }
static inline vm vi_eq(vi a, vi b) { return _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, b)); }
static inline vm vi_gt(vi a, vi b) { return _mm256_castsi256_ps(_mm256_cmpgt_epi32(a, b)); }
static inline vi vi_sel(vm m, vi a, vi b) {
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(b), _mm256_castsi256_ps(a), m));
}
static inline vf vi_to_f(vi a) { return _mm256_cvtepi32_ps(a); }
static inline vi vf_trunc_i(vf a) { return _mm256_cvttps_epi32(a); }
static inline vf vf_round_even(vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline vf vf_trunc(vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC); }
static inline vi vf_bits(vf a) { return _mm256_castps_si256(a); }
static inline vf vi_bits(vi a) { return _mm256_castsi256_ps(a); }
static inline void vi_store(int32_t *p, vi a) { _mm256_storeu_si256((__m256i *)p, a); }

/* out[k] lane g = p[g*stride + k] for k < 8: an 8x8 transpose of 8 rows of 8 floats. */
static inline void vf_transpose8(vf *out, const float *p, int stride) {
    __m256 r[8], t[8], u[8];
    for (int g = 0; g < 8; g++) r[g] = _mm256_loadu_ps(p + (size_t)g * stride);
    for (int g = 0; g < 8; g += 2) {
        t[g] = _mm256_unpacklo_ps(r[g], r[g + 1]);
        t[g + 1] = _mm256_unpackhi_ps(r[g], r[g + 1]);
    }
    for (int h = 0; h < 8; h += 4) {
        u[h + 0] = _mm256_shuffle_ps(t[h + 0], t[h + 2], 0x44);
        u[h + 1] = _mm256_shuffle_ps(t[h + 0], t[h + 2], 0xEE);
        u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
        u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
    }
    for (int k = 0; k < 4; k++) {
        out[k] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x20);
        out[k + 4] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x31);
    }
}

/* Largest lane (all lanes finite). */
static inline float vf_hmax(vf a) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
static inline float vf_hmin(vf a) {
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

/* out lane g = largest (smallest) lane of a[g], for 8 vectors at once (all lanes finite). */
static inline __m256 hmax8_step(__m256 a, __m256 b, int is_max) {
    const __m256 lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b);
    return is_max ? _mm256_max_ps(lo, hi) : _mm256_min_ps(lo, hi);
}
static inline vf vf_hreduce8(const vf *a, int is_max) {
    const __m256 ab = hmax8_step(a[0], a[1], is_max), cd = hmax8_step(a[2], a[3], is_max);
    const __m256 ef = hmax8_step(a[4], a[5], is_max), gh = hmax8_step(a[6], a[7], is_max);
    __m256 x0 = _mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)), x1 = _mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 y0 = _mm256_shuffle_ps(ef, gh, _MM_SHUFFLE(1, 0, 1, 0)), y1 = _mm256_shuffle_ps(ef, gh, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 abcd = is_max ? _mm256_max_ps(x0, x1) : _mm256_min_ps(x0, x1);
    const __m256 efgh = is_max ? _mm256_max_ps(y0, y1) : _mm256_min_ps(y0, y1);
    x0 = _mm256_permute2f128_ps(abcd, efgh, 0x20);
    x1 = _mm256_permute2f128_ps(abcd, efgh, 0x31);
    return is_max ? _mm256_max_ps(x0, x1) : _mm256_min_ps(x0, x1);
}
static inline vf vf_hmax8(const vf *a) { return vf_hreduce8(a, 1); }
static inline vf vf_hmin8(const vf *a) { return vf_hreduce8(a, 0); }

/* Store the 8 lanes (each in 0..255 or -128..127) as 8 bytes. */
static inline void vi_store_u8(uint8_t *p, vi a) {
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    const __m128i b = _mm_packus_epi16(w, w);
    _mm_storel_epi64((__m128i *)p, b);
}
static inline void vi_store_i8(uint8_t *p, vi a) {
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    const __m128i b = _mm_packs_epi16(w, w);
    _mm_storel_epi64((__m128i *)p, b);
}

#include "kq_lanes_search.h"
#include "kq_lanes_legacy.h"
#include "kq_lanes_k.h"
#include "kq_lanes_iq4.h"

/* ---- row loaders (see kquant_internal.h) ----
 * Non-finite test on float32 bits: (bits & exponent mask) + 2^23 carries into bit 31 exactly
 * when the exponent is all ones (Inf/NaN). OR-ing that into an accumulator costs three integer
 * ops per 8 values and no branch; the sign bits are read once per row. */
static inline __m256i nonfinite_acc(__m256i acc, __m256 v) {
    const __m256i bits = _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x7f800000));
    return _mm256_or_si256(acc, _mm256_add_epi32(bits, _mm256_set1_epi32(0x00800000)));
}
static inline int acc_bad(__m256i acc) { return _mm256_movemask_ps(_mm256_castsi256_ps(acc)) != 0; }

int kq_load_f16_avx2(const uint16_t *src, float *dst, int64_t n) {
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + j)));
        const __m256 b = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + j + 8)));
        _mm256_storeu_ps(dst + j, a);
        _mm256_storeu_ps(dst + j + 8, b);
        acc0 = nonfinite_acc(acc0, a);
        acc1 = nonfinite_acc(acc1, b);
    }
    /* the last n - j values, too few for a vector: the scalar loader */
    return acc_bad(_mm256_or_si256(acc0, acc1)) | kq_load_f16_scalar(src + j, dst + j, n - j);
}

int kq_load_bf16_avx2(const uint16_t *src, float *dst, int64_t n) {
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m256i h = _mm256_loadu_si256((const __m256i *)(src + j));
        const __m256 a = _mm256_castsi256_ps(_mm256_unpacklo_epi16(_mm256_setzero_si256(), h));
        const __m256 b = _mm256_castsi256_ps(_mm256_unpackhi_epi16(_mm256_setzero_si256(), h));
        /* unpack works per 128-bit lane: a holds values 0-3 and 8-11, b holds 4-7 and 12-15 */
        _mm256_storeu_ps(dst + j, _mm256_permute2f128_ps(a, b, 0x20));
        _mm256_storeu_ps(dst + j + 8, _mm256_permute2f128_ps(a, b, 0x31));
        acc0 = nonfinite_acc(acc0, a);
        acc1 = nonfinite_acc(acc1, b);
    }
    /* the last n - j values, too few for a vector: the scalar loader */
    return acc_bad(_mm256_or_si256(acc0, acc1)) | kq_load_bf16_scalar(src + j, dst + j, n - j);
}

int kq_check_f32_avx2(const float *x, int64_t n) {
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    __m256i acc2 = _mm256_setzero_si256(), acc3 = _mm256_setzero_si256();
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        acc0 = nonfinite_acc(acc0, _mm256_loadu_ps(x + j));
        acc1 = nonfinite_acc(acc1, _mm256_loadu_ps(x + j + 8));
        acc2 = nonfinite_acc(acc2, _mm256_loadu_ps(x + j + 16));
        acc3 = nonfinite_acc(acc3, _mm256_loadu_ps(x + j + 24));
    }
    for (; j + 8 <= n; j += 8) acc0 = nonfinite_acc(acc0, _mm256_loadu_ps(x + j));
    /* the last n - j values, too few for a vector: the scalar loader */
    const __m256i acc = _mm256_or_si256(_mm256_or_si256(acc0, acc1), _mm256_or_si256(acc2, acc3));
    return acc_bad(acc) | kq_check_f32_scalar(x + j, n - j);
}

#if defined(__clang__)
#pragma clang attribute pop
#endif

#else
/* Not x86-64: nothing to build here (neon.c serves arm64). */
typedef int kq_avx2_unused;
#endif
