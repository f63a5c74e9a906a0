/* SIMD kernels written once over an 8-lane vector API (included by avx2.c and neon.c, which
 * define vf/vi/vm and the vf_* / vi_* / vm_* helpers before including the kq_lanes_*.h files).
 *
 * The kernels are split by family as the scalar ones are: kq_lanes_search.h (scalar_search.c),
 * kq_lanes_legacy.h (scalar_legacy.c), kq_lanes_k.h (scalar_k.c), kq_lanes_iq4.h (scalar_iq4.c).
 * This header holds what more than one of them uses.
 *
 * HOW THESE STAY BYTE-IDENTICAL TO THE SCALAR KERNELS
 * The scalar searches (scalar_search.c) are serial: every sum runs left to right over the
 * weights of ONE group. Here each of the 8 lanes runs that same serial computation for its own
 * group (a sub-block of a super-block, or a block of a row): lane g of x[i] is element i of
 * group g. Every operation is the same IEEE operation in the same order (no FMA, no
 * reassociation), "if (a < b) c = d" becomes a lane-wise compare and select, and a divide stays
 * a divide. Only exact operations (max/min searches, integer packing) are vectorised along a
 * group. Anything that runs once per super-block (choosing the super-block scale) stays scalar
 * and mirrors scalar_k.c line by line.
 */
#ifndef KQ_LANES_COMMON_H
#define KQ_LANES_COMMON_H

#include <math.h>
#include <string.h>

#include "kq_compiler.h"

#define KQ_CAT2(a, b) a##b
#define KQ_CAT(a, b) KQ_CAT2(a, b)
#define KQ_FN(type) KQ_CAT(KQ_CAT(kq_quantize_row_, type), KQ_CAT(_, KQ_ISA_SUFFIX))

/* dispatch.c's tables hold this ISA's kernel for every type of KQ_FOR_EACH_TYPE. A type without
 * a lane kernel yet gets its entry point from KQ_LANES_USE_SCALAR(type) (a plain call of the
 * scalar kernel), in the family's kq_lanes_*.h in place of the lane code. */
#define KQ_LANES_USE_SCALAR(type)                                                \
    void KQ_FN(type)(const float *x, uint8_t *y, int64_t n, const float *qw) {   \
        KQ_CAT(KQ_CAT(kq_quantize_row_, type), _scalar)(x, y, n, qw);           \
    }

/* kq_nearest_int in every lane (round half to even through the 1.5*2^23 trick). */
static inline vi kl_nearest(vf a) {
    const vi b = vf_bits(vf_add(a, vf_set1(12582912.f)));
    return vi_sub(vi_and(b, vi_set1(0x007fffff)), vi_set1(0x00400000));
}
static inline vi kl_clamp(vi a, int lo, int hi) { return vi_max(vi_set1(lo), vi_min(a, vi_set1(hi))); }
/* (int8_t) of an int32: keep the low byte, sign-extended. */
static inline vi kl_sext8(vi a) { return vi_sra(vi_shl(a, 24), 24); }

/* roundf (half away from zero) then kq_round_i32's convention (INT32_MIN when out of range). */
static inline vi kl_round_i32(vf a) {
    const vf t = vf_trunc(a);
    const vm up = vf_ge(vf_abs(vf_sub(a, t)), vf_set1(0.5f));
    const vf one = vf_sel(vf_lt(a, vf_zero()), vf_set1(-1.0f), vf_set1(1.0f));
    return vf_trunc_i(vf_add(t, vf_sel(up, one, vf_zero())));
}

/* kq_fp32_to_fp16 in every lane (the result in the low 16 bits of each int32). */
static inline vi kl_fp16(vf f) {
    const vi x = vf_bits(f);
    const vi sign = vi_and(vi_shr(x, 16), vi_set1(0x8000));
    const vi ax = vi_and(x, vi_set1(0x7fffffff));
    /* normal range: re-bias and round the 13 dropped bits to even */
    const vi odd = vi_and(vi_shr(ax, 13), vi_set1(1));
    vi r = vi_shr(vi_add(vi_add(ax, vi_set1((int)0xc8000fffu)), odd), 13);
    /* subnormal: let the FPU round by adding 0.5 */
    const vi sub = vi_sub(vf_bits(vf_add(vi_bits(ax), vf_set1(0.5f))), vi_set1(0x3f000000));
    r = vi_sel(vi_gt(vi_set1(0x38800000), ax), sub, r);
    r = vi_sel(vi_gt(ax, vi_set1(0x477fefff)), vi_set1(0x7c00), r);
    r = vi_or(vi_and(r, vi_set1(0xffff)), sign);
    return vi_sel(vi_gt(ax, vi_set1(0x7f800000)), vi_or(vi_set1(0x7e00), sign), r); /* NaN: quiet, sign kept */
}

/* Transpose 8 groups into lanes: out[j] lane g = x[g*stride + j] (n a multiple of 8). */
static inline void kl_load_lanes(vf *out, const float *x, int stride, int n) {
    for (int j = 0; j < n; j += 8) vf_transpose8(out + j, x + j, stride);
}

/* Store 32 levels (int32 lanes, 4 vectors) as Q4 nibbles: byte j = L[j] | L[j+16] << 4.
 * (The legacy Q4/Q5 types and IQ4_NL/IQ4_XS share this layout.) */
static inline void kl_pack_nibbles32(uint8_t *qs, const vi *q) {
    vi_store_u8(qs, vi_or(q[0], vi_shl(q[2], 4)));
    vi_store_u8(qs + 8, vi_or(q[1], vi_shl(q[3], 4)));
}

#endif /* KQ_LANES_COMMON_H */
