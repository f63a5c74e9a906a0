/* C tests of the k-quant library, meant to run under AddressSanitizer + UBSan (make test-native)
 * and, cross-compiled for arm64, under qemu-aarch64 (make test-neon).
 *
 * 1. Every SIMD path this machine can run writes the same bytes as the scalar path, for every
 *    type, with and without an importance matrix, on random and adversarial rows of many lengths.
 *    The comparison goes through the public kq_quantize with kq_set_isa, i.e. through the same
 *    dispatch table the Python API uses.
 * 2. Bad input (NaN/Inf rows, NaN imatrix, bad row lengths, short buffers, NULLs) returns the
 *    documented error and never writes outside dst (exact-size heap buffers for ASan, plus
 *    canaries around dst).
 * 3. Half-precision input: on every ISA, float16 and bfloat16 rows (every finite bit pattern)
 *    give the same bytes as the same values given as float32, and a NaN/Inf anywhere in a
 *    half-precision row is reported with that row's index.
 * 4. QUANTDESK_ISA: an unknown value, or an ISA this CPU or build cannot run, is an error from
 *    kq_active_isa and kq_quantize (which then writes nothing), as kquant.h documents.
 *
 * Usage: test_simd [rounds]   (rounds of random rows per type; default 40)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kquant.h"
#include "kquant_internal.h"

static int g_failures = 0;
static int g_checks = 0;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        g_checks++;                                                        \
        if (!(cond)) {                                                     \
            g_failures++;                                                  \
            if (g_failures <= 30) {                                        \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);       \
                fprintf(stderr, __VA_ARGS__);                              \
                fprintf(stderr, "\n");                                     \
            }                                                              \
        }                                                                  \
    } while (0)

/* ---- deterministic random numbers ---- */
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd_u64(void) {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545F4914F6CDD1Dull;
}
static float rnd_unit(void) { return (float)((rnd_u64() >> 40) * (1.0 / 16777216.0)); } /* [0,1) */
static float rnd_gauss(void) {
    float u = rnd_unit(), v = rnd_unit();
    if (u < 1e-7f) u = 1e-7f;
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

typedef struct {
    const char *name;
    int type, block;
} qtype;

static const qtype TYPES[] = {
    {"Q4_0", KQ_TYPE_Q4_0, 32},  {"Q4_1", KQ_TYPE_Q4_1, 32},     {"Q5_0", KQ_TYPE_Q5_0, 32},
    {"Q5_1", KQ_TYPE_Q5_1, 32},  {"Q8_0", KQ_TYPE_Q8_0, 32},     {"Q2_K", KQ_TYPE_Q2_K, 256},
    {"Q3_K", KQ_TYPE_Q3_K, 256}, {"Q4_K", KQ_TYPE_Q4_K, 256},    {"Q5_K", KQ_TYPE_Q5_K, 256},
    {"Q6_K", KQ_TYPE_Q6_K, 256}, {"IQ4_NL", KQ_TYPE_IQ4_NL, 32}, {"IQ4_XS", KQ_TYPE_IQ4_XS, 256},
};
#define NTYPES (int)(sizeof(TYPES) / sizeof(TYPES[0]))

static const char *isa_name(int isa) {
    return isa == KQ_ISA_SCALAR ? "scalar" : isa == KQ_ISA_AVX2 ? "avx2" : "neon";
}

/* ---- row generators ---- */
enum { GEN_GAUSS, GEN_HEAVY, GEN_UNIFORM, GEN_ZERO, GEN_CONST, GEN_OUTLIER, GEN_SUBNORMAL, GEN_F16_LIMIT,
       GEN_TINY, GEN_SIGNED_ZEROS, GEN_SMALL_INTS, GEN_SPARSE, GEN_POSITIVE, GEN_MIXED_SCALE, GEN_HUGE,
       GEN_LOPSIDED, GEN_COUNT };

static void gen_row(float *x, int64_t n, int kind) {
    const float scale = powf(10.0f, (float)((int)(rnd_u64() % 7) - 4)); /* 1e-4 .. 1e2 */
    for (int64_t j = 0; j < n; j++) {
        float v;
        switch (kind) {
        case GEN_GAUSS: v = scale * rnd_gauss(); break;
        case GEN_HEAVY: { float g = rnd_gauss(); v = scale * g * g * g; break; }
        case GEN_UNIFORM: v = scale * (2.0f * rnd_unit() - 1.0f); break;
        case GEN_ZERO: v = 0.0f; break;
        case GEN_CONST: v = 0.37f * scale; break;
        case GEN_OUTLIER: v = 0.01f * rnd_gauss(); break;
        case GEN_SUBNORMAL: v = (rnd_unit() - 0.5f) * 1e-38f; break;
        case GEN_F16_LIMIT: v = (rnd_u64() & 1 ? 1.0f : -1.0f) * (65504.0f + 64.0f * rnd_unit()) * (rnd_u64() % 3 ? 1.0f : 127.0f); break;
        case GEN_TINY: v = (rnd_unit() - 0.5f) * 4e-15f; break;
        case GEN_SIGNED_ZEROS: v = (rnd_u64() & 1) ? -0.0f : 0.0f; if (rnd_u64() % 5 == 0) v = rnd_gauss(); break;
        case GEN_SMALL_INTS: v = (float)((int)(rnd_u64() % 9) - 4); break;
        case GEN_SPARSE: v = (rnd_u64() % 8 == 0) ? scale * rnd_gauss() : 0.0f; break;
        case GEN_POSITIVE: v = scale * (rnd_unit() + 0.5f); break;
        case GEN_MIXED_SCALE: v = rnd_gauss() * powf(10.0f, (float)((int)(rnd_u64() % 13) - 6)); break;
        /* overflowing products (x^2, w*x*l) and constant huge rows */
        case GEN_HUGE: v = (rnd_u64() % 4 ? 1.0f : -1.0f) * powf(10.0f, 15.0f + 23.0f * rnd_unit()); if (j % 3 == 0) v = 2.8858e16f; break;
        /* a tiny positive max next to large negatives: trial scales far out of range */
        default: v = (j % 7 == 0) ? 1e-30f * rnd_unit() : -scale * rnd_unit(); break;
        }
        x[j] = v;
    }
    if (kind == GEN_OUTLIER && n > 0) x[rnd_u64() % (uint64_t)n] = (rnd_u64() & 1 ? 1.0f : -1.0f) * 300.0f * scale;
}

static void gen_imatrix(float *w, int64_t n) {
    const int kind = (int)(rnd_u64() % 4);
    for (int64_t j = 0; j < n; j++) {
        float v = rnd_unit();
        if (kind == 1) v = v * v * 100.0f;
        if (kind == 2) v = (rnd_u64() % 4 == 0) ? 0.0f : v;
        if (kind == 3) v = 1.0f;
        w[j] = v;
    }
}

/* ---- 1. SIMD == scalar ---- */

/* Quantize with the given ISA into an exact-size heap buffer; returns it (caller frees). */
static uint8_t *quantize_with(int isa, const qtype *t, const float *x, int64_t nrows, int64_t n, const float *qw,
                              int64_t *size_out) {
    if (kq_set_isa(isa) != 0) return NULL;
    const int64_t size = kq_row_size(t->type, n) * nrows;
    uint8_t *dst = (uint8_t *)malloc((size_t)size);
    memset(dst, 0xA5, (size_t)size);
    const int64_t got = kq_quantize(t->type, KQ_SRC_F32, x, nrows, n, qw, dst, size, NULL);
    CHECK(got == size, "%s %s: kq_quantize returned %lld, expected %lld", t->name, isa_name(isa), (long long)got,
          (long long)size);
    *size_out = size;
    return dst;
}

static void compare_case(int isa, const qtype *t, const float *x, int64_t nrows, int64_t n, const float *qw,
                         const char *what) {
    int64_t s1 = 0, s2 = 0;
    uint8_t *ref = quantize_with(KQ_ISA_SCALAR, t, x, nrows, n, qw, &s1);
    uint8_t *got = quantize_with(isa, t, x, nrows, n, qw, &s2);
    if (ref && got) {
        int64_t first = -1;
        for (int64_t i = 0; i < s1; i++)
            if (ref[i] != got[i]) { first = i; break; }
        CHECK(first < 0, "%s %s != scalar (%s, %lld rows of %lld, imatrix %s): first diff at byte %lld (row %lld)",
              t->name, isa_name(isa), what, (long long)nrows, (long long)n, qw ? "yes" : "no", (long long)first,
              (long long)(first / kq_row_size(t->type, n)));
    }
    free(ref);
    free(got);
}

static void test_simd_matches_scalar(int isa, int rounds) {
    static const char *GEN_NAMES[GEN_COUNT] = {"gauss", "heavy", "uniform", "zero", "const", "outlier", "subnormal",
                                               "f16-limit", "tiny", "signed-zeros", "small-ints", "sparse",
                                               "positive", "mixed-scale", "huge", "lopsided"};
    for (int ti = 0; ti < NTYPES; ti++) {
        const qtype *t = &TYPES[ti];
        const int before = g_failures;
        for (int r = 0; r < rounds; r++) {
            /* lengths: 1..12 blocks, sometimes the real 1536 / 4096 shapes */
            int64_t nblocks = 1 + (int64_t)(rnd_u64() % 12);
            if (r % 10 == 3) nblocks = 1536 / t->block;
            if (r % 10 == 7) nblocks = 4096 / t->block;
            const int64_t n = nblocks * t->block;
            const int64_t nrows = 1 + (int64_t)(rnd_u64() % 3);
            const int kind = r % GEN_COUNT;
            float *x = (float *)malloc((size_t)(n * nrows) * sizeof(float));
            float *qw = (float *)malloc((size_t)n * sizeof(float));
            for (int64_t row = 0; row < nrows; row++) gen_row(x + row * n, n, (kind + (int)row) % GEN_COUNT);
            gen_imatrix(qw, n);
            compare_case(isa, t, x, nrows, n, NULL, GEN_NAMES[kind]);
            compare_case(isa, t, x, nrows, n, qw, GEN_NAMES[kind]);
            free(x);
            free(qw);
        }
        printf("  %-7s %s vs scalar: %s\n", t->name, isa_name(isa), g_failures == before ? "identical" : "DIFFERENT");
    }
}

/* ---- 2. bad input ---- */

static void test_bad_input(int isa) {
    CHECK(kq_set_isa(isa) == 0, "cannot select %s", isa_name(isa));
    for (int ti = 0; ti < NTYPES; ti++) {
        const qtype *t = &TYPES[ti];
        const int64_t n = 2 * t->block, nrows = 3;
        const int64_t rb = kq_row_size(t->type, n);
        float *x = (float *)malloc((size_t)(n * nrows) * sizeof(float));
        for (int64_t j = 0; j < n * nrows; j++) x[j] = rnd_gauss();
        /* dst with canaries: 64 bytes before and after */
        const int64_t size = rb * nrows;
        uint8_t *buf = (uint8_t *)malloc((size_t)size + 128);
        uint8_t *dst = buf + 64;
        int64_t bad_row = 0;

        /* NaN / Inf in row 1: rows before are written, error names row 1, nothing past dst */
        const float poison[2] = {NAN, INFINITY};
        for (int p = 0; p < 2; p++) {
            memset(buf, 0xCC, (size_t)size + 128);
            x[n + 5] = poison[p];
            int64_t got = kq_quantize(t->type, KQ_SRC_F32, x, nrows, n, NULL, dst, size, &bad_row);
            CHECK(got == KQ_ERR_NONFINITE && bad_row == 1, "%s %s: non-finite row -> %lld (bad_row %lld)", t->name,
                  isa_name(isa), (long long)got, (long long)bad_row);
            x[n + 5] = 1.0f;
            int clean = 1;
            for (int k = 0; k < 64; k++) clean &= buf[k] == 0xCC && buf[64 + size + k] == 0xCC;
            CHECK(clean, "%s %s: write outside dst on a non-finite row", t->name, isa_name(isa));
        }
        /* NaN in the importance matrix */
        float *qw = (float *)malloc((size_t)n * sizeof(float));
        for (int64_t j = 0; j < n; j++) qw[j] = 1.0f;
        qw[n - 1] = NAN;
        CHECK(kq_quantize(t->type, KQ_SRC_F32, x, nrows, n, qw, dst, size, NULL) == KQ_ERR_IMATRIX,
              "%s: NaN imatrix accepted", t->name);
        free(qw);
        /* bad row lengths */
        const int64_t bad_lengths[4] = {0, -t->block, t->block + 1, t->block / 2};
        for (int k = 0; k < 4; k++) {
            memset(buf, 0xCC, (size_t)size + 128);
            const int64_t got = kq_quantize(t->type, KQ_SRC_F32, x, 1, bad_lengths[k], NULL, dst, size, NULL);
            CHECK(got == KQ_ERR_ROW_LENGTH, "%s: row length %lld -> %lld", t->name, (long long)bad_lengths[k],
                  (long long)got);
            int untouched = 1;
            for (int64_t i = 0; i < size + 128; i++) untouched &= buf[i] == 0xCC;
            CHECK(untouched, "%s: wrote on a bad row length", t->name);
        }
        CHECK(kq_row_size(t->type, t->block + 1) == KQ_ERR_ROW_LENGTH, "%s: kq_row_size accepted a bad length",
              t->name);
        /* dst one byte short: refused, nothing written */
        memset(buf, 0xCC, (size_t)size + 128);
        CHECK(kq_quantize(t->type, KQ_SRC_F32, x, nrows, n, NULL, dst, size - 1, NULL) == KQ_ERR_DST_SIZE,
              "%s: short dst accepted", t->name);
        /* NULL pointers, negative rows, unknown formats and types */
        CHECK(kq_quantize(t->type, KQ_SRC_F32, NULL, nrows, n, NULL, dst, size, NULL) == KQ_ERR_ARGS,
              "%s: NULL src accepted", t->name);
        CHECK(kq_quantize(t->type, KQ_SRC_F32, x, nrows, n, NULL, NULL, size, NULL) == KQ_ERR_ARGS,
              "%s: NULL dst accepted", t->name);
        CHECK(kq_quantize(t->type, KQ_SRC_F32, x, -1, n, NULL, dst, size, NULL) == KQ_ERR_ARGS,
              "%s: negative rows accepted", t->name);
        CHECK(kq_quantize(t->type, 7, x, nrows, n, NULL, dst, size, NULL) == KQ_ERR_ARGS,
              "%s: unknown src format accepted", t->name);
        /* a good call fills dst exactly */
        memset(buf, 0xCC, (size_t)size + 128);
        CHECK(kq_quantize(t->type, KQ_SRC_F32, x, nrows, n, NULL, dst, size, NULL) == size, "%s: good call failed",
              t->name);
        int clean = 1;
        for (int k = 0; k < 64; k++) clean &= buf[k] == 0xCC && buf[64 + size + k] == 0xCC;
        CHECK(clean, "%s %s: write outside dst", t->name, isa_name(isa));
        free(buf);
        free(x);
    }
    CHECK(kq_quantize(1, KQ_SRC_F32, (const float[32]){0}, 1, 32, NULL, (uint8_t[64]){0}, 64, NULL) == KQ_ERR_TYPE,
          "type 1 (F16) accepted");
    CHECK(kq_quantize(99, KQ_SRC_F32, (const float[32]){0}, 1, 32, NULL, (uint8_t[64]){0}, 64, NULL) == KQ_ERR_TYPE,
          "type 99 accepted");
}

/* ---- 3. half-precision input ---- */

/* Every finite 16-bit pattern of the format (others replaced by zero), in order, then shuffled,
 * as 2 x 64 rows of 1024. */
static void half_patterns(uint16_t *h, int bf16) {
    const uint16_t expo = bf16 ? 0x7f80u : 0x7c00u;
    for (int k = 0; k < 65536; k++) h[k] = (uint16_t)(((k & expo) == expo) ? 0 : k);
    memcpy(h + 65536, h, 65536 * sizeof(uint16_t));
    for (int k = 65535; k > 0; k--) {
        const int j = (int)(rnd_u64() % (uint64_t)(k + 1));
        const uint16_t t = h[65536 + k];
        h[65536 + k] = h[65536 + j];
        h[65536 + j] = t;
    }
}

static void test_half_input(int isa) {
    CHECK(kq_set_isa(isa) == 0, "cannot select %s", isa_name(isa));
    const int64_t n = 1024, nrows = 128;
    uint16_t *h = (uint16_t *)malloc((size_t)(n * nrows) * sizeof(uint16_t));
    float *x = (float *)malloc((size_t)(n * nrows) * sizeof(float));
    const int before = g_failures;
    for (int fmt = KQ_SRC_F16; fmt <= KQ_SRC_BF16; fmt++) {
        const int bf16 = fmt == KQ_SRC_BF16;
        const char *fname = bf16 ? "bf16" : "f16";
        half_patterns(h, bf16);
        for (int64_t j = 0; j < n * nrows; j++) x[j] = bf16 ? kq_bf16_to_fp32(h[j]) : kq_fp16_to_fp32(h[j]);
        for (int ti = 0; ti < NTYPES; ti++) {
            const qtype *t = &TYPES[ti];
            const int64_t size = kq_row_size(t->type, n) * nrows;
            uint8_t *a = (uint8_t *)malloc((size_t)size), *b = (uint8_t *)malloc((size_t)size);
            const int64_t ga = kq_quantize(t->type, fmt, h, nrows, n, NULL, a, size, NULL);
            const int64_t gb = kq_quantize(t->type, KQ_SRC_F32, x, nrows, n, NULL, b, size, NULL);
            CHECK(ga == size && gb == size && memcmp(a, b, (size_t)size) == 0,
                  "%s %s: %s input differs from the same values as f32 (%lld, %lld)", t->name, isa_name(isa),
                  fname, (long long)ga, (long long)gb);
            free(a);
            free(b);
        }
        /* Inf, -Inf, quiet and signalling NaN at the edges of vector widths, in row 2 of 4 */
        const uint16_t poison_f16[4] = {0x7c00u, 0xfc00u, 0x7e00u, 0x7c01u};
        const uint16_t poison_bf16[4] = {0x7f80u, 0xff80u, 0x7fc0u, 0x7f81u};
        const int64_t at[8] = {0, 1, 7, 8, 15, 16, 31, n - 1};
        const int64_t size = kq_row_size(KQ_TYPE_Q8_0, n) * 4;
        uint8_t *dst = (uint8_t *)malloc((size_t)size);
        for (int p = 0; p < 4; p++) {
            for (int k = 0; k < 8; k++) {
                uint16_t *cell = h + 2 * n + at[k];
                const uint16_t keep = *cell;
                *cell = bf16 ? poison_bf16[p] : poison_f16[p];
                int64_t bad_row = -7;
                const int64_t got = kq_quantize(KQ_TYPE_Q8_0, fmt, h, 4, n, NULL, dst, size, &bad_row);
                CHECK(got == KQ_ERR_NONFINITE && bad_row == 2, "%s %s: 0x%04x at column %lld -> %lld (row %lld)",
                      isa_name(isa), fname, (unsigned)*cell, (long long)at[k], (long long)got, (long long)bad_row);
                *cell = keep;
            }
        }
        free(dst);
    }
    printf("  f16/bf16 input (%s) vs f32: %s\n", isa_name(isa), g_failures == before ? "identical" : "DIFFERENT");
    free(h);
    free(x);
}

/* ---- 4. QUANTDESK_ISA ---- */

/* The ISA an unset QUANTDESK_ISA gives: the best this CPU and build have. */
static int best_available_isa(void) {
    if (kq_isa_available(KQ_ISA_AVX2)) return KQ_ISA_AVX2;
    if (kq_isa_available(KQ_ISA_NEON)) return KQ_ISA_NEON;
    return KQ_ISA_SCALAR;
}

/* Every value through the parser dispatch.c applies to the variable. */
static void test_isa_setting(void) {
    CHECK(kq_isa_for_setting(NULL) == best_available_isa(), "unset QUANTDESK_ISA gives %d", kq_isa_for_setting(NULL));
    CHECK(kq_isa_for_setting("") == best_available_isa(), "empty QUANTDESK_ISA gives %d", kq_isa_for_setting(""));
    CHECK(kq_isa_for_setting("scalar") == KQ_ISA_SCALAR, "QUANTDESK_ISA=scalar gives %d", kq_isa_for_setting("scalar"));
    const char *names[2] = {"avx2", "neon"};
    const int isas[2] = {KQ_ISA_AVX2, KQ_ISA_NEON};
    for (int k = 0; k < 2; k++) {
        const int want = kq_isa_available(isas[k]) ? isas[k] : KQ_ERR_ISA_UNAVAILABLE;
        CHECK(kq_isa_for_setting(names[k]) == want, "QUANTDESK_ISA=%s gives %d, expected %d", names[k],
              kq_isa_for_setting(names[k]), want);
    }
    /* exact lowercase names only: no case folding, no trimming, no prefixes */
    const char *bad[] = {"bogus", "AVX2", "Scalar", " scalar", "scalar ", "avx", "avx512", "sse2", "neon64", "auto"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        CHECK(kq_isa_for_setting(bad[k]) == KQ_ERR_ISA_UNKNOWN, "QUANTDESK_ISA='%s' gives %d, expected %d", bad[k],
              kq_isa_for_setting(bad[k]), KQ_ERR_ISA_UNKNOWN);
}

static void set_env(const char *name, const char *value) {
#if defined(_WIN32)
    _putenv_s(name, value ? value : ""); /* an empty value removes the variable */
#else
    if (value) setenv(name, value, 1);
    else unsetenv(name);
#endif
}

/* A bad value (set for real) makes kq_active_isa and kq_quantize fail without writing, until
 * kq_set_isa chooses. Must run before anything calls kq_set_isa: a choice, once made, is kept. */
static void test_isa_env(void) {
    float x[32];
    for (int j = 0; j < 32; j++) x[j] = (float)j - 15.5f;
    uint8_t dst[34];
    /* No CPU runs both AVX2 and NEON, so one of them is always unavailable. */
    const char *values[2] = {"bogus", kq_isa_available(KQ_ISA_NEON) ? "avx2" : "neon"};
    const int codes[2] = {KQ_ERR_ISA_UNKNOWN, KQ_ERR_ISA_UNAVAILABLE};
    for (int k = 0; k < 2; k++) {
        set_env("QUANTDESK_ISA", values[k]);
        CHECK(kq_active_isa() == codes[k], "QUANTDESK_ISA=%s: kq_active_isa() = %d, expected %d", values[k],
              kq_active_isa(), codes[k]);
        memset(dst, 0xAB, sizeof dst);
        const int64_t got = kq_quantize(KQ_TYPE_Q8_0, KQ_SRC_F32, x, 1, 32, NULL, dst, sizeof dst, NULL);
        int untouched = 1;
        for (size_t j = 0; j < sizeof dst; j++) untouched &= dst[j] == 0xAB;
        CHECK(got == codes[k] && untouched, "QUANTDESK_ISA=%s: kq_quantize returned %lld (expected %d), dst %s",
              values[k], (long long)got, codes[k], untouched ? "untouched" : "written");
    }
    /* kq_set_isa's choice wins over the variable */
    set_env("QUANTDESK_ISA", "bogus");
    CHECK(kq_set_isa(KQ_ISA_SCALAR) == 0, "cannot select scalar");
    CHECK(kq_active_isa() == KQ_ISA_SCALAR, "after kq_set_isa(scalar), kq_active_isa() = %d", kq_active_isa());
    CHECK(kq_quantize(KQ_TYPE_Q8_0, KQ_SRC_F32, x, 1, 32, NULL, dst, sizeof dst, NULL) == 34,
          "after kq_set_isa(scalar), kq_quantize still fails");
    set_env("QUANTDESK_ISA", NULL);
    printf("QUANTDESK_ISA: unknown and unavailable values are errors, kq_set_isa overrides\n");
}

/* dispatch.c asks CPUID itself (the same code for every compiler); it must agree with the
 * compiler's own view of this CPU. Every CPU with AVX2 also has F16C, which dispatch.c needs too. */
static void test_cpu_detection(void) {
#if defined(KQ_HAVE_AVX2) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    const int compiler_says = __builtin_cpu_supports("avx2") != 0;
    CHECK(kq_isa_available(KQ_ISA_AVX2) == compiler_says, "CPUID says AVX2+F16C = %d, the compiler's builtin says AVX2 = %d",
          kq_isa_available(KQ_ISA_AVX2), compiler_says);
    printf("cpu detection: AVX2+F16C = %d (agrees with __builtin_cpu_supports)\n", kq_isa_available(KQ_ISA_AVX2));
#endif
}

int main(int argc, char **argv) {
    test_isa_env(); /* first: it needs the ISA not chosen yet */
    test_isa_setting();
    test_cpu_detection();
    const int rounds = argc > 1 ? atoi(argv[1]) : 40;
    const int isas[3] = {KQ_ISA_SCALAR, KQ_ISA_AVX2, KQ_ISA_NEON};
    int simd = 0;
    for (int k = 0; k < 3; k++) {
        const int isa = isas[k];
        if (!kq_isa_available(isa)) {
            if (isa != KQ_ISA_SCALAR) printf("%s: not available on this machine/build, skipped\n", isa_name(isa));
            continue;
        }
        printf("%s:\n", isa_name(isa));
        if (isa != KQ_ISA_SCALAR) {
            simd++;
            test_simd_matches_scalar(isa, rounds);
        }
        test_bad_input(isa);
        test_half_input(isa);
    }
    if (!simd) printf("note: no SIMD ISA available; only the scalar path and bad input were tested\n");
    printf("%d checks, %d failures\n", g_checks, g_failures);
    return g_failures ? 1 : 0;
}
