/* Compiles the MSVC branches of kq_compiler.h without MSVC: `make test-portable` builds this with
 * Clang in MSVC mode (--target=x86_64-pc-windows-msvc -DKQ_MSVC_BRANCHES), which accepts the same
 * intrinsics (_BitScanForward, _Interlocked*, __cpuidex, _xgetbv) and __forceinline. Only this
 * header is checked this way: the rest of native/ is plain C11 and intrinsics, and needs a C
 * library's headers that are not here for that target. */
#include "kq_compiler.h"

#if !defined(KQ_MSVC)
#error "expected the MSVC branches (build with -DKQ_MSVC_BRANCHES for an MSVC target)"
#endif

static kq_atomic_int shared = -1;

KQ_ALWAYS_INLINE int twice(int x) { return 2 * x; }

int kq_msvc_branches_check(void) {
    uint32_t r[4];
    kq_x86_cpuid(1, 0, r);
    kq_atomic_store(&shared, twice(kq_ctz32(0x80u)));
    return kq_atomic_load(&shared) + (int)(kq_x86_xcr0() & 6) + (int)(r[2] & 1);
}
