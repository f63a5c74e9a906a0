/* Just enough C library for clang's <intrin.h> in MSVC mode (native/tests/msvc_branches.c). */
typedef struct { unsigned long long p[16]; } jmp_buf[1];
