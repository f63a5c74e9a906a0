"""numpy-facing binding of the native k-quant library (native/, built by cffi as app.kquant._kquant)."""
from __future__ import annotations

import numpy as np

from app.kquant._kquant import ffi, lib  # type: ignore[import-not-found]

ISA_NAMES = {0: "scalar", 1: "avx2", 2: "neon"}


def active_isa() -> str:
    """The instruction set the kernels dispatch to on this CPU ("scalar", "avx2" or "neon")."""
    return ISA_NAMES[lib.kq_active_isa()]


def quantize_q8_0(x: np.ndarray) -> np.ndarray:
    """First kernel: Q8_0 rows. The full type table arrives with issue 3."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    rows, n = x.shape
    out = np.empty(rows * (n // 32) * 34, dtype=np.uint8)
    written = lib.kq_quantize_f32(8, ffi.cast("float *", x.ctypes.data), ffi.cast("void *", out.ctypes.data), rows, n, ffi.NULL)
    if written < 0:
        raise ValueError(f"Q8_0 needs rows whose length is a multiple of 32, got {n}")
    return out
