/* Scalar reference kernels of the non-linear 4-bit types IQ4_NL (32-weight blocks) and IQ4_XS
 * (256-weight super-blocks with 6-bit sub-block scales).
 *
 * Each weight becomes an index into a fixed 16-entry code book of int8 values. Files get what
 * ggml's quantize_iq4_nl / quantize_iq4_xs write: a search over 15 trial scales (ntry = 7),
 * weighting each weight by x^2 (no imatrix) or qw*sqrt(sigma^2 + x^2).
 */
#include <math.h>
#include <string.h>
#include "kquant_internal.h"

const int8_t kq_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                    1,    13,   25,  38,  53,  69,  89,  113};

#define NTRY 7

/* Index of the code book value nearest to x, decided as ggml decides it: clamp to the ends,
 * bisect to the bracketing pair, then take the lower one only if strictly closer (float
 * differences). A NaN x falls through every comparison and lands on index 15. */
static inline int nearest_code(float x) {
    const int8_t *v = kq_iq4nl_values;
    if (x <= v[0]) return 0;
    if (x >= v[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (x < v[mid]) hi = mid;
        else lo = mid;
    }
    return x - v[hi - 1] < v[hi] - x ? hi - 1 : hi;
}

/* Best scale of one 32-weight block (weights w), searched as ggml's quantize_row_iq4_nl_impl. */
static float block_scale(const float *xb, const float *w) {
    const int8_t *values = kq_iq4nl_values;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; ++j) {
        const float ax = fabsf(xb[j]);
        if (ax > amax) { amax = ax; max = xb[j]; }
    }
    if (amax < KQ_GROUP_MAX_EPS) return 0.0f;

    float d = -max / values[0];
    float id = 1 / d;
    float sumqx = 0.0f, sumq2 = 0.0f;
    for (int j = 0; j < 32; ++j) {
        const float q = values[nearest_code(id * xb[j])];
        sumqx += w[j] * q * xb[j];
        sumq2 += w[j] * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
    float best = d * sumqx;
    for (int itry = -NTRY; itry <= NTRY; ++itry) {
        id = (itry + values[0]) / max;
        sumqx = sumq2 = 0.0f;
        for (int j = 0; j < 32; ++j) {
            const float q = values[nearest_code(id * xb[j])];
            sumqx += w[j] * q * xb[j];
            sumq2 += w[j] * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* sigma^2 of a block of n weights as ggml computes it: sum x^2, then times 2/n. */
static float block_sigma2(const float *x, int n) { return kq_sum_squares(x, n) * (2.f / n); }

static void block_weights(const float *xb, const float *qw, float sigma2, float *w) {
    if (qw) {
        for (int j = 0; j < 32; ++j) w[j] = qw[j] * sqrtf(sigma2 + xb[j] * xb[j]);
    } else {
        for (int j = 0; j < 32; ++j) w[j] = xb[j] * xb[j];
    }
}

/* Levels of 32 weights (indices j and j+16 share a byte). */
static void pack_block(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < 16; ++j) qs[j] = (uint8_t)(L[j] | (L[16 + j] << 4));
}

/* ---------------- IQ4_NL: d (fp16), qs[16] ---------------- */

void kq_quantize_row_iq4_nl_scalar(const float *x, uint8_t *y, int64_t n, const float *qw) {
    float w[32];
    uint8_t L[32];
    for (int64_t b = 0; b < n / 32; b++, x += 32, y += 18) {
        const float sigma2 = block_sigma2(x, 32);
        block_weights(x, qw ? qw + 32 * b : NULL, sigma2, w);
        const float d = block_scale(x, w);
        kq_put_u16(y, kq_fp32_to_fp16(d));
        const float id = d ? 1 / d : 0;
        for (int j = 0; j < 32; ++j) L[j] = (uint8_t)nearest_code(id * x[j]);
        pack_block(L, y + 2);
    }
}

void kq_dequantize_row_iq4_nl(const uint8_t *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 18, y += 32) {
        const float d = kq_fp16_to_fp32(kq_get_u16(x));
        for (int j = 0; j < 16; ++j) {
            y[j] = d * kq_iq4nl_values[x[2 + j] & 0xF];
            y[j + 16] = d * kq_iq4nl_values[x[2 + j] >> 4];
        }
    }
}

/* ---------------- IQ4_XS: d; u16 scales_h; scales_l[4]; qs[128] ----------------
 * Sub-block j's scale is d * (ls - 32), ls 6 bits: low nibble in scales_l, high 2 bits in scales_h. */

void kq_quantize_row_iq4_xs_scalar(const float *x, uint8_t *y, int64_t n, const float *qw) {
    float w[32], scales[8];
    uint8_t L[32];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, y += 136) {
        const float *qwb = qw ? qw + QK_K * i : NULL;
        const float sigma2 = block_sigma2(x, QK_K);
        float max_scale = 0.0f, amax_scale = 0.0f;
        for (int ib = 0; ib < 8; ++ib) {
            block_weights(x + 32 * ib, qwb ? qwb + 32 * ib : NULL, sigma2, w);
            scales[ib] = block_scale(x + 32 * ib, w);
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
            const float *xb = x + 32 * ib;
            for (int j = 0; j < 32; ++j) L[j] = (uint8_t)nearest_code(idl * xb[j]);
            pack_block(L, y + 8 + 16 * ib);
            l += 32;
            scales_l[ib / 2] = (uint8_t)(scales_l[ib / 2] | ((l & 0xF) << (4 * (ib % 2))));
            scales_h = (uint16_t)(scales_h | ((l >> 4) << (2 * ib)));
        }
        kq_put_u16(y + 2, scales_h);
    }
}

void kq_dequantize_row_iq4_xs(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++, x += 136) {
        const float d = kq_fp16_to_fp32(kq_get_u16(x));
        const uint16_t scales_h = kq_get_u16(x + 2);
        const uint8_t *qs = x + 8;
        for (int ib = 0; ib < 8; ++ib, y += 32, qs += 16) {
            const int ls = ((x[4 + ib / 2] >> (4 * (ib % 2))) & 0xF) | (((scales_h >> (2 * ib)) & 3) << 4);
            const float dl = d * (ls - 32);
            for (int j = 0; j < 16; ++j) {
                y[j] = dl * kq_iq4nl_values[qs[j] & 0xF];
                y[j + 16] = dl * kq_iq4nl_values[qs[j] >> 4];
            }
        }
    }
}
