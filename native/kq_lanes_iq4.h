/* Lane kernels of the non-linear 4-bit types IQ4_NL and IQ4_XS (scalar_iq4.c).
 *
 * Included by avx2.c and neon.c after they define the 8-lane vector API (vf/vi/vm and the
 * vf_* / vi_* / vm_* helpers); see kq_lanes_common.h for how the lanes stay byte-identical.
 */
#ifndef KQ_LANES_IQ4_H
#define KQ_LANES_IQ4_H

#include "kq_lanes_common.h"

/* ============================== IQ4_NL / IQ4_XS ============================== */

/* Code book index of x as scalar_iq4.c's nearest_code picks it: value k once 2x reaches
 * values[k-1] + values[k] (near a midpoint the reference's float differences x - v[k-1] and
 * v[k] - x are exact, so its strict test is this one), and index 15 for NaN, which falls
 * through every comparison of the reference's bisection. */
#if defined(__GNUC__)
#define KL_UNROLL16 _Pragma("GCC unroll 16")
#else
#define KL_UNROLL16
#endif

typedef struct {
    vf thr[16]; /* thr[k] = values[k-1] + values[k], k = 1..15 */
    vf dlt[16]; /* dlt[k] = values[k] - values[k-1] */
    vf first, last;
} kl_iq4_tab;

/* The code book as vectors, built once per call (kq_iq4nl_values lives in another file, so
 * the compiler could not fold these constants inside the loops). */
static void kl_iq4_init(kl_iq4_tab *t) {
    for (int k = 1; k < 16; k++) {
        t->thr[k] = vf_set1((float)(kq_iq4nl_values[k - 1] + kq_iq4nl_values[k]));
        t->dlt[k] = vf_set1((float)(kq_iq4nl_values[k] - kq_iq4nl_values[k - 1]));
    }
    t->first = vf_set1((float)kq_iq4nl_values[0]);
    t->last = vf_set1((float)kq_iq4nl_values[15]);
}

KQ_ALWAYS_INLINE vi kl_iq4_index(const kl_iq4_tab *t, vf x) {
    const vf x2 = vf_add(x, x);
    vi c[16];
    c[0] = vi_set1(0);
    KL_UNROLL16
    for (int k = 1; k < 16; k++) c[k] = vi_sel(vf_ge(x2, t->thr[k]), vi_set1(1), vi_set1(0));
    /* tree sum: short dependency chains (small integers, so the order cannot matter) */
    KL_UNROLL16
    for (int k = 0; k < 16; k += 2) c[k] = vi_add(c[k], c[k + 1]);
    KL_UNROLL16
    for (int k = 0; k < 16; k += 4) c[k] = vi_add(c[k], c[k + 2]);
    c[0] = vi_add(c[0], c[4]);
    c[8] = vi_add(c[8], c[12]);
    c[0] = vi_add(c[0], c[8]);
    return vi_sel(vf_ne(x, x), vi_set1(15), c[0]);
}
/* values[index(x)] as a float, built from the same threshold tests (small integers: exact). */
KQ_ALWAYS_INLINE vf kl_iq4_value(const kl_iq4_tab *t, vf x) {
    const vf x2 = vf_add(x, x);
    vf c[16];
    c[0] = t->first;
    KL_UNROLL16
    for (int k = 1; k < 16; k++) c[k] = vf_sel(vf_ge(x2, t->thr[k]), t->dlt[k], vf_zero());
    KL_UNROLL16
    for (int k = 0; k < 16; k += 2) c[k] = vf_add(c[k], c[k + 1]);
    KL_UNROLL16
    for (int k = 0; k < 16; k += 4) c[k] = vf_add(c[k], c[k + 2]);
    c[0] = vf_add(c[0], c[4]);
    c[8] = vf_add(c[8], c[12]);
    c[0] = vf_add(c[0], c[8]);
    return vf_sel(vf_ne(x, x), t->last, c[0]);
}

/* scalar_iq4.c's block_scale for 8 blocks of 32 (one per lane). */
static vf kl_iq4_block_scale(const kl_iq4_tab *t, const vf *x, const vf *w) {
    vf amax = vf_zero(), max = vf_zero();
    for (int j = 0; j < 32; j++) {
        const vf ax = vf_abs(x[j]);
        const vm m = vf_gt(ax, amax);
        amax = vf_sel(m, ax, amax);
        max = vf_sel(m, x[j], max);
    }
    const vm zero = vf_lt(amax, vf_set1(KQ_GROUP_MAX_EPS));
    vf d = vf_div(vf_neg(max), vf_set1((float)kq_iq4nl_values[0]));
    vf id = vf_div(vf_set1(1.0f), d);
    vf sumqx = vf_zero(), sumq2 = vf_zero();
    for (int j = 0; j < 32; j++) {
        const vf q = kl_iq4_value(t, vf_mul(id, x[j]));
        const vf wq = vf_mul(w[j], q);
        sumqx = vf_add(sumqx, vf_mul(wq, x[j]));
        sumq2 = vf_add(sumq2, vf_mul(wq, q));
    }
    d = vf_sel(vf_gt(sumq2, vf_zero()), vf_div(sumqx, sumq2), vf_zero());
    vf best = vf_mul(d, sumqx);
    for (int itry = -7; itry <= 7; ++itry) {
        id = vf_div(vf_set1((float)(itry + kq_iq4nl_values[0])), max);
        sumqx = vf_zero();
        sumq2 = vf_zero();
        for (int j = 0; j < 32; j++) {
            const vf q = kl_iq4_value(t, vf_mul(id, x[j]));
            const vf wq = vf_mul(w[j], q);
            sumqx = vf_add(sumqx, vf_mul(wq, x[j]));
            sumq2 = vf_add(sumq2, vf_mul(wq, q));
        }
        const vm acc = vm_and(vf_gt(sumq2, vf_zero()), vf_gt(vf_mul(sumqx, sumqx), vf_mul(best, sumq2)));
        if (vm_any(acc)) {
            const vf nd = vf_div(sumqx, sumq2);
            d = vf_sel(acc, nd, d);
            best = vf_sel(acc, vf_mul(nd, sumqx), best);
        }
    }
    return vf_sel(zero, vf_zero(), d);
}

/* Weights of 8 blocks of 32 (lanes): qw*sqrt(sigma2 + x^2), or x^2 without an imatrix. */
static inline void kl_iq4_weights(const vf *xt, vf *wt, const vf *qwt, vf sigma2) {
    for (int j = 0; j < 32; j++)
        wt[j] = qwt ? vf_mul(qwt[j], vf_sqrt(vf_add(sigma2, vf_mul(xt[j], xt[j])))) : vf_mul(xt[j], xt[j]);
}

/* 32 code indices of x*id, packed: byte j = L[j] | L[j+16] << 4. */
static inline void kl_iq4_pack(const kl_iq4_tab *t, const float *x, float id, uint8_t *qs) {
    const vf vid = vf_set1(id);
    vi q[4];
    for (int k = 0; k < 4; k++) q[k] = kl_iq4_index(t, vf_mul(vid, vf_load(x + 8 * k)));
    kl_pack_nibbles32(qs, q);
}

void KQ_FN(iq4_nl)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    kl_iq4_tab tab;
    kl_iq4_init(&tab);
    const int64_t nb = n / 32;
    float xpad[256], wpad[256];
    for (int64_t b0 = 0; b0 < nb; b0 += 8) {
        const int cnt = nb - b0 < 8 ? (int)(nb - b0) : 8;
        const float *xs = x + 32 * b0, *ws = qw ? qw + 32 * b0 : NULL;
        if (cnt < 8) {
            for (int g = 0; g < 8; g++) {
                const int src = g < cnt ? g : cnt - 1;
                memcpy(xpad + 32 * g, xs + 32 * src, 32 * sizeof(float));
                if (ws) memcpy(wpad + 32 * g, ws + 32 * src, 32 * sizeof(float));
            }
            xs = xpad;
            ws = ws ? wpad : NULL;
        }
        vf xt[32], wt[32], qwt[32];
        kl_load_lanes(xt, xs, 32, 32);
        vf s = vf_zero();
        for (int j = 0; j < 32; j++) s = vf_add(s, vf_mul(xt[j], xt[j]));
        s = vf_mul(s, vf_set1(2.f / 32)); /* block_sigma2: s *= 2.f/n */
        if (ws) kl_load_lanes(qwt, ws, 32, 32);
        kl_iq4_weights(xt, wt, ws ? qwt : NULL, s);
        float d[8];
        vf_store(d, kl_iq4_block_scale(&tab, xt, wt));
        for (int g = 0; g < cnt; g++) {
            uint8_t *yb = y + (b0 + g) * 18;
            kq_put_u16(yb, kq_fp32_to_fp16(d[g]));
            const float id = d[g] ? 1 / d[g] : 0;
            kl_iq4_pack(&tab, x + 32 * (b0 + g), id, yb + 2);
        }
    }
}

void KQ_FN(iq4_xs)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    kl_iq4_tab tab;
    kl_iq4_init(&tab);
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 136) {
        const float *qwb = qw ? qw + QK_K * i : NULL;
        const float s2 = kq_sum_squares(x, QK_K) * (2.f / QK_K); /* scalar_iq4.c's block_sigma2 */
        vf xt[32], wt[32], qwt[32];
        kl_load_lanes(xt, x, 32, 32);
        if (qwb) kl_load_lanes(qwt, qwb, 32, 32);
        kl_iq4_weights(xt, wt, qwb ? qwt : NULL, vf_set1(s2));
        float scales[8];
        vf_store(scales, kl_iq4_block_scale(&tab, xt, wt));
        float max_scale = 0.0f, amax_scale = 0.0f;
        for (int ib = 0; ib < 8; ++ib) {
            const float a = fabsf(scales[ib]);
            if (a > amax_scale) { amax_scale = a; max_scale = scales[ib]; }
        }
        const float d = -max_scale / 32;
        kq_put_u16(y, kq_fp32_to_fp16(d));
        const float id = d ? 1 / d : 0.f;
        uint16_t scales_h = 0;
        uint8_t *scales_l = y + 4;
        memset(scales_l, 0, 4);
        for (int ib = 0; ib < 8; ++ib) {
            int l = kq_nearest_int(id * scales[ib]);
            l = l < -32 ? -32 : (l > 31 ? 31 : l);
            const float dl = d * l;
            const float idl = dl ? 1 / dl : 0.f;
            kl_iq4_pack(&tab, x + 32 * ib, idl, y + 8 + 16 * ib);
            l += 32;
            scales_l[ib / 2] = (uint8_t)(scales_l[ib / 2] | ((l & 0xF) << (4 * (ib % 2))));
            scales_h = (uint16_t)(scales_h | ((l >> 4) << (2 * ib)));
        }
        kq_put_u16(y + 2, scales_h);
    }
}

#endif /* KQ_LANES_IQ4_H */
