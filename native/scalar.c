/* Scalar reference kernels: the definition of correct output for every other ISA. */
#include <math.h>
#include <string.h>
#include "kquant.h"
#include "kquant_internal.h"

void kq_q8_0_row_scalar(const float *x, uint8_t *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        uint8_t *yb = y + b * 34;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            float v = fabsf(xb[j]);
            if (v > amax) amax = v;
        }
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        uint16_t h = kq_fp32_to_fp16(d);
        memcpy(yb, &h, 2);
        for (int j = 0; j < 32; j++) yb[2 + j] = (uint8_t)(int8_t)roundf(xb[j] * id);
    }
}
