/* Scalar reference kernels of the legacy 32-weight block types: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1.
 *
 * Without an importance matrix these round each block directly from its extremes (ggml's
 * quantize_row_qX_Y_ref); with one they search the scale per block (quantize_row_qX_Y_impl).
 * Block layouts: see /work/shared/reference/kquants.md. All fp16 fields are little-endian.
 */
#include <float.h>
#include <math.h>
#include <string.h>
#include "kquant_internal.h"

#define QK 32

/* The signed value of largest magnitude in a block; the first one wins ties. */
static inline float signed_absmax(const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK; j++) {
        if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
    }
    return max;
}

static inline void block_min_max(const float *x, float *min_out, float *max_out) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < QK; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    *min_out = min;
    *max_out = max;
}

/* sigma^2 of a whole row: the imatrix weight of x is qw * sqrt(sigma^2 + x^2). */
static float row_sigma2(const float *x, int64_t n) { return kq_sum_squares(x, n) / n; }

static inline void imatrix_weights(const float *xb, const float *qw, float sigma2, float *w) {
    for (int j = 0; j < QK; ++j) w[j] = qw[j] * sqrtf(sigma2 + xb[j] * xb[j]);
}

/* Pack 32 5-bit levels: low nibbles as Q4 (j | j+16 << 4), fifth bits into a LE u32. */
static void pack_q5(const uint8_t *L, uint8_t *qh_out, uint8_t *qs) {
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; ++j) {
        const uint8_t lo = L[j], hi = L[j + QK / 2];
        qs[j] = (uint8_t)((lo & 0x0F) | ((hi & 0x0F) << 4));
        qh |= (uint32_t)((lo & 0x10u) >> 4) << j;
        qh |= (uint32_t)((hi & 0x10u) >> 4) << (j + QK / 2);
    }
    memcpy(qh_out, &qh, 4);
}

/* ---------------- Q8_0: d (fp16), int8 qs[32] ---------------- */

void kq_quantize_row_q8_0_scalar(const float *x, uint8_t *y, int64_t n, const float *qw) {
    (void)qw; /* ggml ignores the importance matrix for Q8_0 */
    for (int64_t b = 0; b < n / QK; b++, x += QK, y += 34) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        kq_put_u16(y, kq_fp32_to_fp16(d));
        for (int j = 0; j < QK; j++) y[2 + j] = (uint8_t)(int8_t)kq_round_i32(x[j] * id);
    }
}

void kq_dequantize_row_q8_0(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK; b++, x += 34, y += QK) {
        const float d = kq_fp16_to_fp32(kq_get_u16(x));
        for (int j = 0; j < QK; j++) y[j] = (int8_t)x[2 + j] * d;
    }
}

/* ---------------- Q4_0: d; qs[16] (level 0..15, value (l-8)*d) ---------------- */

void kq_quantize_row_q4_0_scalar(const float *x, uint8_t *y, int64_t n, const float *qw) {
    const int64_t nb = n / QK;
    if (!qw) {
        for (int64_t b = 0; b < nb; b++, x += QK, y += 18) {
            const float d = signed_absmax(x) / -8;
            const float id = d ? 1.0f / d : 0.0f;
            kq_put_u16(y, kq_fp32_to_fp16(d));
            for (int j = 0; j < QK / 2; ++j) {
                int lo = (int8_t)kq_trunc_i32(x[j] * id + 8.5f);
                int hi = (int8_t)kq_trunc_i32(x[j + QK / 2] * id + 8.5f);
                lo = lo < 15 ? lo : 15;
                hi = hi < 15 ? hi : 15;
                y[2 + j] = (uint8_t)((uint8_t)lo | ((uint8_t)hi << 4));
            }
        }
        return;
    }
    const float sigma2 = row_sigma2(x, n);
    float w[QK];
    int8_t L[QK];
    for (int64_t b = 0; b < nb; b++, x += QK, qw += QK, y += 18) {
        imatrix_weights(x, qw, sigma2, w);
        const float d = kq_make_qx_quants(QK, 8, x, L, 1, w);
        kq_put_u16(y, kq_fp32_to_fp16(d));
        for (int j = 0; j < QK / 2; ++j) y[2 + j] = (uint8_t)(L[j] | (L[j + QK / 2] << 4));
    }
}

void kq_dequantize_row_q4_0(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK; b++, x += 18, y += QK) {
        const float d = kq_fp16_to_fp32(kq_get_u16(x));
        for (int j = 0; j < QK / 2; ++j) {
            y[j] = ((x[2 + j] & 0x0F) - 8) * d;
            y[j + QK / 2] = ((x[2 + j] >> 4) - 8) * d;
        }
    }
}

/* ---------------- Q4_1: d, m; qs[16] (value l*d + m) ---------------- */

void kq_quantize_row_q4_1_scalar(const float *x, uint8_t *y, int64_t n, const float *qw) {
    const int64_t nb = n / QK;
    if (!qw) {
        for (int64_t b = 0; b < nb; b++, x += QK, y += 20) {
            float min, max;
            block_min_max(x, &min, &max);
            const float d = (max - min) / 15;
            const float id = d ? 1.0f / d : 0.0f;
            kq_put_u16(y, kq_fp32_to_fp16(d));
            kq_put_u16(y + 2, kq_fp32_to_fp16(min));
            for (int j = 0; j < QK / 2; ++j) {
                int lo = (int8_t)kq_trunc_i32((x[j] - min) * id + 0.5f);
                int hi = (int8_t)kq_trunc_i32((x[j + QK / 2] - min) * id + 0.5f);
                lo = lo < 15 ? lo : 15;
                hi = hi < 15 ? hi : 15;
                y[4 + j] = (uint8_t)((uint8_t)lo | ((uint8_t)hi << 4));
            }
        }
        return;
    }
    const float sigma2 = row_sigma2(x, n);
    float w[QK];
    uint8_t L[QK], Laux[QK];
    for (int64_t b = 0; b < nb; b++, x += QK, qw += QK, y += 20) {
        imatrix_weights(x, qw, sigma2, w);
        float min;
        const float d = kq_make_qkx3_quants(QK, 15, x, w, L, &min, Laux, -0.9f, 0.05f, 36, 0);
        kq_put_u16(y, kq_fp32_to_fp16(d));
        kq_put_u16(y + 2, kq_fp32_to_fp16(-min));
        for (int j = 0; j < QK / 2; ++j) y[4 + j] = (uint8_t)(L[j] | (L[j + QK / 2] << 4));
    }
}

void kq_dequantize_row_q4_1(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK; b++, x += 20, y += QK) {
        const float d = kq_fp16_to_fp32(kq_get_u16(x));
        const float m = kq_fp16_to_fp32(kq_get_u16(x + 2));
        for (int j = 0; j < QK / 2; ++j) {
            y[j] = (x[4 + j] & 0x0F) * d + m;
            y[j + QK / 2] = (x[4 + j] >> 4) * d + m;
        }
    }
}

/* ---------------- Q5_0: d; qh[4]; qs[16] (value (l-16)*d) ---------------- */

void kq_quantize_row_q5_0_scalar(const float *x, uint8_t *y, int64_t n, const float *qw) {
    const int64_t nb = n / QK;
    uint8_t L[QK];
    if (!qw) {
        for (int64_t b = 0; b < nb; b++, x += QK, y += 22) {
            const float d = signed_absmax(x) / -16;
            const float id = d ? 1.0f / d : 0.0f;
            kq_put_u16(y, kq_fp32_to_fp16(d));
            for (int j = 0; j < QK; ++j) {
                const int l = (int8_t)kq_trunc_i32(x[j] * id + 16.5f);
                L[j] = (uint8_t)(l < 31 ? l : 31);
            }
            pack_q5(L, y + 2, y + 6);
        }
        return;
    }
    const float sigma2 = row_sigma2(x, n);
    float w[QK];
    int8_t Ls[QK];
    for (int64_t b = 0; b < nb; b++, x += QK, qw += QK, y += 22) {
        imatrix_weights(x, qw, sigma2, w);
        const float d = kq_make_qx_quants(QK, 16, x, Ls, 1, w);
        kq_put_u16(y, kq_fp32_to_fp16(d));
        for (int j = 0; j < QK; ++j) L[j] = (uint8_t)Ls[j];
        pack_q5(L, y + 2, y + 6);
    }
}

void kq_dequantize_row_q5_0(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK; b++, x += 22, y += QK) {
        const float d = kq_fp16_to_fp32(kq_get_u16(x));
        uint32_t qh;
        memcpy(&qh, x + 2, 4);
        for (int j = 0; j < QK / 2; ++j) {
            const int lo = (x[6 + j] & 0x0F) | (int)(((qh >> j) << 4) & 0x10);
            const int hi = (x[6 + j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
            y[j] = (lo - 16) * d;
            y[j + QK / 2] = (hi - 16) * d;
        }
    }
}

/* ---------------- Q5_1: d, m; qh[4]; qs[16] (value l*d + m) ---------------- */

void kq_quantize_row_q5_1_scalar(const float *x, uint8_t *y, int64_t n, const float *qw) {
    const int64_t nb = n / QK;
    uint8_t L[QK];
    if (!qw) {
        for (int64_t b = 0; b < nb; b++, x += QK, y += 24) {
            float min, max;
            block_min_max(x, &min, &max);
            const float d = (max - min) / 31;
            const float id = d ? 1.0f / d : 0.0f;
            kq_put_u16(y, kq_fp32_to_fp16(d));
            kq_put_u16(y + 2, kq_fp32_to_fp16(min));
            /* no clamp here (as in ggml): (x-min)*id + 0.5 stays below 32 */
            for (int j = 0; j < QK; ++j) L[j] = (uint8_t)kq_trunc_i32((x[j] - min) * id + 0.5f);
            pack_q5(L, y + 4, y + 8);
        }
        return;
    }
    const float sigma2 = row_sigma2(x, n);
    float w[QK];
    uint8_t Laux[QK];
    for (int64_t b = 0; b < nb; b++, x += QK, qw += QK, y += 24) {
        imatrix_weights(x, qw, sigma2, w);
        float min;
        const float d = kq_make_qkx3_quants(QK, 31, x, w, L, &min, Laux, -0.9f, 0.05f, 36, 0);
        kq_put_u16(y, kq_fp32_to_fp16(d));
        kq_put_u16(y + 2, kq_fp32_to_fp16(-min));
        pack_q5(L, y + 4, y + 8);
    }
}

void kq_dequantize_row_q5_1(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK; b++, x += 24, y += QK) {
        const float d = kq_fp16_to_fp32(kq_get_u16(x));
        const float m = kq_fp16_to_fp32(kq_get_u16(x + 2));
        uint32_t qh;
        memcpy(&qh, x + 4, 4);
        for (int j = 0; j < QK / 2; ++j) {
            const int lo = (x[8 + j] & 0x0F) | (int)(((qh >> j) << 4) & 0x10);
            const int hi = (x[8 + j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
            y[j] = lo * d + m;
            y[j + QK / 2] = hi * d + m;
        }
    }
}
