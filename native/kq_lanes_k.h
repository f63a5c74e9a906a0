/* Lane kernels of the K-quants Q2_K .. Q6_K, 256-weight super-blocks (scalar_k.c).
 *
 * Included by avx2.c and neon.c after they define the 8-lane vector API (vf/vi/vm and the
 * vf_* / vi_* / vm_* helpers); see kq_lanes_common.h for how the lanes stay byte-identical.
 */
#ifndef KQ_LANES_K_H
#define KQ_LANES_K_H

#include "kq_lanes_common.h"
#include "kq_lanes_search.h"

/* ---------------------------------------------------------------------------------------
 * K-quants (256-weight super-blocks)
 * ------------------------------------------------------------------------------------- */

/* Packing works on 8 levels at a time in a uint64_t (each level in its own byte, so shifts and
 * masks never carry across levels): the same bytes as the per-level loops of scalar_k.c. */
static inline uint64_t kl_ld64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline void kl_st64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
#define KL_BYTES(b) (0x0101010101010101ull * (uint64_t)(b))

/* Q2_K/Q3_K: qs[j/4 + l] = L[j+l] | L[j+l+32] << 2 | L[j+l+64] << 4 | L[j+l+96] << 6 (levels 0..3). */
static void kl_pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l += 8)
            kl_st64(qs + j / 4 + l, kl_ld64(L + j + l) | (kl_ld64(L + j + l + 32) << 2) |
                                        (kl_ld64(L + j + l + 64) << 4) | (kl_ld64(L + j + l + 96) << 6));
}

/* Re-quantize 16 weights with scale d and offset dm: clamp(nearest((x + dm)/d), lo, hi) + add. */
static inline void kl_requant16(const float *x, float d, float dm, int lo, int hi, int add, uint8_t *L) {
    const vf vd = vf_set1(d), vdm = vf_set1(dm);
    for (int k = 0; k < 2; k++) {
        const vi l = kl_clamp(kl_nearest(vf_div(vf_add(vf_load(x + 8 * k), vdm), vd)), lo, hi);
        vi_store_u8(L + 8 * k, vi_add(l, vi_set1(add)));
    }
}
/* Same without the offset (x / d). */
static inline void kl_requant16_nooff(const float *x, float d, int lo, int hi, int add, uint8_t *L) {
    const vf vd = vf_set1(d);
    for (int k = 0; k < 2; k++) {
        const vi l = kl_clamp(kl_nearest(vf_div(vf_load(x + 8 * k), vd)), lo, hi);
        vi_store_u8(L + 8 * k, vi_add(l, vi_set1(add)));
    }
}

/* Search levels of lane g (n elements) into L. */
static inline void kl_lane_levels(const vi *Lt, int n, int g, uint8_t *L) {
    int32_t t[32][8];
    for (int i = 0; i < n; i++) vi_store(t[i], Lt[i]);
    for (int i = 0; i < n; i++) L[i] = (uint8_t)t[i][g];
}

/* ============================== Q2_K ============================== */

void KQ_FN(q2_k)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 84) {
        float scales[16], mins[16];
        vi Lt[2][16];
        if (!qw) {
            for (int s = 0; s < 2; s++) {
                vf xt[16], wt[16], mn;
                kl_load_lanes(xt, x + 128 * s, 16, 16);
                for (int l = 0; l < 16; l++) wt[l] = vf_abs(xt[l]);
                vf_store(scales + 8 * s, kl_make_qkx(16, 3, xt, wt, Lt[s], &mn, -0.5f, 0.1f, 15, 1, 0));
                vf_store(mins + 8 * s, mn);
            }
            float max_scale = 0.0f, max_min = 0.0f;
            for (int j = 0; j < 16; ++j) {
                if (scales[j] > max_scale) max_scale = scales[j];
                if (mins[j] > max_min) max_min = mins[j];
            }
            if (max_scale > 0) {
                const float iscale = 15.f / max_scale;
                for (int j = 0; j < 16; ++j) y[j] = (uint8_t)kq_nearest_int(iscale * scales[j]);
                kq_put_u16(y + 80, kq_fp32_to_fp16(max_scale / 15.f));
            } else {
                memset(y, 0, 16);
                kq_put_u16(y + 80, kq_fp32_to_fp16(0.0f));
            }
            if (max_min > 0) {
                const float iscale = 15.f / max_min;
                for (int j = 0; j < 16; ++j) y[j] = (uint8_t)(y[j] | ((unsigned)kq_nearest_int(iscale * mins[j]) << 4));
                kq_put_u16(y + 82, kq_fp32_to_fp16(max_min / 15.f));
            } else {
                kq_put_u16(y + 82, kq_fp32_to_fp16(0.0f));
            }
        } else {
            const float *qwb = qw + QK_K * i;
            const float sigma2 = kq_sum_squares(x, QK_K) / QK_K;
            float sw[16];
            uint8_t Ls[16], Lm[16];
            for (int s = 0; s < 2; s++) {
                vf xt[16], wt[16], mn;
                kl_load_lanes(xt, x + 128 * s, 16, 16);
                kl_load_lanes(wt, qwb + 128 * s, 16, 16);
                const vf s2 = vf_set1(sigma2);
                vf sumw = vf_zero();
                for (int l = 0; l < 16; l++) {
                    wt[l] = vf_mul(wt[l], vf_sqrt(vf_add(s2, vf_mul(xt[l], xt[l]))));
                    sumw = vf_add(sumw, wt[l]);
                }
                vf_store(sw + 8 * s, sumw);
                vf_store(scales + 8 * s, kl_make_qkx(16, 3, xt, wt, Lt[s], &mn, -0.9f, 0.05f, 36, 0, 1));
                vf_store(mins + 8 * s, mn);
            }
            const float dm = kq_make_qp_quants(16, 15, scales, Ls, sw);
            const float mm = kq_make_qp_quants(16, 15, mins, Lm, sw);
            kq_put_u16(y + 80, kq_fp32_to_fp16(dm));
            kq_put_u16(y + 82, kq_fp32_to_fp16(mm));
            for (int j = 0; j < 16; ++j) y[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
        }
        const float dall = kq_fp16_to_fp32(kq_get_u16(y + 80));
        const float dmin = kq_fp16_to_fp32(kq_get_u16(y + 82));
        for (int j = 0; j < 16; ++j) {
            const float d = dall * (y[j] & 0xF);
            if (!d) {
                kl_lane_levels(Lt[j / 8], 16, j % 8, L + 16 * j);
                continue;
            }
            const float dm = dmin * (y[j] >> 4);
            kl_requant16(x + 16 * j, d, dm, 0, 3, 0, L + 16 * j);
        }
        kl_pack_2bit(L, y + 16);
    }
}

/* ============================== Q3_K ============================== */

/* Level search of the reference path for nsb (<= 4) super-blocks at once (2 lane sets each). */
static void kl_q3_k_search_ref(const float *x, int nsb, float scales[4][16], vi Lt[8][16]) {
    vf xt[8][16], sc[8];
    for (int s = 0; s < 2 * nsb; s++) kl_load_lanes(xt[s], x + 128 * s, 16, 16);
    kl_make_q3_sets(2 * nsb, 4, xt, Lt, sc);
    for (int k = 0; k < nsb; k++) {
        vf_store(scales[k], sc[2 * k]);
        vf_store(scales[k] + 8, sc[2 * k + 1]);
    }
}

/* Everything after the level search of one super-block (scalar_k.c's Q3_K steps). */
static void kl_q3_k_finish(const float *x, uint8_t *y, const float *scales, vi Lt[2][16], const float *qwb) {
    uint8_t L[QK_K];
    int ls[16];
    if (!qwb) {
        float max_scale = 0.0f, amax = 0.0f;
        for (int j = 0; j < 16; ++j) {
            const float a = fabsf(scales[j]);
            if (a > amax) { amax = a; max_scale = scales[j]; }
        }
        if (max_scale != 0.0f) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; ++j) {
                const int8_t l = (int8_t)kq_nearest_int(iscale * scales[j]);
                ls[j] = kq_clampi(l, -32, 31) + 32;
            }
            kq_q3_k_pack_scales(ls, y + 96);
            kq_put_u16(y + 108, kq_fp32_to_fp16(1 / iscale));
        } else {
            memset(y + 96, 0, 12);
            kq_put_u16(y + 108, kq_fp32_to_fp16(0.0f));
        }
    }
    const float dall = kq_fp16_to_fp32(kq_get_u16(y + 108));
    for (int j = 0; j < 16; ++j) {
        const float d = dall * (int8_t)kq_q3_k_scale(y + 96, j);
        if (!d) {
            kl_lane_levels(Lt[j / 8], 16, j % 8, L + 16 * j);
            continue;
        }
        kl_requant16_nooff(x + 16 * j, d, -4, 3, 4, L + 16 * j);
    }
    /* levels 0..7: bit 2 goes to hmask[j % 32] bit j / 32, the low two bits to qs */
    for (int m = 0; m < 32; m += 8) {
        uint64_t hm = 0;
        for (int k = 0; k < 8; k++) {
            const uint64_t w = kl_ld64(L + 32 * k + m);
            hm |= ((w >> 2) & KL_BYTES(1)) << k;
            kl_st64(L + 32 * k + m, w & KL_BYTES(3));
        }
        kl_st64(y + m, hm);
    }
    kl_pack_2bit(L, y + 32);
}

void KQ_FN(q3_k)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    const int64_t nb = n / QK_K;
    if (!qw) {
        for (int64_t i = 0; i < nb; i += 4) {
            const int nsb = nb - i < 4 ? (int)(nb - i) : 4;
            float scales[4][16];
            vi Lt[8][16];
            kl_q3_k_search_ref(x + QK_K * i, nsb, scales, Lt);
            for (int k = 0; k < nsb; k++)
                kl_q3_k_finish(x + QK_K * (i + k), y + 110 * (i + k), scales[k], &Lt[2 * k], NULL);
        }
        return;
    }
    for (int64_t i = 0; i < nb; i++, x += QK_K, y += 110) {
        float scales[16];
        int ls[16];
        vi Lt[2][16];
        const float *qwb = qw + QK_K * i;
        const float sigma2 = 2 * kq_sum_squares(x, QK_K) / QK_K;
        float sw[16];
        for (int s = 0; s < 2; s++) {
            vf xt[16], wt[16];
            kl_load_lanes(xt, x + 128 * s, 16, 16);
            kl_load_lanes(wt, qwb + 128 * s, 16, 16);
            const vf s2 = vf_set1(sigma2);
            vf sumw = vf_zero();
            for (int l = 0; l < 16; l++) {
                wt[l] = vf_mul(wt[l], vf_sqrt(vf_add(s2, vf_mul(xt[l], xt[l]))));
                sumw = vf_add(sumw, wt[l]);
            }
            vf_store(sw + 8 * s, sumw);
            vf_store(scales + 8 * s, kl_make_qx(16, 4, xt, wt, Lt[s]));
        }
        int8_t Ls[16];
        const float d_block = kq_make_qx_quants(16, 32, scales, Ls, 1, sw);
        for (int j = 0; j < 16; ++j) ls[j] = Ls[j];
        kq_q3_k_pack_scales(ls, y + 96);
        kq_put_u16(y + 108, kq_fp32_to_fp16(d_block));
        kl_q3_k_finish(x, y, scales, Lt, qwb);
    }
}

/* ============================== Q4_K / Q5_K ============================== */

/* The sub-block searches of nsb (1 or 2) consecutive super-blocks, one lane set each. */
static void kl_k45_search(const float *x, const float *qw, int nsb, int nmax, float scales[2][8],
                          float mins[2][8], float sw[2][8], vi Lt[2][32]) {
    vf xt[2][32], wt[2][32], mn[2], sc[2];
    for (int s = 0; s < nsb; s++) {
        const float *xs = x + QK_K * s;
        kl_load_lanes(xt[s], xs, 32, 32);
        if (!qw) {
            vf q = vf_zero();
            for (int l = 0; l < 32; l++) q = vf_add(q, vf_mul(xt[s][l], xt[s][l]));
            const vf av_x = vf_sqrt(vf_div(q, vf_set1(32.0f)));
            for (int l = 0; l < 32; l++) wt[s][l] = vf_add(av_x, vf_abs(xt[s][l]));
        } else {
            const vf s2 = vf_set1(2 * kq_sum_squares(xs, QK_K) / QK_K);
            kl_load_lanes(wt[s], qw + QK_K * s, 32, 32);
            vf sumw = vf_zero();
            for (int l = 0; l < 32; l++) {
                wt[s][l] = vf_mul(wt[s][l], vf_sqrt(vf_add(s2, vf_mul(xt[s][l], xt[s][l]))));
                sumw = vf_add(sumw, wt[s][l]);
            }
            vf_store(sw[s], sumw);
        }
    }
    const float rmin = qw ? -0.9f : (nmax == 15 ? -1.f : -0.5f);
    const float rdelta = qw ? 0.05f : 0.1f;
    const int nstep = qw ? 36 : (nmax == 15 ? 20 : 15);
    if (nsb == 2) kl_make_qkx_sets(2, 32, nmax, xt, wt, Lt, mn, sc, rmin, rdelta, nstep, 0, qw != NULL);
    else kl_make_qkx_sets(1, 32, nmax, xt, wt, Lt, mn, sc, rmin, rdelta, nstep, 0, qw != NULL);
    for (int s = 0; s < nsb; s++) {
        vf_store(scales[s], sc[s]);
        vf_store(mins[s], mn[s]);
    }
}

/* Everything after the search for one super-block: scales into y[0..15], levels into L. */
static void kl_k45_finish(const float *x, uint8_t *y, uint8_t *L, const float *qwb, int nmax,
                          const float *scales, const float *mins, const float *sw, vi *Lt) {
    uint8_t ls[8], lm[8];
    if (!qwb) {
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 8; ++j) {
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        for (int j = 0; j < 8; ++j) {
            const uint8_t sc = (uint8_t)kq_nearest_int(inv_scale * scales[j]);
            const uint8_t m = (uint8_t)kq_nearest_int(inv_min * mins[j]);
            ls[j] = sc < 63 ? sc : 63;
            lm[j] = m < 63 ? m : 63;
        }
        kq_k4_pack_scales(ls, lm, y + 4);
        kq_put_u16(y, kq_fp32_to_fp16(max_scale / 63.f));
        kq_put_u16(y + 2, kq_fp32_to_fp16(max_min / 63.f));
    } else {
        const float d_block = kq_make_qp_quants(8, 63, scales, ls, sw);
        const float m_block = kq_make_qp_quants(8, 63, mins, lm, sw);
        if (nmax == 31) {
            for (int j = 0; j < 8; ++j) {
                if (ls[j] > 63) ls[j] = 63;
                if (lm[j] > 63) lm[j] = 63;
            }
        }
        kq_k4_pack_scales(ls, lm, y + 4);
        kq_put_u16(y, kq_fp32_to_fp16(d_block));
        kq_put_u16(y + 2, kq_fp32_to_fp16(m_block));
    }
    const float dall = kq_fp16_to_fp32(kq_get_u16(y));
    const float dmin = kq_fp16_to_fp32(kq_get_u16(y + 2));
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        kq_k4_scale_min(j, y + 4, &sc, &m);
        const float d = dall * sc;
        if (!d) {
            kl_lane_levels(Lt, 32, j, L + 32 * j);
            continue;
        }
        const float dm = dmin * m;
        kl_requant16(x + 32 * j, d, dm, 0, nmax, 0, L + 32 * j);
        kl_requant16(x + 32 * j + 16, d, dm, 0, nmax, 0, L + 32 * j + 16);
    }
}

/* Q4_K / Q5_K rows: search, then pack each super-block. */
static void kl_row_k45(const float *x, uint8_t *y, int64_t n, const float *qw, int nmax) {
    const int bs = nmax == 15 ? 144 : 176;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i += 1) {
        /* one super-block per search: measured faster than two interleaved (the accept branch is
         * predictable, so the CPU already overlaps consecutive trials) */
        const int nsb = 1;
        float scales[2][8], mins[2][8], sw[2][8];
        vi Lt[2][32];
        kl_k45_search(x + QK_K * i, qw ? qw + QK_K * i : NULL, nsb, nmax, scales, mins, sw, Lt);
        for (int k = 0; k < nsb; k++) {
            const float *xb = x + QK_K * (i + k);
            uint8_t *yb = y + bs * (i + k);
            uint8_t L[QK_K];
            kl_k45_finish(xb, yb, L, qw ? qw + QK_K * (i + k) : NULL, nmax, scales[k], mins[k], sw[k], Lt[k]);
            if (nmax == 15) {
                uint8_t *q = yb + 16;
                for (int j = 0; j < QK_K; j += 64, q += 32)
                    for (int l = 0; l < 32; l += 8) kl_st64(q + l, kl_ld64(L + j + l) | (kl_ld64(L + j + l + 32) << 4));
            } else {
                /* levels 0..31: low nibbles to ql, bit 4 of L[64i + j] to qh[j] bit 2i, of L[64i + 32 + j] to bit 2i+1 */
                uint8_t *qh = yb + 16, *ql = yb + 48;
                for (int j = 0; j < 32; j += 8) {
                    uint64_t h = 0;
                    for (int r = 0; r < 4; r++) {
                        const uint64_t a = kl_ld64(L + 64 * r + j), b = kl_ld64(L + 64 * r + 32 + j);
                        h |= ((a >> 4) & KL_BYTES(1)) << (2 * r);
                        h |= ((b >> 4) & KL_BYTES(1)) << (2 * r + 1);
                        kl_st64(ql + 32 * r + j, (a & KL_BYTES(0xF)) | ((b & KL_BYTES(0xF)) << 4));
                    }
                    kl_st64(qh + j, h);
                }
            }
        }
    }
}

void KQ_FN(q4_k)(const float *x, uint8_t *y, int64_t n, const float *qw) { kl_row_k45(x, y, n, qw, 15); }
void KQ_FN(q5_k)(const float *x, uint8_t *y, int64_t n, const float *qw) { kl_row_k45(x, y, n, qw, 31); }

/* ============================== Q6_K ============================== */

void KQ_FN(q6_k)(const float *x, uint8_t *y, int64_t n, const float *qw) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 210) {
        float scales[16];
        vi Lt[2][16];
        for (int s = 0; s < 2; s++) {
            vf xt[16], wt[16];
            kl_load_lanes(xt, x + 128 * s, 16, 16);
            if (qw) kl_load_lanes(wt, qw + QK_K * i + 128 * s, 16, 16);
            vf_store(scales + 8 * s, kl_make_qx(16, 32, xt, qw ? wt : NULL, Lt[s]));
        }
        float max_scale = 0.0f, max_abs_scale = 0.0f;
        for (int ib = 0; ib < 16; ++ib) {
            const float a = fabsf(scales[ib]);
            if (a > max_abs_scale) { max_abs_scale = a; max_scale = scales[ib]; }
        }
        if (max_abs_scale < KQ_GROUP_MAX_EPS) {
            memset(y, 0, 210);
            continue;
        }
        const float iscale = -128.f / max_scale;
        kq_put_u16(y + 208, kq_fp32_to_fp16(1 / iscale));
        int8_t *sc = (int8_t *)(y + 192);
        for (int ib = 0; ib < 16; ++ib) {
            const int v = kq_nearest_int(iscale * scales[ib]);
            sc[ib] = (int8_t)(v < 127 ? v : 127);
        }
        const float dall = kq_fp16_to_fp32(kq_get_u16(y + 208));
        for (int j = 0; j < 16; ++j) {
            const float d = dall * sc[j];
            if (!d) {
                kl_lane_levels(Lt[j / 8], 16, j % 8, L + 16 * j);
                continue;
            }
            kl_requant16_nooff(x + 16 * j, d, -32, 31, 32, L + 16 * j);
        }
        /* levels 0..63: low nibbles to ql, the top two bits to qh */
        uint8_t *ql = y, *qh = y + 128;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l += 8) {
                const uint64_t a = kl_ld64(L + j + l), b = kl_ld64(L + j + l + 32);
                const uint64_t c = kl_ld64(L + j + l + 64), e = kl_ld64(L + j + l + 96);
                const uint64_t lo = KL_BYTES(0xF), hi = KL_BYTES(3);
                kl_st64(ql + l, (a & lo) | ((c & lo) << 4));
                kl_st64(ql + l + 32, (b & lo) | ((e & lo) << 4));
                kl_st64(qh + l, ((a >> 4) & hi) | (((b >> 4) & hi) << 2) | (((c >> 4) & hi) << 4) | (((e >> 4) & hi) << 6));
            }
        }
    }
}

#endif /* KQ_LANES_K_H */
