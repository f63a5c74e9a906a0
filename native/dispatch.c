/* Runtime choice of kernels from the CPU's features, with an override for tests. */
#include <stdlib.h>
#include <string.h>
#include "kquant.h"
#include "kquant_internal.h"

static int g_isa = -1;

static int best_isa(void) {
#if defined(__x86_64__) || defined(_M_X64)
#if defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) return KQ_ISA_AVX2;
#endif
#elif defined(__aarch64__) || defined(_M_ARM64)
    return KQ_ISA_NEON;
#endif
    return KQ_ISA_SCALAR;
}

static int isa_supported(int isa) {
    if (isa == KQ_ISA_SCALAR) return 1;
    return isa == best_isa();
}

int kq_active_isa(void) {
    if (g_isa < 0) {
        g_isa = best_isa();
        const char *env = getenv("QUANTDESK_ISA");
        if (env && strcmp(env, "scalar") == 0) g_isa = KQ_ISA_SCALAR;
    }
    return g_isa;
}

int kq_set_isa(int isa) {
    if (!isa_supported(isa)) return -1;
    g_isa = isa;
    return 0;
}

int64_t kq_quantize_f32(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                        const float *imatrix) {
    (void)imatrix;
    if (type != KQ_TYPE_Q8_0 || n_per_row % 32 != 0 || nrows < 0) return -1;
    const int64_t row_bytes = n_per_row / 32 * 34;
    for (int64_t r = 0; r < nrows; r++)
        kq_q8_0_row_scalar(src + r * n_per_row, (uint8_t *)dst + r * row_bytes, n_per_row);
    return nrows * row_bytes;
}
