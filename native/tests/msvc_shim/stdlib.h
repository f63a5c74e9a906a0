/* Just enough C library for clang's <intrin.h> in MSVC mode (native/tests/msvc_branches.c). */
#include <stddef.h>
void *malloc(size_t n);
void free(void *p);
