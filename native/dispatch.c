/* Runtime choice of kernels, plus the library's entry points (input conversion, validation).
 *
 * One table per ISA, indexed by ggml type number, each generated from KQ_FOR_EACH_TYPE (see
 * "kernel tables" below for why every ISA has an entry for every type).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kquant_internal.h" /* first of ours: see KQ_WERROR there */
#include "kq_compiler.h"
#include "kquant.h"

/* A SIMD file is in the build (KQ_HAVE_*, from build_kquant.py) AND this compilation targets its
 * architecture: a macOS universal2 build compiles every file once for arm64 and once for x86-64. */
#if defined(KQ_HAVE_AVX2) && defined(KQ_X86_64)
#define KQ_USE_AVX2 1
#endif
#if defined(KQ_HAVE_NEON) && (defined(__aarch64__) || defined(_M_ARM64))
#define KQ_USE_NEON 1
#endif

/* ---- type geometry ---- */

typedef struct {
    int block_size;  /* weights per block; 0 = unsupported type */
    int block_bytes;
    kq_dequant_fn dequant;
} type_info;

#define KQ_TYPE_ROW(name, id, blk, bytes) [id] = {blk, bytes, kq_dequantize_row_##name},
static const type_info TYPES[KQ_TYPE_SLOTS] = {KQ_FOR_EACH_TYPE(KQ_TYPE_ROW)};
#undef KQ_TYPE_ROW

static const type_info *lookup(int type) {
    if (type < 0 || type >= KQ_TYPE_SLOTS || TYPES[type].block_size == 0) return NULL;
    return &TYPES[type];
}

/* ---- kernel tables ----
 * Every table comes from the one type list, KQ_FOR_EACH_TYPE (kquant_internal.h), so adding a
 * type there adds it to every ISA and a table can neither miss a type nor name a wrong one.
 *
 * Why not a second list of the types each SIMD file implements: AVX2 and NEON share their
 * kernels (the kq_lanes_*.h files, compiled once per ISA), so such a list would be the same for
 * both and, today, the same as KQ_FOR_EACH_TYPE itself: a copy to keep in step. Instead every
 * SIMD file defines kq_quantize_row_<type>_<isa> for EVERY type. A type without a lane kernel
 * yet is still one line: KQ_LANES_USE_SCALAR(<type>) in the kq_lanes_*.h file of its family
 * defines that entry point as a call of the scalar kernel. Forgetting a type is a link error
 * rather than a silent fallback, and no table entry is ever NULL. */

#define KQ_ROW_OF(isa, name, id) [id] = kq_quantize_row_##name##_##isa,
#define KQ_SCALAR_ROW(name, id, blk, bytes) KQ_ROW_OF(scalar, name, id)
static const kq_row_fn SCALAR_ROWS[KQ_TYPE_SLOTS] = {KQ_FOR_EACH_TYPE(KQ_SCALAR_ROW)};
#undef KQ_SCALAR_ROW

/* build_kquant.py defines KQ_HAVE_AVX2 / KQ_HAVE_NEON when it compiles avx2.c / neon.c. */
#if defined(KQ_USE_AVX2)
#define KQ_AVX2_ROW(name, id, blk, bytes) KQ_ROW_OF(avx2, name, id)
static const kq_row_fn AVX2_ROWS[KQ_TYPE_SLOTS] = {KQ_FOR_EACH_TYPE(KQ_AVX2_ROW)};
#undef KQ_AVX2_ROW
#endif

#if defined(KQ_USE_NEON)
#define KQ_NEON_ROW(name, id, blk, bytes) KQ_ROW_OF(neon, name, id)
static const kq_row_fn NEON_ROWS[KQ_TYPE_SLOTS] = {KQ_FOR_EACH_TYPE(KQ_NEON_ROW)};
#undef KQ_NEON_ROW
#endif
#undef KQ_ROW_OF

/* ---- ISA selection ---- */

static kq_atomic_int g_isa = -1; /* -1: not chosen yet */

#if defined(KQ_USE_AVX2)
/* Asked of the CPU itself rather than through a compiler's feature builtin: the same code for
 * GCC, Clang and MSVC, and it also checks that the OS saves the 256-bit registers. */
static int x86_has_avx2_f16c(void) {
    uint32_t r[4];
    kq_x86_cpuid(0, 0, r);
    if (r[0] < 7) return 0;
    kq_x86_cpuid(1, 0, r);
    const uint32_t osxsave = 1u << 27, avx = 1u << 28, f16c = 1u << 29;
    if ((r[2] & (osxsave | avx | f16c)) != (osxsave | avx | f16c)) return 0;
    if ((kq_x86_xcr0() & 6) != 6) return 0; /* the OS saves the XMM and YMM state */
    kq_x86_cpuid(7, 0, r);
    return (r[1] >> 5) & 1; /* AVX2 */
}
#endif

static int cpu_has(int isa) {
    switch (isa) {
    case KQ_ISA_SCALAR:
        return 1;
    case KQ_ISA_AVX2:
#if defined(KQ_USE_AVX2)
        return x86_has_avx2_f16c();
#else
        return 0;
#endif
    case KQ_ISA_NEON:
#if defined(KQ_USE_NEON)
        return 1; /* Advanced SIMD is part of every AArch64 CPU */
#else
        return 0;
#endif
    default:
        return 0;
    }
}

int kq_isa_available(int isa) { return cpu_has(isa); }

static int best_isa(void) {
    if (cpu_has(KQ_ISA_AVX2)) return KQ_ISA_AVX2;
    if (cpu_has(KQ_ISA_NEON)) return KQ_ISA_NEON;
    return KQ_ISA_SCALAR;
}

/* What QUANTDESK_ISA asks for (value: the variable, NULL when unset). A mistyped or impossible
 * setting is an error, not a silent fallback: someone who set it wants to know which kernels
 * run (benchmarks, bug reports), and with a fallback `QUANTDESK_ISA=avx` would measure AVX2 and
 * `QUANTDESK_ISA=avx2` on a CPU without it would measure scalar, both without a word. Empty
 * counts as unset, so `QUANTDESK_ISA= command` clears an exported value. */
int kq_isa_for_setting(const char *value) {
    if (!value || !value[0]) return best_isa();
    int wanted;
    if (strcmp(value, "scalar") == 0) wanted = KQ_ISA_SCALAR;
    else if (strcmp(value, "avx2") == 0) wanted = KQ_ISA_AVX2;
    else if (strcmp(value, "neon") == 0) wanted = KQ_ISA_NEON;
    else return KQ_ERR_ISA_UNKNOWN;
    return cpu_has(wanted) ? wanted : KQ_ERR_ISA_UNAVAILABLE;
}

int kq_active_isa(void) {
    int isa = kq_atomic_load(&g_isa);
    if (isa >= 0) return isa;
    isa = kq_isa_for_setting(getenv("QUANTDESK_ISA"));
    /* Only a choice is kept: an error is reported again on every call (it costs a getenv), until
     * the variable is fixed or kq_set_isa chooses. */
    if (isa >= 0) kq_atomic_store(&g_isa, isa);
    return isa;
}

int kq_set_isa(int isa) {
    if (!cpu_has(isa)) return -1;
    kq_atomic_store(&g_isa, isa);
    return 0;
}

/* The kernel of a supported type (lookup() has said so) for an ISA that cpu_has() allowed. */
static kq_row_fn row_kernel(int isa, int type) {
    switch (isa) {
#if defined(KQ_USE_AVX2)
    case KQ_ISA_AVX2: return AVX2_ROWS[type];
#endif
#if defined(KQ_USE_NEON)
    case KQ_ISA_NEON: return NEON_ROWS[type];
#endif
    default: return SCALAR_ROWS[type];
    }
}

/* ---- entry points ---- */

int kq_type_info(int type, int *block_size, int *block_bytes) {
    const type_info *t = lookup(type);
    if (!t) return KQ_ERR_TYPE;
    if (block_size) *block_size = t->block_size;
    if (block_bytes) *block_bytes = t->block_bytes;
    return 0;
}

int64_t kq_row_size(int type, int64_t n_per_row) {
    const type_info *t = lookup(type);
    if (!t) return KQ_ERR_TYPE;
    if (n_per_row <= 0 || n_per_row % t->block_size != 0) return KQ_ERR_ROW_LENGTH;
    if (n_per_row / t->block_size > INT64_MAX / t->block_bytes) return KQ_ERR_ROW_LENGTH;
    return n_per_row / t->block_size * t->block_bytes;
}

static inline int finite_f32(float v) { return (kq_f32_to_bits(v) & 0x7f800000u) != 0x7f800000u; }

/* Scalar loaders: the reference for the SIMD ones in avx2.c / neon.c (same contract, see
 * kquant_internal.h), what runs on a CPU without them, and what the SIMD ones call for the last
 * few values of a row that do not fill a vector. */
int kq_check_f32_scalar(const float *x, int64_t n) {
    /* (bits & exponent mask) + 2^23 sets bit 31 exactly for Inf/NaN. Written in fixed blocks
     * of 16 so the compiler vectorises it at -O2 (SSE2/NEON). */
    uint32_t acc = 0;
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        uint32_t b[16];
        memcpy(b, x + j, sizeof b);
        for (int k = 0; k < 16; ++k) acc |= (b[k] & 0x7f800000u) + 0x00800000u;
    }
    for (; j < n; ++j) acc |= (kq_f32_to_bits(x[j]) & 0x7f800000u) + 0x00800000u;
    return (int)(acc >> 31);
}

int kq_load_f16_scalar(const uint16_t *h, float *dst, int64_t n) {
    uint16_t bad = 0;
    for (int64_t j = 0; j < n; ++j) {
        bad |= (uint16_t)((h[j] & 0x7c00u) == 0x7c00u);
        dst[j] = kq_fp16_to_fp32(h[j]);
    }
    return bad;
}

int kq_load_bf16_scalar(const uint16_t *h, float *dst, int64_t n) {
    uint16_t bad = 0;
    for (int64_t j = 0; j < n; ++j) {
        bad |= (uint16_t)((h[j] & 0x7f80u) == 0x7f80u);
        dst[j] = kq_bf16_to_fp32(h[j]);
    }
    return bad;
}

/* The three loaders of one ISA. */
typedef struct {
    int (*check_f32)(const float *x, int64_t n);
    int (*load_f16)(const uint16_t *src, float *dst, int64_t n);
    int (*load_bf16)(const uint16_t *src, float *dst, int64_t n);
} row_loaders;

static row_loaders loaders_for(int isa) {
    switch (isa) {
#if defined(KQ_USE_AVX2)
    case KQ_ISA_AVX2: return (row_loaders){kq_check_f32_avx2, kq_load_f16_avx2, kq_load_bf16_avx2};
#endif
#if defined(KQ_USE_NEON)
    case KQ_ISA_NEON: return (row_loaders){kq_check_f32_neon, kq_load_f16_neon, kq_load_bf16_neon};
#endif
    default: return (row_loaders){kq_check_f32_scalar, kq_load_f16_scalar, kq_load_bf16_scalar};
    }
}

/* Converts one row to float32 in scratch (f16/bf16) or checks it in place (f32), in one pass,
 * right before the kernel reads it (so the row is still in L1 cache).
 * Returns the float row to quantize, or NULL if the row holds a NaN or Inf. */
static const float *load_row(const row_loaders *ld, int src_format, const void *src, int64_t n,
                             float *scratch) {
    if (src_format == KQ_SRC_F32) return ld->check_f32((const float *)src, n) ? NULL : (const float *)src;
    const uint16_t *h = (const uint16_t *)src;
    const int bad = src_format == KQ_SRC_F16 ? ld->load_f16(h, scratch, n) : ld->load_bf16(h, scratch, n);
    return bad ? NULL : scratch;
}

int64_t kq_quantize(int type, int src_format, const void *src, int64_t nrows, int64_t n_per_row,
                    const float *imatrix, void *dst, int64_t dst_size, int64_t *bad_row) {
    if (bad_row) *bad_row = -1;
    const int64_t row_bytes = kq_row_size(type, n_per_row);
    if (row_bytes < 0) return row_bytes;
    if (!src || !dst || nrows < 0) return KQ_ERR_ARGS;
    if (src_format != KQ_SRC_F32 && src_format != KQ_SRC_F16 && src_format != KQ_SRC_BF16)
        return KQ_ERR_ARGS;
    if (nrows > 0 && (dst_size < 0 || row_bytes > dst_size / nrows)) return KQ_ERR_DST_SIZE;
    if (imatrix) {
        for (int64_t j = 0; j < n_per_row; ++j)
            if (!finite_f32(imatrix[j])) return KQ_ERR_IMATRIX;
    }
    /* One ISA for the whole call: kernel and loaders. */
    const int isa = kq_active_isa();
    if (isa < 0) return isa; /* QUANTDESK_ISA is wrong: KQ_ERR_ISA_UNKNOWN or KQ_ERR_ISA_UNAVAILABLE */
    const size_t elem = src_format == KQ_SRC_F32 ? 4 : 2;
    float *scratch = NULL;
    if (src_format != KQ_SRC_F32) {
        scratch = (float *)malloc((size_t)n_per_row * sizeof(float));
        if (!scratch) return KQ_ERR_NOMEM;
    }
    const kq_row_fn kernel = row_kernel(isa, type);
    const row_loaders ld = loaders_for(isa);
    const uint8_t *s = (const uint8_t *)src;
    uint8_t *d = (uint8_t *)dst;
    int64_t r = 0;
    for (; r < nrows; ++r) {
        const float *x = load_row(&ld, src_format, s + (size_t)r * (size_t)n_per_row * elem, n_per_row, scratch);
        if (!x) break;
        kernel(x, d + r * row_bytes, n_per_row, imatrix);
    }
    free(scratch);
    if (r < nrows) {
        if (bad_row) *bad_row = r;
        return KQ_ERR_NONFINITE;
    }
    return nrows * row_bytes;
}

int64_t kq_dequantize(int type, const void *src, int64_t src_size, float *dst, int64_t nrows,
                      int64_t n_per_row) {
    const type_info *t = lookup(type);
    const int64_t row_bytes = kq_row_size(type, n_per_row);
    if (row_bytes < 0) return row_bytes;
    if (!src || !dst || nrows < 0) return KQ_ERR_ARGS;
    if (nrows > 0 && (src_size < 0 || row_bytes > src_size / nrows)) return KQ_ERR_DST_SIZE;
    for (int64_t r = 0; r < nrows; ++r)
        t->dequant((const uint8_t *)src + r * row_bytes, dst + r * n_per_row, n_per_row);
    return nrows * n_per_row;
}
