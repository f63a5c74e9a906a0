/* Scalar reference kernels of the K-quants (256-weight super-blocks): Q2_K .. Q6_K.
 *
 * Shape of every K-quant: pick a scale (and min) per sub-block with a search from
 * scalar_search.c, quantize those sub-block scales to 4, 6 or 8 bits against one fp16
 * super-block scale, then re-quantize every weight with the *rounded* scales (dividing, as
 * ggml does) so the stored levels match what a reader will reconstruct.
 * Without an imatrix ggml uses its quantize_row_qX_K_ref; with one, quantize_row_qX_K_impl.
 */
#include <math.h>
#include <string.h>
#include "kquant_internal.h"

/* qs layout shared by Q2_K and Q3_K: 2-bit levels, four 32-weight strips per 128 weights. */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 128) {
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                      (L[j + l + 96] << 6));
    }
}

/* ============================== Q2_K ==============================
 * scales[16] (low nibble: scale, high nibble: min), qs[64], d, dmin.
 * Weight = d*sc*l - dmin*m with l in 0..3. */

static void q2_k_requantize_and_pack(const float *x, uint8_t *y, uint8_t *L) {
    const float dall = kq_fp16_to_fp32(kq_get_u16(y + 80));
    const float dmin = kq_fp16_to_fp32(kq_get_u16(y + 82));
    for (int j = 0; j < QK_K / 16; ++j) {
        const float d = dall * (y[j] & 0xF);
        if (!d) continue; /* keeps the search's levels, as ggml does */
        const float dm = dmin * (y[j] >> 4);
        for (int ii = 0; ii < 16; ++ii)
            L[16 * j + ii] = (uint8_t)kq_clampi(kq_nearest_int((x[16 * j + ii] + dm) / d), 0, 3);
    }
    pack_2bit(L, y + 16);
}

void kq_quantize_row_q2_k_scalar(const float *x, uint8_t *y, int64_t n, const float *qw) {
    uint8_t L[QK_K], Laux[16];
    float weights[16], mins[QK_K / 16], scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 84) {
        if (!qw) {
            float max_scale = 0.0f, max_min = 0.0f;
            for (int j = 0; j < QK_K / 16; ++j) {
                for (int l = 0; l < 16; ++l) weights[l] = fabsf(x[16 * j + l]);
                scales[j] = kq_make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j],
                                                Laux, -0.5f, 0.1f, 15, 1);
                if (scales[j] > max_scale) max_scale = scales[j];
                if (mins[j] > max_min) max_min = mins[j];
            }
            if (max_scale > 0) {
                const float iscale = 15.f / max_scale;
                for (int j = 0; j < QK_K / 16; ++j) y[j] = (uint8_t)kq_nearest_int(iscale * scales[j]);
                kq_put_u16(y + 80, kq_fp32_to_fp16(max_scale / 15.f));
            } else {
                memset(y, 0, 16);
                kq_put_u16(y + 80, kq_fp32_to_fp16(0.0f));
            }
            if (max_min > 0) {
                const float iscale = 15.f / max_min;
                for (int j = 0; j < QK_K / 16; ++j)
                    y[j] = (uint8_t)(y[j] | ((unsigned)kq_nearest_int(iscale * mins[j]) << 4));
                kq_put_u16(y + 82, kq_fp32_to_fp16(max_min / 15.f));
            } else {
                kq_put_u16(y + 82, kq_fp32_to_fp16(0.0f));
            }
        } else {
            const float *qwb = qw + QK_K * i;
            const float sigma2 = kq_sum_squares(x, QK_K) / QK_K;
            float sw[QK_K / 16];
            uint8_t Ls[QK_K / 16], Lm[QK_K / 16];
            for (int j = 0; j < QK_K / 16; ++j) {
                float sumw = 0.0f;
                for (int l = 0; l < 16; ++l) {
                    const float v = x[16 * j + l];
                    weights[l] = qwb[16 * j + l] * sqrtf(sigma2 + v * v);
                }
                for (int l = 0; l < 16; ++l) sumw += weights[l];
                sw[j] = sumw;
                scales[j] = kq_make_qkx3_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j],
                                                Laux, -0.9f, 0.05f, 36, 0);
            }
            const float dm = kq_make_qp_quants(QK_K / 16, 15, scales, Ls, sw);
            const float mm = kq_make_qp_quants(QK_K / 16, 15, mins, Lm, sw);
            kq_put_u16(y + 80, kq_fp32_to_fp16(dm));
            kq_put_u16(y + 82, kq_fp32_to_fp16(mm));
            for (int j = 0; j < QK_K / 16; ++j) y[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
        }
        q2_k_requantize_and_pack(x, y, L);
    }
}

void kq_dequantize_row_q2_k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++, x += 84) {
        const float d = kq_fp16_to_fp32(kq_get_u16(x + 80));
        const float min = kq_fp16_to_fp32(kq_get_u16(x + 82));
        const uint8_t *q = x + 16;
        int is = 0;
        for (int half = 0; half < 2; ++half, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int k = 0; k < 2; ++k) {
                    const uint8_t sc = x[is++];
                    const float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                    for (int l = 0; l < 16; ++l) *y++ = dl * ((q[16 * k + l] >> shift) & 3) - ml;
                }
            }
        }
    }
}

/* ============================== Q3_K ==============================
 * hmask[32], qs[64], scales[12] (16 signed 6-bit scales), d. Weight = d*(sc-32)*(l-4). */

static void q3_k_requantize_and_pack(const float *x, uint8_t *y, int8_t *L) {
    const float dall = kq_fp16_to_fp32(kq_get_u16(y + 108));
    for (int j = 0; j < QK_K / 16; ++j) {
        const float d = dall * (int8_t)kq_q3_k_scale(y + 96, j);
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii)
            L[16 * j + ii] = (int8_t)(kq_clampi(kq_nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
    }
    /* the third bit of weight j goes to hmask[j % 32], bit j / 32 */
    uint8_t *hmask = y;
    memset(hmask, 0, QK_K / 8);
    uint8_t Lu[QK_K];
    for (int j = 0; j < QK_K; ++j) {
        int l = L[j];
        if (l > 3) {
            hmask[j % 32] = (uint8_t)(hmask[j % 32] | (1u << (j / 32)));
            l -= 4;
        }
        Lu[j] = (uint8_t)l;
    }
    pack_2bit(Lu, y + 32);
}

void kq_quantize_row_q3_k_scalar(const float *x, uint8_t *y, int64_t n, const float *qw) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    int ls[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 110) {
        if (!qw) {
            float max_scale = 0.0f, amax = 0.0f;
            for (int j = 0; j < QK_K / 16; ++j) {
                scales[j] = kq_make_q3_quants(16, 4, x + 16 * j, L + 16 * j, 1);
                const float a = fabsf(scales[j]);
                if (a > amax) { amax = a; max_scale = scales[j]; }
            }
            if (max_scale != 0.0f) {
                const float iscale = -32.f / max_scale;
                for (int j = 0; j < QK_K / 16; ++j) {
                    const int8_t l = (int8_t)kq_nearest_int(iscale * scales[j]);
                    ls[j] = kq_clampi(l, -32, 31) + 32;
                }
                kq_q3_k_pack_scales(ls, y + 96);
                kq_put_u16(y + 108, kq_fp32_to_fp16(1 / iscale));
            } else {
                memset(y + 96, 0, 12);
                kq_put_u16(y + 108, kq_fp32_to_fp16(0.0f));
            }
        } else {
            const float *qwb = qw + QK_K * i;
            const float sigma2 = 2 * kq_sum_squares(x, QK_K) / QK_K;
            float weight[16], sw[QK_K / 16];
            int8_t Ls[QK_K / 16];
            for (int j = 0; j < QK_K / 16; ++j) {
                for (int l = 0; l < 16; ++l) {
                    const float v = x[16 * j + l];
                    weight[l] = qwb[16 * j + l] * sqrtf(sigma2 + v * v);
                }
                float sumw = 0.0f;
                for (int l = 0; l < 16; ++l) sumw += weight[l];
                sw[j] = sumw;
                scales[j] = kq_make_qx_quants(16, 4, x + 16 * j, L + 16 * j, 1, weight);
            }
            const float d_block = kq_make_qx_quants(QK_K / 16, 32, scales, Ls, 1, sw);
            for (int j = 0; j < QK_K / 16; ++j) ls[j] = Ls[j];
            kq_q3_k_pack_scales(ls, y + 96);
            kq_put_u16(y + 108, kq_fp32_to_fp16(d_block));
        }
        q3_k_requantize_and_pack(x, y, L);
    }
}

void kq_dequantize_row_q3_k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++, x += 110) {
        const float d_all = kq_fp16_to_fp32(kq_get_u16(x + 108));
        const uint8_t *hm = x;
        const uint8_t *q = x + 32;
        int is = 0;
        uint8_t m = 1;
        for (int half = 0; half < 2; ++half, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1)) {
                for (int k = 0; k < 2; ++k) {
                    const float dl = d_all * kq_q3_k_scale(x + 96, is++);
                    for (int l = 0; l < 16; ++l) {
                        const int v = ((q[16 * k + l] >> shift) & 3) - ((hm[16 * k + l] & m) ? 0 : 4);
                        *y++ = dl * v;
                    }
                }
            }
        }
    }
}

/* ============================== Q4_K / Q5_K ==============================
 * d, dmin, scales[12] (8 six-bit scales and 8 six-bit mins), then the levels.
 * Weight = d*sc*l - dmin*m. */

/* Sub-block scales and mins of one super-block, written to y[0..15]; L holds the search levels.
 * nmax is 15 (Q4_K) or 31 (Q5_K). */
static void k45_scales(const float *x, uint8_t *y, uint8_t *L, const float *qwb, int nmax) {
    uint8_t Laux[32], ls[QK_K / 32], lm[QK_K / 32];
    float weights[32], mins[QK_K / 32], scales[QK_K / 32];
    if (!qwb) {
        const float rmin = nmax == 15 ? -1.f : -0.5f;
        const int nstep = nmax == 15 ? 20 : 15;
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < QK_K / 32; ++j) {
            const float av_x = sqrtf(kq_sum_squares(x + 32 * j, 32) / 32);
            for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
            scales[j] = kq_make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                            rmin, 0.1f, nstep, 0);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        for (int j = 0; j < QK_K / 32; ++j) {
            const uint8_t s = (uint8_t)kq_nearest_int(inv_scale * scales[j]);
            const uint8_t m = (uint8_t)kq_nearest_int(inv_min * mins[j]);
            ls[j] = s < 63 ? s : 63;
            lm[j] = m < 63 ? m : 63;
        }
        kq_k4_pack_scales(ls, lm, y + 4);
        kq_put_u16(y, kq_fp32_to_fp16(max_scale / 63.f));
        kq_put_u16(y + 2, kq_fp32_to_fp16(max_min / 63.f));
    } else {
        const float sigma2 = 2 * kq_sum_squares(x, QK_K) / QK_K;
        float sw[QK_K / 32];
        for (int j = 0; j < QK_K / 32; ++j) {
            for (int l = 0; l < 32; ++l) {
                const float v = x[32 * j + l];
                weights[l] = qwb[32 * j + l] * sqrtf(sigma2 + v * v);
            }
            float sumw = 0.0f;
            for (int l = 0; l < 32; ++l) sumw += weights[l];
            sw[j] = sumw;
            scales[j] = kq_make_qkx3_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                            -0.9f, 0.05f, 36, 0);
        }
        const float d_block = kq_make_qp_quants(QK_K / 32, 63, scales, ls, sw);
        const float m_block = kq_make_qp_quants(QK_K / 32, 63, mins, lm, sw);
        if (nmax == 31) { /* ggml clamps here for Q5_K only; make_qp_quants keeps L <= 63 anyway */
            for (int j = 0; j < QK_K / 32; ++j) {
                if (ls[j] > 63) ls[j] = 63;
                if (lm[j] > 63) lm[j] = 63;
            }
        }
        kq_k4_pack_scales(ls, lm, y + 4);
        kq_put_u16(y, kq_fp32_to_fp16(d_block));
        kq_put_u16(y + 2, kq_fp32_to_fp16(m_block));
    }
    /* re-quantize with the rounded scales */
    const float dall = kq_fp16_to_fp32(kq_get_u16(y));
    const float dmin = kq_fp16_to_fp32(kq_get_u16(y + 2));
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t sc, m;
        kq_k4_scale_min(j, y + 4, &sc, &m);
        const float d = dall * sc;
        if (!d) continue;
        const float dm = dmin * m;
        for (int ii = 0; ii < 32; ++ii)
            L[32 * j + ii] = (uint8_t)kq_clampi(kq_nearest_int((x[32 * j + ii] + dm) / d), 0, nmax);
    }
}

void kq_quantize_row_q4_k_scalar(const float *x, uint8_t *y, int64_t n, const float *qw) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 144) {
        k45_scales(x, y, L, qw ? qw + QK_K * i : NULL, 15);
        uint8_t *q = y + 16;
        for (int j = 0; j < QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

void kq_quantize_row_q5_k_scalar(const float *x, uint8_t *y, int64_t n, const float *qw) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 176) {
        k45_scales(x, y, L, qw ? qw + QK_K * i : NULL, 31);
        uint8_t *qh = y + 16, *ql = y + 48;
        memset(qh, 0, QK_K / 8);
        uint8_t m1 = 1, m2 = 2;
        for (int n0 = 0; n0 < QK_K; n0 += 64, ql += 32) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[n0 + j], l2 = L[n0 + j + 32];
                if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 = (uint8_t)(m1 << 2);
            m2 = (uint8_t)(m2 << 2);
        }
    }
}

void kq_dequantize_row_q4_k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++, x += 144) {
        const float d = kq_fp16_to_fp32(kq_get_u16(x));
        const float min = kq_fp16_to_fp32(kq_get_u16(x + 2));
        const uint8_t *q = x + 16;
        for (int is = 0; is < 8; is += 2, q += 32) {
            uint8_t sc, m;
            kq_k4_scale_min(is, x + 4, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            kq_k4_scale_min(is + 1, x + 4, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

void kq_dequantize_row_q5_k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++, x += 176) {
        const float d = kq_fp16_to_fp32(kq_get_u16(x));
        const float min = kq_fp16_to_fp32(kq_get_u16(x + 2));
        const uint8_t *qh = x + 16, *ql = x + 48;
        uint8_t u1 = 1, u2 = 2;
        for (int is = 0; is < 8; is += 2, ql += 32) {
            uint8_t sc, m;
            kq_k4_scale_min(is, x + 4, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            kq_k4_scale_min(is + 1, x + 4, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

/* ============================== Q6_K ==============================
 * ql[128], qh[64], int8 scales[16], d. Weight = d*sc*(l-32). */

void kq_quantize_row_q6_k_scalar(const float *x, uint8_t *y, int64_t n, const float *qw) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 210) {
        float max_scale = 0.0f, max_abs_scale = 0.0f;
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            const float *w = qw ? qw + QK_K * i + 16 * ib : NULL;
            scales[ib] = kq_make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1, w);
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
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            const int v = kq_nearest_int(iscale * scales[ib]);
            sc[ib] = (int8_t)(v < 127 ? v : 127);
        }
        const float dall = kq_fp16_to_fp32(kq_get_u16(y + 208));
        for (int j = 0; j < QK_K / 16; ++j) {
            const float d = dall * sc[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii)
                L[16 * j + ii] = (int8_t)(kq_clampi(kq_nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
        }
        uint8_t *ql = y, *qh = y + 128;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; ++l) {
                const int a = L[j + l], b = L[j + l + 32], c = L[j + l + 64], e = L[j + l + 96];
                ql[l] = (uint8_t)((a & 0xF) | ((c & 0xF) << 4));
                ql[l + 32] = (uint8_t)((b & 0xF) | ((e & 0xF) << 4));
                qh[l] = (uint8_t)((a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6));
            }
        }
    }
}

void kq_dequantize_row_q6_k(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++, x += 210) {
        const float d = kq_fp16_to_fp32(kq_get_u16(x + 208));
        const uint8_t *ql = x, *qh = x + 128;
        const int8_t *sc = (const int8_t *)(x + 192);
        for (int n0 = 0; n0 < QK_K; n0 += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[is] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
        }
    }
}
