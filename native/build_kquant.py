"""cffi (API mode) build of the native k-quant library into app.kquant._kquant.

Used by setup.py (cffi_modules) during `pip install`, and runnable directly
(`python native/build_kquant.py`) to rebuild the extension in place while developing.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
SOURCES = ["scalar.c", "dispatch.c"]

ffibuilder = FFI()
ffibuilder.cdef(
    """
    int kq_active_isa(void);
    int kq_set_isa(int isa);
    int64_t kq_quantize_f32(int type, const float *src, void *dst, int64_t nrows,
                            int64_t n_per_row, const float *imatrix);
    """
)

if sys.platform == "win32":
    _cflags = ["/fp:precise", "/O2"]
else:
    _cflags = ["-std=c11", "-O2", "-ffp-contract=off", "-fno-fast-math"]

ffibuilder.set_source(
    "app.kquant._kquant",
    '#include "kquant.h"',
    sources=[os.path.relpath(HERE / s) for s in SOURCES],
    include_dirs=[os.path.relpath(HERE / "include"), os.path.relpath(HERE)],
    extra_compile_args=_cflags,
)

if __name__ == "__main__":
    os.chdir(HERE.parent)
    ffibuilder.compile(tmpdir=str(HERE.parent), verbose=False)
