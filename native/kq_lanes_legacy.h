/* Lane kernels of the legacy 32-weight block types Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (scalar_legacy.c).
 *
 * Included by avx2.c and neon.c after they define the 8-lane vector API (vf/vi/vm and the
 * vf_* / vi_* / vm_* helpers); see kq_lanes_common.h for how the lanes stay byte-identical.
 */
#ifndef KQ_LANES_LEGACY_H
#define KQ_LANES_LEGACY_H

#include "kq_lanes_common.h"
#include "kq_lanes_search.h"

/* ---------------------------------------------------------------------------------------
 * Legacy 32-weight block types
 * ------------------------------------------------------------------------------------- */

/* The first element of a block equal to zero (keeps the sign the serial min/max would keep). */
static inline float kl_first_zero(const float *x, int n) {
    for (int j = 0; j < n; j++)
        if (x[j] == 0.0f) return x[j];
    return 0.0f;
}

/* Signed value of largest |x| among 32, first occurrence; +0 when all are zero. */
static inline float kl_signed_absmax32(const float *x, const vf *v) {
    const vf a0 = vf_abs(v[0]), a1 = vf_abs(v[1]), a2 = vf_abs(v[2]), a3 = vf_abs(v[3]);
    const float amax = vf_hmax(vf_max(vf_max(a0, a1), vf_max(a2, a3)));
    if (!(amax > 0.0f)) return 0.0f;
    const vf am = vf_set1(amax);
    const uint32_t bits = (uint32_t)vm_bits(vf_eq(a0, am)) | ((uint32_t)vm_bits(vf_eq(a1, am)) << 8) |
                          ((uint32_t)vm_bits(vf_eq(a2, am)) << 16) | ((uint32_t)vm_bits(vf_eq(a3, am)) << 24);
    return x[kq_ctz32(bits)];
}

static inline void kl_min_max32(const float *x, const vf *v, float *min_out, float *max_out) {
    float mn = vf_hmin(vf_min(vf_min(v[0], v[1]), vf_min(v[2], v[3])));
    float mx = vf_hmax(vf_max(vf_max(v[0], v[1]), vf_max(v[2], v[3])));
    if (mn == 0.0f) mn = kl_first_zero(x, 32);
    if (mx == 0.0f) mx = kl_first_zero(x, 32);
    *min_out = mn;
    *max_out = mx;
}

/* Q5 layout: low nibbles as Q4, fifth bits into a little-endian u32. */
static inline void kl_pack_q5(uint8_t *qh, uint8_t *qs, const vi *q) {
    const vi lo = vi_set1(0xF), b5 = vi_set1(0x10);
    vi n[4];
    uint32_t h = 0;
    for (int k = 0; k < 4; k++) {
        n[k] = vi_and(q[k], lo);
        h |= (uint32_t)vm_bits(vi_eq(vi_and(q[k], b5), b5)) << (8 * k);
    }
    kl_pack_nibbles32(qs, n);
    memcpy(qh, &h, 4);
}

/* The per-block scales of 8 blocks at once: lane g belongs to block g. The extremes are exact
 * whatever the order; d, 1/d and the fp16 conversions are the same IEEE operations the scalar
 * code does once per block. */

/* Q8_0: d = amax/127, l = roundf(x/d) (by multiplying with id = 1/d, as ggml does). */
static inline void kl_q8_0_block(const float *x, uint8_t *y, float id) {
    const vf vid = vf_set1(id);
    for (int k = 0; k < 4; k++) vi_store_i8(y + 8 * k, kl_sext8(kl_round_i32(vf_mul(vf_load(x + 8 * k), vid))));
}

void KQ_FN(q8_0)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    (void)qw;
    const int64_t nb = n / 32;
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8, x += 256, y += 8 * 34) {
        vf am[8];
        for (int g = 0; g < 8; g++) {
            const float *xb = x + 32 * g;
            am[g] = vf_max(vf_max(vf_abs(vf_load(xb)), vf_abs(vf_load(xb + 8))),
                           vf_max(vf_abs(vf_load(xb + 16)), vf_abs(vf_load(xb + 24))));
        }
        const vf d = vf_div(vf_hmax8(am), vf_set1(127.0f));
        float id[8];
        int32_t h[8];
        vf_store(id, vf_sel(vf_ne(d, vf_zero()), vf_div(vf_set1(1.0f), d), vf_zero()));
        vi_store(h, kl_fp16(d));
        for (int g = 0; g < 8; g++) {
            kq_put_u16(y + 34 * g, (uint16_t)h[g]);
            kl_q8_0_block(x + 32 * g, y + 34 * g + 2, id[g]);
        }
    }
    for (; b < nb; b++, x += 32, y += 34) {
        const float amax = vf_hmax(vf_max(vf_max(vf_abs(vf_load(x)), vf_abs(vf_load(x + 8))),
                                          vf_max(vf_abs(vf_load(x + 16)), vf_abs(vf_load(x + 24)))));
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        kq_put_u16(y, kq_fp32_to_fp16(d));
        kl_q8_0_block(x, y + 2, id);
    }
}

/* Position of the first element of 32 whose |x| equals amax (> 0). */
static inline float kl_first_absmax(const float *x, float amax) {
    const vf am = vf_set1(amax);
    uint32_t bits = 0;
    for (int k = 0; k < 4; k++) bits |= (uint32_t)vm_bits(vf_eq(vf_abs(vf_load(x + 8 * k)), am)) << (8 * k);
    return x[kq_ctz32(bits)];
}

/* Q4_0 / Q5_0 levels of one block: MIN(top, (int8_t)(x*id + bias)). */
static inline void kl_q40_q50_block(const float *x, uint8_t *y, float id, int five) {
    const vf vid = vf_set1(id), vb = vf_set1(five ? 16.5f : 8.5f);
    const vi top = vi_set1(five ? 31 : 15);
    vi q[4];
    for (int k = 0; k < 4; k++) q[k] = vi_min(kl_sext8(vf_trunc_i(vf_add(vf_mul(vf_load(x + 8 * k), vid), vb))), top);
    if (five) kl_pack_q5(y, y + 4, q);
    else kl_pack_nibbles32(y, q);
}

/* Q4_0 / Q5_0 without imatrix: d = max/-(8|16) with max the signed value of largest |x|. */
static void kl_row_q40_q50_ref(const float *x, uint8_t *y, int64_t n, int five) {
    const int bs = five ? 22 : 18;
    const float neg_half = five ? -16.0f : -8.0f;
    const int64_t nb = n / 32;
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8, x += 256, y += 8 * bs) {
        /* The signed value of largest |x| is the block's max or its min, whichever is larger in
         * magnitude; only a tie (+a and -a both present) needs the first occurrence. */
        vf mn[8], mx[8];
        for (int g = 0; g < 8; g++) {
            const float *xb = x + 32 * g;
            const vf v0 = vf_load(xb), v1 = vf_load(xb + 8), v2 = vf_load(xb + 16), v3 = vf_load(xb + 24);
            mn[g] = vf_min(vf_min(v0, v1), vf_min(v2, v3));
            mx[g] = vf_max(vf_max(v0, v1), vf_max(v2, v3));
        }
        const vf vmin = vf_hmin8(mn), vmax = vf_hmax8(mx);
        const vf amin = vf_neg(vmin); /* |min| when min < 0 */
        vf smax = vf_sel(vf_gt(amin, vmax), vmin, vmax);
        smax = vf_sel(vm_and(vf_le(vmax, vf_zero()), vf_ge(vmin, vf_zero())), vf_zero(), smax); /* all zero: +0 */
        smax = vf_sel(vm_and(vf_le(vmax, vf_zero()), vf_lt(vmin, vf_zero())), vmin, smax);     /* no positive */
        const vm tie = vm_and(vf_eq(amin, vmax), vf_gt(vmax, vf_zero()));
        if (vm_any(tie)) {
            float t[8], amax[8];
            const int bits = vm_bits(tie);
            vf_store(t, smax);
            vf_store(amax, vmax);
            for (int g = 0; g < 8; g++)
                if (bits & (1 << g)) t[g] = kl_first_absmax(x + 32 * g, amax[g]);
            smax = vf_load(t);
        }
        float id[8];
        int32_t h[8];
        const vf d = vf_div(smax, vf_set1(neg_half));
        vf_store(id, vf_sel(vf_ne(d, vf_zero()), vf_div(vf_set1(1.0f), d), vf_zero()));
        vi_store(h, kl_fp16(d));
        for (int g = 0; g < 8; g++) {
            kq_put_u16(y + bs * g, (uint16_t)h[g]);
            kl_q40_q50_block(x + 32 * g, y + bs * g + 2, id[g], five);
        }
    }
    for (; b < nb; b++, x += 32, y += bs) {
        vf v[4];
        for (int k = 0; k < 4; k++) v[k] = vf_load(x + 8 * k);
        const float d = kl_signed_absmax32(x, v) / neg_half;
        const float id = d ? 1.0f / d : 0.0f;
        kq_put_u16(y, kq_fp32_to_fp16(d));
        kl_q40_q50_block(x, y + 2, id, five);
    }
}

/* Q4_1 / Q5_1 levels of one block: (x-min)*id + 0.5 truncated (Q4_1: MIN(15, (int8_t)..)). */
static inline void kl_q41_q51_block(const float *x, uint8_t *y, float min, float id, int five) {
    const vf vid = vf_set1(id), vmin = vf_set1(min), h = vf_set1(0.5f);
    vi q[4];
    for (int k = 0; k < 4; k++) {
        const vi t = vf_trunc_i(vf_add(vf_mul(vf_sub(vf_load(x + 8 * k), vmin), vid), h));
        q[k] = five ? vi_and(t, vi_set1(0xFF)) : vi_min(kl_sext8(t), vi_set1(15));
    }
    if (five) kl_pack_q5(y, y + 4, q);
    else kl_pack_nibbles32(y, q);
}

/* Q4_1 / Q5_1 without imatrix: d = (max-min)/(15|31), m = min. */
static void kl_row_q41_q51_ref(const float *x, uint8_t *y, int64_t n, int five) {
    const int bs = five ? 24 : 20;
    const float top = five ? 31.0f : 15.0f;
    const int64_t nb = n / 32;
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8, x += 256, y += 8 * bs) {
        vf mn[8], mx[8];
        for (int g = 0; g < 8; g++) {
            const float *xb = x + 32 * g;
            const vf v0 = vf_load(xb), v1 = vf_load(xb + 8), v2 = vf_load(xb + 16), v3 = vf_load(xb + 24);
            mn[g] = vf_min(vf_min(v0, v1), vf_min(v2, v3));
            mx[g] = vf_max(vf_max(v0, v1), vf_max(v2, v3));
        }
        vf vmin = vf_hmin8(mn), vmax = vf_hmax8(mx);
        /* a zero extreme keeps the sign of the block's first zero, as the serial scan does */
        if (vm_any(vm_or(vf_eq(vmin, vf_zero()), vf_eq(vmax, vf_zero())))) {
            float a[8], c[8];
            vf_store(a, vmin);
            vf_store(c, vmax);
            for (int g = 0; g < 8; g++) {
                if (a[g] == 0.0f) a[g] = kl_first_zero(x + 32 * g, 32);
                if (c[g] == 0.0f) c[g] = kl_first_zero(x + 32 * g, 32);
            }
            vmin = vf_load(a);
            vmax = vf_load(c);
        }
        const vf d = vf_div(vf_sub(vmax, vmin), vf_set1(top));
        float id[8], m[8];
        int32_t hd[8], hm[8];
        vf_store(id, vf_sel(vf_ne(d, vf_zero()), vf_div(vf_set1(1.0f), d), vf_zero()));
        vf_store(m, vmin);
        vi_store(hd, kl_fp16(d));
        vi_store(hm, kl_fp16(vmin));
        for (int g = 0; g < 8; g++) {
            kq_put_u16(y + bs * g, (uint16_t)hd[g]);
            kq_put_u16(y + bs * g + 2, (uint16_t)hm[g]);
            kl_q41_q51_block(x + 32 * g, y + bs * g + 4, m[g], id[g], five);
        }
    }
    for (; b < nb; b++, x += 32, y += bs) {
        vf v[4];
        for (int k = 0; k < 4; k++) v[k] = vf_load(x + 8 * k);
        float min, max;
        kl_min_max32(x, v, &min, &max);
        const float d = (max - min) / top;
        const float id = d ? 1.0f / d : 0.0f;
        kq_put_u16(y, kq_fp32_to_fp16(d));
        kq_put_u16(y + 2, kq_fp32_to_fp16(min));
        kl_q41_q51_block(x, y + 4, min, id, five);
    }
}

/* Legacy types with an importance matrix: 8 blocks at a time, one per lane.
 * kind: 0 = Q4_0, 1 = Q5_0 (make_qx_quants), 2 = Q4_1, 3 = Q5_1 (make_qkx3_quants). */
static void kl_row_legacy_imatrix(const float *x, uint8_t *y, int64_t n, const float *qw, int kind) {
    static const int bsz[4] = {18, 22, 20, 24};
    const int bs = bsz[kind];
    const float sigma2 = kq_sum_squares(x, n) / n; /* scalar_legacy.c's row_sigma2 */
    const int64_t nb = n / 32;
    float xpad[256], wpad[256];
    for (int64_t b0 = 0; b0 < nb; b0 += 8) {
        const int cnt = nb - b0 < 8 ? (int)(nb - b0) : 8;
        const float *xs = x + 32 * b0, *ws = qw + 32 * b0;
        if (cnt < 8) { /* pad the missing lanes with copies of the last block */
            for (int g = 0; g < 8; g++) {
                const int src = g < cnt ? g : cnt - 1;
                memcpy(xpad + 32 * g, xs + 32 * src, 32 * sizeof(float));
                memcpy(wpad + 32 * g, ws + 32 * src, 32 * sizeof(float));
            }
            xs = xpad;
            ws = wpad;
        }
        vf xt[32], wt[32];
        vi Lt[32];
        kl_load_lanes(xt, xs, 32, 32);
        kl_load_lanes(wt, ws, 32, 32);
        const vf s2 = vf_set1(sigma2);
        for (int j = 0; j < 32; j++) wt[j] = vf_mul(wt[j], vf_sqrt(vf_add(s2, vf_mul(xt[j], xt[j]))));
        float d[8], m[8];
        if (kind < 2) {
            vf_store(d, kl_make_qx(32, kind == 0 ? 8 : 16, xt, wt, Lt));
        } else {
            vf mn;
            vf_store(d, kl_make_qkx(32, kind == 2 ? 15 : 31, xt, wt, Lt, &mn, -0.9f, 0.05f, 36, 0, 1));
            vf_store(m, mn);
        }
        int32_t Lb[32][8];
        for (int j = 0; j < 32; j++) vi_store(Lb[j], Lt[j]);
        for (int g = 0; g < cnt; g++) {
            uint8_t *yb = y + (b0 + g) * bs;
            kq_put_u16(yb, kq_fp32_to_fp16(d[g]));
            int off = 2;
            if (kind >= 2) {
                kq_put_u16(yb + 2, kq_fp32_to_fp16(-m[g]));
                off = 4;
            }
            if (kind == 0 || kind == 2) {
                for (int j = 0; j < 16; ++j) yb[off + j] = (uint8_t)(Lb[j][g] | (Lb[j + 16][g] << 4));
            } else {
                uint32_t qh = 0;
                for (int j = 0; j < 16; ++j) {
                    const int lo = Lb[j][g], hi = Lb[j + 16][g];
                    yb[off + 4 + j] = (uint8_t)((lo & 0x0F) | ((hi & 0x0F) << 4));
                    qh |= (uint32_t)((lo & 0x10) >> 4) << j;
                    qh |= (uint32_t)((hi & 0x10) >> 4) << (j + 16);
                }
                memcpy(yb + off, &qh, 4);
            }
        }
    }
}

void KQ_FN(q4_0)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) kl_row_legacy_imatrix(x, y, n, qw, 0);
    else kl_row_q40_q50_ref(x, y, n, 0);
}
void KQ_FN(q5_0)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) kl_row_legacy_imatrix(x, y, n, qw, 1);
    else kl_row_q40_q50_ref(x, y, n, 1);
}
void KQ_FN(q4_1)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) kl_row_legacy_imatrix(x, y, n, qw, 2);
    else kl_row_q41_q51_ref(x, y, n, 0);
}
void KQ_FN(q5_1)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    if (qw) kl_row_legacy_imatrix(x, y, n, qw, 3);
    else kl_row_q41_q51_ref(x, y, n, 1);
}

#endif /* KQ_LANES_LEGACY_H */
