"""ctypes wrapper of ggml's own quantizer (`ggml_quantize_chunk` in the llama-cpp-python wheel).

This is the yardstick: our native kernels must write exactly these bytes, and bench/kernels.py
times them against it. Kept free of `quantdesk` imports so tests, benches and the SIMD work share it.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

# ggml's numbering (enum ggml_type), block size and bytes per block.
GGML_TYPES: dict[str, tuple[int, int, int]] = {
    "Q4_0": (2, 32, 18),
    "Q4_1": (3, 32, 20),
    "Q5_0": (6, 32, 22),
    "Q5_1": (7, 32, 24),
    "Q8_0": (8, 32, 34),
    "Q2_K": (10, 256, 84),
    "Q3_K": (11, 256, 110),
    "Q4_K": (12, 256, 144),
    "Q5_K": (13, 256, 176),
    "Q6_K": (14, 256, 210),
    "IQ4_NL": (20, 32, 18),
    "IQ4_XS": (23, 256, 136),
}

_lib: ctypes.CDLL | None = None
_initialised: set[int] = set()


def ggml_base_path() -> Path:
    """Where the wheel keeps libggml-base (found relative to the installed llama_cpp package)."""
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        raise RuntimeError("llama_cpp is not installed; it provides the reference libggml-base")
    libdir = Path(spec.origin).parent / "lib"
    for name in ("libggml-base.so", "libggml-base.dylib", "ggml-base.dll"):
        if (libdir / name).exists():
            return libdir / name
    raise RuntimeError(f"no libggml-base in {libdir}")


def _load() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(str(ggml_base_path()))
        lib.ggml_quantize_chunk.restype = ctypes.c_size_t
        lib.ggml_quantize_chunk.argtypes = [
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int64,
            ctypes.c_int64,
            ctypes.c_int64,
            ctypes.c_void_p,
        ]
        lib.ggml_quantize_init.restype = None
        lib.ggml_quantize_init.argtypes = [ctypes.c_int]
        _lib = lib
    return _lib


def ggml_quantize(x: np.ndarray, qtype: str, imatrix: np.ndarray | None = None) -> np.ndarray:
    """Quantize the rows of a 2-D float32 array with ggml; returns the packed bytes (uint8, 1-D).

    The caller must pass finite values and a row length that is a multiple of the block size:
    ggml asserts (aborting the process) or writes garbage otherwise.
    """
    type_id, block, block_bytes = GGML_TYPES[qtype]
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    nrows, n = x.shape
    if n % block:
        raise ValueError(f"{qtype}: row length {n} is not a multiple of {block}")
    lib = _load()
    if type_id not in _initialised:
        lib.ggml_quantize_init(type_id)
        _initialised.add(type_id)
    out = np.zeros(nrows * (n // block) * block_bytes, dtype=np.uint8)
    qw = None
    if imatrix is not None:
        qw = np.ascontiguousarray(imatrix, dtype=np.float32)
        if qw.shape != (n,):
            raise ValueError(f"imatrix must have {n} values, got shape {qw.shape}")
    written = lib.ggml_quantize_chunk(
        type_id,
        x.ctypes.data,
        out.ctypes.data,
        0,
        nrows,
        n,
        None if qw is None else qw.ctypes.data,
    )
    assert written == out.size, (written, out.size)
    return out
