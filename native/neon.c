/* NEON kernels (AArch64, where Advanced SIMD is baseline). The algorithms live in the
 * kq_lanes_*.h files (one per kernel family, as scalar_*.c), written once over an 8-lane vector
 * API; here each 8-lane vector is a pair of 128-bit NEON registers. Only plain IEEE operations
 * are used (vmulq/vaddq/vdivq/vsqrtq, never vfmaq), and the build uses -ffp-contract=off, so
 * results are bit-identical to the scalar kernels.
 *
 * Two details differ from x86 and are emulated so the lanes match kquant_internal.h:
 *   - float -> int conversion saturates on ARM; kq_trunc_i32 returns INT32_MIN out of range;
 *   - vmaxq/vminq order signed zeros; they are only used where that cannot matter. */
#if defined(__aarch64__) || defined(_M_ARM64)

#include <arm_neon.h>
#include <stdint.h>

#include "kquant_internal.h"

#define KQ_ISA_SUFFIX neon

typedef struct { float32x4_t a, b; } vf;
typedef struct { int32x4_t a, b; } vi;
typedef struct { uint32x4_t a, b; } vm;

#define VF2(expr_a, expr_b) do { vf r_; r_.a = (expr_a); r_.b = (expr_b); return r_; } while (0)
#define VI2(expr_a, expr_b) do { vi r_; r_.a = (expr_a); r_.b = (expr_b); return r_; } while (0)
#define VM2(expr_a, expr_b) do { vm r_; r_.a = (expr_a); r_.b = (expr_b); return r_; } while (0)

static inline vf vf_set1(float x) { VF2(vdupq_n_f32(x), vdupq_n_f32(x)); }
static inline vf vf_zero(void) { return vf_set1(0.0f); }
static inline vf vf_load(const float *p) { VF2(vld1q_f32(p), vld1q_f32(p + 4)); }
static inline void vf_store(float *p, vf x) { vst1q_f32(p, x.a); vst1q_f32(p + 4, x.b); }
static inline vf vf_add(vf x, vf y) { VF2(vaddq_f32(x.a, y.a), vaddq_f32(x.b, y.b)); }
static inline vf vf_sub(vf x, vf y) { VF2(vsubq_f32(x.a, y.a), vsubq_f32(x.b, y.b)); }
static inline vf vf_mul(vf x, vf y) { VF2(vmulq_f32(x.a, y.a), vmulq_f32(x.b, y.b)); }
static inline vf vf_div(vf x, vf y) { VF2(vdivq_f32(x.a, y.a), vdivq_f32(x.b, y.b)); }
static inline vf vf_sqrt(vf x) { VF2(vsqrtq_f32(x.a), vsqrtq_f32(x.b)); }
static inline vf vf_abs(vf x) { VF2(vabsq_f32(x.a), vabsq_f32(x.b)); }
static inline vf vf_neg(vf x) { VF2(vnegq_f32(x.a), vnegq_f32(x.b)); }
/* max/min only where NaN and the sign of zero cannot matter */
static inline vf vf_max(vf x, vf y) { VF2(vmaxq_f32(x.a, y.a), vmaxq_f32(x.b, y.b)); }
static inline vf vf_min(vf x, vf y) { VF2(vminq_f32(x.a, y.a), vminq_f32(x.b, y.b)); }
/* comparisons as C writes them: ordered (false on NaN), except != (true on NaN) */
static inline vm vf_gt(vf x, vf y) { VM2(vcgtq_f32(x.a, y.a), vcgtq_f32(x.b, y.b)); }
static inline vm vf_lt(vf x, vf y) { VM2(vcltq_f32(x.a, y.a), vcltq_f32(x.b, y.b)); }
static inline vm vf_ge(vf x, vf y) { VM2(vcgeq_f32(x.a, y.a), vcgeq_f32(x.b, y.b)); }
static inline vm vf_le(vf x, vf y) { VM2(vcleq_f32(x.a, y.a), vcleq_f32(x.b, y.b)); }
static inline vm vf_eq(vf x, vf y) { VM2(vceqq_f32(x.a, y.a), vceqq_f32(x.b, y.b)); }
static inline vm vf_ne(vf x, vf y) { VM2(vmvnq_u32(vceqq_f32(x.a, y.a)), vmvnq_u32(vceqq_f32(x.b, y.b))); }
static inline vf vf_sel(vm m, vf x, vf y) { VF2(vbslq_f32(m.a, x.a, y.a), vbslq_f32(m.b, x.b, y.b)); }
static inline vm vm_and(vm x, vm y) { VM2(vandq_u32(x.a, y.a), vandq_u32(x.b, y.b)); }
static inline vm vm_or(vm x, vm y) { VM2(vorrq_u32(x.a, y.a), vorrq_u32(x.b, y.b)); }
static inline vm vm_andnot(vm x, vm y) { VM2(vbicq_u32(x.a, y.a), vbicq_u32(x.b, y.b)); } /* x & ~y */
static inline int vm_bits(vm m) {
    static const uint32_t w[4] = {1, 2, 4, 8};
    const uint32x4_t k = vld1q_u32(w);
    return (int)(vaddvq_u32(vandq_u32(m.a, k)) | (vaddvq_u32(vandq_u32(m.b, k)) << 4));
}
static inline int vm_any(vm m) { return vmaxvq_u32(vorrq_u32(m.a, m.b)) != 0; }

static inline vi vi_set1(int x) { VI2(vdupq_n_s32(x), vdupq_n_s32(x)); }
static inline vi vi_add(vi x, vi y) { VI2(vaddq_s32(x.a, y.a), vaddq_s32(x.b, y.b)); }
static inline vi vi_sub(vi x, vi y) { VI2(vsubq_s32(x.a, y.a), vsubq_s32(x.b, y.b)); }
static inline vi vi_min(vi x, vi y) { VI2(vminq_s32(x.a, y.a), vminq_s32(x.b, y.b)); }
static inline vi vi_max(vi x, vi y) { VI2(vmaxq_s32(x.a, y.a), vmaxq_s32(x.b, y.b)); }
static inline vi vi_and(vi x, vi y) { VI2(vandq_s32(x.a, y.a), vandq_s32(x.b, y.b)); }
static inline vi vi_or(vi x, vi y) { VI2(vorrq_s32(x.a, y.a), vorrq_s32(x.b, y.b)); }
/* shifts by a run-time count (vshlq with a negative count shifts right) */
static inline vi vi_shl(vi x, int s) { const int32x4_t c = vdupq_n_s32(s); VI2(vshlq_s32(x.a, c), vshlq_s32(x.b, c)); }
static inline vi vi_shr(vi x, int s) {
    const int32x4_t c = vdupq_n_s32(-s);
    VI2(vreinterpretq_s32_u32(vshlq_u32(vreinterpretq_u32_s32(x.a), c)),
        vreinterpretq_s32_u32(vshlq_u32(vreinterpretq_u32_s32(x.b), c)));
}
static inline vi vi_sra(vi x, int s) { const int32x4_t c = vdupq_n_s32(-s); VI2(vshlq_s32(x.a, c), vshlq_s32(x.b, c)); }
static inline vm vi_eq(vi x, vi y) { VM2(vceqq_s32(x.a, y.a), vceqq_s32(x.b, y.b)); }
static inline vm vi_gt(vi x, vi y) { VM2(vcgtq_s32(x.a, y.a), vcgtq_s32(x.b, y.b)); }
static inline vi vi_sel(vm m, vi x, vi y) { VI2(vbslq_s32(m.a, x.a, y.a), vbslq_s32(m.b, x.b, y.b)); }
static inline vf vi_to_f(vi x) { VF2(vcvtq_f32_s32(x.a), vcvtq_f32_s32(x.b)); }
/* truncate toward zero; INT32_MIN when out of range or NaN (x86's and kq_trunc_i32's rule) */
static inline int32x4_t trunc_i_1(float32x4_t x) {
    const uint32x4_t ok = vandq_u32(vcgtq_f32(x, vdupq_n_f32(-2147483648.0f)), vcltq_f32(x, vdupq_n_f32(2147483648.0f)));
    return vbslq_s32(ok, vcvtq_s32_f32(x), vdupq_n_s32(INT32_MIN));
}
static inline vi vf_trunc_i(vf x) { VI2(trunc_i_1(x.a), trunc_i_1(x.b)); }
static inline vf vf_round_even(vf x) { VF2(vrndnq_f32(x.a), vrndnq_f32(x.b)); }
static inline vf vf_trunc(vf x) { VF2(vrndq_f32(x.a), vrndq_f32(x.b)); }
static inline vi vf_bits(vf x) { VI2(vreinterpretq_s32_f32(x.a), vreinterpretq_s32_f32(x.b)); }
static inline vf vi_bits(vi x) { VF2(vreinterpretq_f32_s32(x.a), vreinterpretq_f32_s32(x.b)); }
static inline void vi_store(int32_t *p, vi x) { vst1q_s32(p, x.a); vst1q_s32(p + 4, x.b); }

/* out[k] lane g = p[g*stride + k] for k < 8: four 4x4 transposes. */
static inline void transpose4(float32x4_t *o, const float *p, int stride) {
    const float32x4x2_t t01 = vtrnq_f32(vld1q_f32(p), vld1q_f32(p + stride));
    const float32x4x2_t t23 = vtrnq_f32(vld1q_f32(p + 2 * (size_t)stride), vld1q_f32(p + 3 * (size_t)stride));
    o[0] = vcombine_f32(vget_low_f32(t01.val[0]), vget_low_f32(t23.val[0]));
    o[1] = vcombine_f32(vget_low_f32(t01.val[1]), vget_low_f32(t23.val[1]));
    o[2] = vcombine_f32(vget_high_f32(t01.val[0]), vget_high_f32(t23.val[0]));
    o[3] = vcombine_f32(vget_high_f32(t01.val[1]), vget_high_f32(t23.val[1]));
}
static inline void vf_transpose8(vf *out, const float *p, int stride) {
    float32x4_t lo[8], hi[8]; /* groups 0-3 and 4-7, elements 0-3 then 4-7 */
    transpose4(lo, p, stride);
    transpose4(lo + 4, p + 4, stride);
    transpose4(hi, p + 4 * (size_t)stride, stride);
    transpose4(hi + 4, p + 4 * (size_t)stride + 4, stride);
    for (int k = 0; k < 8; k++) {
        out[k].a = lo[k];
        out[k].b = hi[k];
    }
}

static inline float vf_hmax(vf x) { return vmaxvq_f32(vmaxq_f32(x.a, x.b)); }
static inline float vf_hmin(vf x) { return vminvq_f32(vminq_f32(x.a, x.b)); }

/* out lane g = largest (smallest) lane of a[g], for 8 vectors at once */
static inline vf vf_hmax8(const vf *a) {
    float32x4_t m[8];
    for (int g = 0; g < 8; g++) m[g] = vmaxq_f32(a[g].a, a[g].b);
    vf r;
    r.a = vpmaxq_f32(vpmaxq_f32(m[0], m[1]), vpmaxq_f32(m[2], m[3]));
    r.b = vpmaxq_f32(vpmaxq_f32(m[4], m[5]), vpmaxq_f32(m[6], m[7]));
    return r;
}
static inline vf vf_hmin8(const vf *a) {
    float32x4_t m[8];
    for (int g = 0; g < 8; g++) m[g] = vminq_f32(a[g].a, a[g].b);
    vf r;
    r.a = vpminq_f32(vpminq_f32(m[0], m[1]), vpminq_f32(m[2], m[3]));
    r.b = vpminq_f32(vpminq_f32(m[4], m[5]), vpminq_f32(m[6], m[7]));
    return r;
}

static inline void vi_store_u8(uint8_t *p, vi x) {
    const int16x8_t w = vcombine_s16(vqmovn_s32(x.a), vqmovn_s32(x.b));
    vst1_u8(p, vqmovun_s16(w));
}
static inline void vi_store_i8(uint8_t *p, vi x) {
    const int16x8_t w = vcombine_s16(vqmovn_s32(x.a), vqmovn_s32(x.b));
    vst1_s8((int8_t *)p, vqmovn_s16(w));
}

#undef VF2
#undef VI2
#undef VM2

#include "kq_lanes_search.h"
#include "kq_lanes_legacy.h"
#include "kq_lanes_k.h"
#include "kq_lanes_iq4.h"

/* ---- row loaders (see kquant_internal.h) ----
 * Non-finite test on float32 bits: (bits & exponent mask) + 2^23 carries into bit 31 exactly
 * when the exponent is all ones (Inf/NaN); OR-ed into an accumulator, read once per row. */
static inline uint32x4_t nonfinite_acc(uint32x4_t acc, float32x4_t v) {
    const uint32x4_t bits = vandq_u32(vreinterpretq_u32_f32(v), vdupq_n_u32(0x7f800000u));
    return vorrq_u32(acc, vaddq_u32(bits, vdupq_n_u32(0x00800000u)));
}
static inline int acc_bad(uint32x4_t acc) { return (vmaxvq_u32(acc) >> 31) != 0; }

int kq_load_f16_neon(const uint16_t *src, float *dst, int64_t n) {
    uint32x4_t acc0 = vdupq_n_u32(0), acc1 = vdupq_n_u32(0);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const uint16x8_t h = vld1q_u16(src + j);
        const float32x4_t a = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h)));
        const float32x4_t b = vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h)));
        vst1q_f32(dst + j, a);
        vst1q_f32(dst + j + 4, b);
        acc0 = nonfinite_acc(acc0, a);
        acc1 = nonfinite_acc(acc1, b);
    }
    /* the last n - j values, too few for a vector: the scalar loader */
    return acc_bad(vorrq_u32(acc0, acc1)) | kq_load_f16_scalar(src + j, dst + j, n - j);
}

int kq_load_bf16_neon(const uint16_t *src, float *dst, int64_t n) {
    uint32x4_t acc0 = vdupq_n_u32(0), acc1 = vdupq_n_u32(0);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const uint16x8_t h = vld1q_u16(src + j);
        const float32x4_t a = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
        const float32x4_t b = vreinterpretq_f32_u32(vshll_n_u16(vget_high_u16(h), 16));
        vst1q_f32(dst + j, a);
        vst1q_f32(dst + j + 4, b);
        acc0 = nonfinite_acc(acc0, a);
        acc1 = nonfinite_acc(acc1, b);
    }
    /* the last n - j values, too few for a vector: the scalar loader */
    return acc_bad(vorrq_u32(acc0, acc1)) | kq_load_bf16_scalar(src + j, dst + j, n - j);
}

int kq_check_f32_neon(const float *x, int64_t n) {
    uint32x4_t acc0 = vdupq_n_u32(0), acc1 = vdupq_n_u32(0), acc2 = vdupq_n_u32(0), acc3 = vdupq_n_u32(0);
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        acc0 = nonfinite_acc(acc0, vld1q_f32(x + j));
        acc1 = nonfinite_acc(acc1, vld1q_f32(x + j + 4));
        acc2 = nonfinite_acc(acc2, vld1q_f32(x + j + 8));
        acc3 = nonfinite_acc(acc3, vld1q_f32(x + j + 12));
    }
    /* the last n - j values, too few for a vector: the scalar loader */
    return acc_bad(vorrq_u32(vorrq_u32(acc0, acc1), vorrq_u32(acc2, acc3))) | kq_check_f32_scalar(x + j, n - j);
}

#else
/* Not AArch64: nothing to build here (avx2.c serves x86-64). */
typedef int kq_neon_unused;
#endif
