/* The few things C11 leaves to the compiler, spelled once for GCC/Clang and once for MSVC:
 * forced inlining, count-trailing-zeros, an atomic int, and CPUID.
 *
 * Why a header of its own: the installers are built with GCC (Linux), Apple Clang (macOS) and
 * MSVC (Windows, what setuptools uses there). Everything else in native/ is plain C11 plus
 * vendor intrinsics (<immintrin.h>, <arm_neon.h>), which all three accept; only these needs
 * have compiler-specific spellings, and keeping them here keeps the kernels free of #ifdefs.
 * `make test-portable` builds the library with Clang and with a Windows (MinGW) compiler, and
 * the MSVC branches below through Clang in MSVC mode (KQ_MSVC_BRANCHES); it also checks that the
 * AVX2 kernels apply no operator to a vector value (native/tests/no_vector_extensions.py): GCC and
 * Clang accept `a + b` on __m256, MSVC does not.
 */
#ifndef KQ_COMPILER_H
#define KQ_COMPILER_H

#include <stdint.h>

/* KQ_MSVC_BRANCHES: let Clang in MSVC mode (which also defines _MSC_VER) take the MSVC
 * branches, so that they are compiled on machines without MSVC (`make test-portable`). */
#if defined(_MSC_VER) && (!defined(__clang__) || defined(KQ_MSVC_BRANCHES))
#define KQ_MSVC 1
#include <intrin.h>
#endif

/* A small helper that must be inlined into its SIMD caller: called through a function, its
 * vector arguments would travel through memory (and, in avx2.c, across the target boundary). */
#if defined(KQ_MSVC)
#define KQ_ALWAYS_INLINE static __forceinline
#else
#define KQ_ALWAYS_INLINE static inline __attribute__((always_inline))
#endif

/* Index of the lowest set bit; x must not be 0. */
static inline int kq_ctz32(uint32_t x) {
#if defined(KQ_MSVC)
    unsigned long i;
    _BitScanForward(&i, x);
    return (int)i;
#else
    return __builtin_ctz(x);
#endif
}

/* One int shared between threads (the chosen ISA): loads and stores that are atomic and
 * ordered. C11 <stdatomic.h> where the compiler has it; MSVC's C compiler offers it only behind
 * an experimental switch, so there the Interlocked functions (full barriers) do the same job. */
#if defined(KQ_MSVC)
typedef volatile long kq_atomic_int;
static inline int kq_atomic_load(kq_atomic_int *p) { return (int)_InterlockedOr(p, 0); }
static inline void kq_atomic_store(kq_atomic_int *p, int v) { _InterlockedExchange(p, v); }
#else
#include <stdatomic.h>
typedef atomic_int kq_atomic_int;
static inline int kq_atomic_load(kq_atomic_int *p) { return atomic_load_explicit(p, memory_order_acquire); }
static inline void kq_atomic_store(kq_atomic_int *p, int v) { atomic_store_explicit(p, v, memory_order_release); }
#endif

/* CPUID and XGETBV, for choosing kernels at run time (dispatch.c). */
#if defined(__x86_64__) || defined(_M_X64)
#define KQ_X86_64 1
#if !defined(KQ_MSVC)
#include <cpuid.h>
#endif

static inline void kq_x86_cpuid(unsigned leaf, unsigned sub, uint32_t r[4]) {
#if defined(KQ_MSVC)
    int v[4];
    __cpuidex(v, (int)leaf, (int)sub);
    for (int i = 0; i < 4; i++) r[i] = (uint32_t)v[i];
#else
    unsigned a, b, c, d;
    __cpuid_count(leaf, sub, a, b, c, d);
    r[0] = a, r[1] = b, r[2] = c, r[3] = d;
#endif
}

/* XCR0: which register state the OS saves on a context switch. */
static inline uint64_t kq_x86_xcr0(void) {
#if defined(KQ_MSVC)
    return _xgetbv(0);
#else
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
#endif
}
#endif

#endif /* KQ_COMPILER_H */
