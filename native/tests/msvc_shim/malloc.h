/* Just enough C library for clang's <intrin.h> in MSVC mode (native/tests/msvc_branches.c). */
#include <stddef.h>
void *_aligned_malloc(size_t n, size_t a);
void _aligned_free(void *p);
