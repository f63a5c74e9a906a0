"""cffi (API mode) build of the native k-quant library into quantdesk.kquant._kquant.

Used by setup.py (cffi_modules) during `pip install`, and runnable directly
(`python native/build_kquant.py`, i.e. `make native`) to rebuild the extension in place.

Sources: the scalar reference kernels, the dispatcher, and the SIMD files avx2.c and neon.c
(each empty except on its own architecture). ISA flags live inside those files (`#pragma GCC
target` / target attributes), so the common flags below stay baseline and every file is built
with -ffp-contract=off: fused multiply-adds would change the bytes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

SOURCES = ["scalar_search.c", "scalar_legacy.c", "scalar_k.c", "scalar_iq4.c", "dispatch.c"]
DEFINES: list[tuple[str, str | None]] = []

# QUANTDESK_SCALAR_ONLY=1 builds without the SIMD files (e.g. while one is being written).
# Otherwise both SIMD files are always compiled: each holds code only for its own architecture
# (#if around the whole file) and dispatch.c uses a file only where its architecture matches,
# so a macOS universal2 build (every file compiled for arm64 AND x86-64) gets NEON in one slice
# and AVX2 in the other, and no build has to guess the target from the build machine.
if os.environ.get("QUANTDESK_SCALAR_ONLY", "") in ("", "0"):
    SOURCES += ["avx2.c", "neon.c"]
    DEFINES += [("KQ_HAVE_AVX2", "1"), ("KQ_HAVE_NEON", "1")]

# The public API (native/include/kquant.h) as cffi sees it.
CDEF = """
int kq_active_isa(void);
int kq_set_isa(int isa);
int kq_isa_available(int isa);
int kq_type_info(int type, int *block_size, int *block_bytes);
int64_t kq_row_size(int type, int64_t n_per_row);
int64_t kq_quantize(int type, int src_format, const void *src, int64_t nrows, int64_t n_per_row,
                    const float *imatrix, void *dst, int64_t dst_size, int64_t *bad_row);
int64_t kq_dequantize(int type, const void *src, int64_t src_size, float *dst, int64_t nrows,
                      int64_t n_per_row);
"""

if sys.platform == "win32":
    # MSVC: C11 (designated initializers, mixed declarations), no fast-math. MSVC compiles the
    # AVX2 intrinsics without /arch:AVX2, which also means it can never fuse a multiply-add in
    # its own code; the compiler-specific bits are in native/kq_compiler.h.
    _cflags = ["/std:c11", "/fp:precise", "/O2"]
else:
    # GCC/Clang: -Wall -Wextra for every file, and warnings are errors in native/'s own files
    # only: KQ_WERROR turns them into errors from kquant_internal.h on (every .c file of native/
    # includes it first). Not -Werror on this command line: setuptools gives the same flags to the
    # wrapper cffi generates (and to the Python.h it includes), whose warnings would stop the
    # install on some Python or compiler version with nothing in this repository to fix (today
    # it compiles clean with GCC 12 and Clang 14).
    # `make test-native` builds native/ with a plain -Werror.
    _cflags = ["-std=gnu11", "-O3", "-ffp-contract=off", "-fno-fast-math", "-Wall", "-Wextra"]
    DEFINES += [("KQ_WERROR", "1")]

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "quantdesk.kquant._kquant",
    '#include "kquant.h"',
    sources=[os.path.relpath(HERE / s) for s in SOURCES],
    include_dirs=[os.path.relpath(HERE / "include"), os.path.relpath(HERE)],
    define_macros=DEFINES,
    extra_compile_args=_cflags,
)

if __name__ == "__main__":
    os.chdir(HERE.parent)
    ffibuilder.compile(tmpdir=str(HERE.parent), verbose=False)
