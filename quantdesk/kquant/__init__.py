"""numpy-facing API of the native k-quant library (native/, built by cffi as quantdesk.kquant._kquant).

`quantize(rows, "Q4_K", imatrix=..., threads=...)` returns the exact bytes llama.cpp's
ggml_quantize_chunk writes for those rows, from our own C kernels (scalar reference, AVX2 or
NEON, picked at run time). Rows are split across threads; the C calls release the GIL.

Input dtypes: float32, float16, or bfloat16. numpy has no bfloat16, so pass bfloat16 data as a
uint16 array (the raw bit patterns) with `src_dtype="bf16"`.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from quantdesk.kquant._kquant import ffi, lib  # type: ignore[import-not-found]

ISA_NAMES = {0: "scalar", 1: "avx2", 2: "neon"}
_ISA_IDS = {name: i for i, name in ISA_NAMES.items()}

_SRC_F32, _SRC_F16, _SRC_BF16 = 0, 1, 2

# C status codes (native/include/kquant.h, enum kq_status).
_ERR_TYPE, _ERR_ROW_LENGTH, _ERR_NONFINITE, _ERR_ARGS, _ERR_DST_SIZE, _ERR_NOMEM, _ERR_IMATRIX = (
    -1,
    -2,
    -3,
    -4,
    -5,
    -6,
    -7,
)
# QUANTDESK_ISA names no ISA / one this CPU or build cannot run (kq_active_isa, kq_quantize).
_ERR_ISA_UNKNOWN, _ERR_ISA_UNAVAILABLE = -8, -9


@dataclass(frozen=True)
class QuantType:
    """Geometry of one GGUF quant type, as ggml defines it."""

    name: str
    ggml_type: int  # enum ggml_type / gguf.GGMLQuantizationType value
    block_size: int  # weights per block
    block_bytes: int  # bytes per block

    @property
    def bits_per_weight(self) -> float:
        return self.block_bytes * 8 / self.block_size


TYPES: dict[str, QuantType] = {
    t.name: t
    for t in (
        QuantType("Q4_0", 2, 32, 18),
        QuantType("Q4_1", 3, 32, 20),
        QuantType("Q5_0", 6, 32, 22),
        QuantType("Q5_1", 7, 32, 24),
        QuantType("Q8_0", 8, 32, 34),
        QuantType("Q2_K", 10, 256, 84),
        QuantType("Q3_K", 11, 256, 110),
        QuantType("Q4_K", 12, 256, 144),
        QuantType("Q5_K", 13, 256, 176),
        QuantType("Q6_K", 14, 256, 210),
        QuantType("IQ4_NL", 20, 32, 18),
        QuantType("IQ4_XS", 23, 256, 136),
    )
}
_BY_NUMBER = {t.ggml_type: t for t in TYPES.values()}

# Rows per task when splitting across threads: big enough to amortise the call, small enough
# to balance (a K-quant row of 4096 takes ~0.1-1 ms in scalar code).
_MIN_ROWS_PER_TASK = 8


def qtype_info(qtype: str | int) -> QuantType:
    """The QuantType for a ggml type name ("Q4_K"), number, or gguf.GGMLQuantizationType."""
    if isinstance(qtype, str):
        t = TYPES.get(qtype.upper())
        if t is None:
            raise ValueError(f"unsupported quant type {qtype!r}; supported: {', '.join(TYPES)}")
        return t
    try:
        number = int(qtype)  # IntEnum members (gguf.GGMLQuantizationType) convert
    except (TypeError, ValueError):
        raise TypeError(f"quant type must be a name or a ggml type number, got {qtype!r}") from None
    t = _BY_NUMBER.get(number)
    if t is None:
        name = getattr(qtype, "name", number)
        raise ValueError(f"unsupported quant type {name}; supported: {', '.join(TYPES)}")
    return t


def row_size(qtype: str | int, n: int) -> int:
    """Bytes of one quantized row of n weights (n must be a multiple of the block size)."""
    t = qtype_info(qtype)
    if n <= 0 or n % t.block_size:
        raise ValueError(f"{t.name} needs rows whose length is a multiple of {t.block_size}, got {n}")
    return n // t.block_size * t.block_bytes


def active_isa() -> str:
    """The instruction set the kernels dispatch to ("scalar", "avx2" or "neon").

    Raises ValueError if QUANTDESK_ISA is set to an unknown ISA or one this CPU cannot run."""
    isa = lib.kq_active_isa()
    if isa < 0:
        raise _isa_error(isa)
    return ISA_NAMES[isa]


def _isa_error(status: int) -> ValueError:
    """The one-line error for a bad QUANTDESK_ISA (the C library read the same variable)."""
    value = os.environ.get("QUANTDESK_ISA", "")
    if status == _ERR_ISA_UNAVAILABLE:
        return ValueError(
            f"QUANTDESK_ISA={value!r}: this CPU or build cannot run {value} kernels; "
            f"use one of {'|'.join(available_isas())}, or unset it"
        )
    return ValueError(
        f"QUANTDESK_ISA={value!r} is not an instruction set; use one of {'|'.join(ISA_NAMES.values())}, or unset it"
    )


def available_isas() -> list[str]:
    """Every ISA this CPU and build can run, scalar first (for tests and benches)."""
    return [name for i, name in ISA_NAMES.items() if lib.kq_isa_available(i)]


def set_isa(name: str) -> None:
    """Force the kernels of one ISA for the whole process (tests, benches)."""
    if name not in _ISA_IDS:
        raise ValueError(f"unknown ISA {name!r}; expected one of {', '.join(_ISA_IDS)}")
    if lib.kq_set_isa(_ISA_IDS[name]) != 0:
        raise ValueError(f"this CPU or build cannot run {name} kernels; available: {available_isas()}")


def _source_format(x: np.ndarray, src_dtype: str | None) -> int:
    if src_dtype is not None:
        if src_dtype.lower() not in ("bf16", "bfloat16"):
            raise ValueError(f"src_dtype must be 'bf16' (bfloat16 bits in a uint16 array), got {src_dtype!r}")
        if x.dtype != np.uint16:
            raise TypeError(f"bfloat16 input must be a uint16 array of raw bits, got {x.dtype}")
        return _SRC_BF16
    if x.dtype == np.float32:
        return _SRC_F32
    if x.dtype == np.float16:
        return _SRC_F16
    raise TypeError(f"rows must be float32, float16, or bfloat16 (uint16 with src_dtype='bf16'), got {x.dtype}")


def _first_nonfinite(x: np.ndarray, fmt: int) -> int:
    """Index of the first row with a NaN or Inf (only called after C reported one)."""
    bad = x & 32640 == 32640 if fmt == _SRC_BF16 else ~np.isfinite(x)
    return int(np.flatnonzero(bad.any(axis=1))[0])


def quantize(
    x: np.ndarray,
    qtype: str | int,
    imatrix: np.ndarray | None = None,
    threads: int | None = None,
    src_dtype: str | None = None,
) -> np.ndarray:
    """Quantize the rows of one tensor (2-D: rows x n) into GGUF's packed layout.

    Returns a 1-D uint8 array of rows * row_size(qtype, n) bytes, identical to ggml's output.
    imatrix: None or n importance weights (one per column). threads: None = all cores.
    Raises ValueError naming the problem (and the row, for NaN/Inf) on bad input.
    """
    t = qtype_info(qtype)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"rows must be a numpy array, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"rows must be a 2-D array (rows x weights), got {x.ndim}-D shape {x.shape}")
    if not x.dtype.isnative:  # e.g. big-endian data: the C code reads native-order values
        x = x.astype(x.dtype.newbyteorder("="))
    fmt = _source_format(x, src_dtype)
    nrows, n = x.shape
    if n == 0 or n % t.block_size:
        raise ValueError(f"{t.name} needs rows whose length is a multiple of {t.block_size}, got {n}")
    x = np.ascontiguousarray(x)
    qw = None
    if imatrix is not None:
        qw = np.ascontiguousarray(imatrix, dtype=np.float32)
        if qw.shape != (n,):
            raise ValueError(f"imatrix must have one value per column ({n}), got shape {qw.shape}")
        if not np.isfinite(qw).all():
            raise ValueError("imatrix holds NaN or Inf values")
    rsize = n // t.block_size * t.block_bytes
    out = np.empty(nrows * rsize, dtype=np.uint8)
    if nrows == 0:
        return out

    elem = x.itemsize
    qw_ptr = ffi.NULL if qw is None else ffi.cast("const float *", qw.ctypes.data)
    src_base, dst_base = x.ctypes.data, out.ctypes.data

    def run(start: int, stop: int) -> None:
        bad = ffi.new("int64_t *")
        got = lib.kq_quantize(
            t.ggml_type,
            fmt,
            ffi.cast("const void *", src_base + start * n * elem),
            stop - start,
            n,
            qw_ptr,
            ffi.cast("void *", dst_base + start * rsize),
            (stop - start) * rsize,
            bad,
        )
        if got == _ERR_NONFINITE:
            row = start + bad[0]
            raise ValueError(f"row {row} holds NaN or Inf values; {t.name} needs finite weights")
        if got in (_ERR_ISA_UNKNOWN, _ERR_ISA_UNAVAILABLE):
            raise _isa_error(got)
        if got < 0:
            raise ValueError(f"native quantizer failed for {t.name} (status {got})")

    workers = _thread_count(threads, nrows)
    if workers == 1:
        run(0, nrows)
        return out
    chunks = _split(nrows, workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run, a, b) for a, b in chunks]
        errors = []
        for f in futures:
            try:
                f.result()
            except ValueError as e:
                errors.append(e)
    if errors:
        # Report the first bad row of the whole tensor, whichever chunk found one.
        row = _first_nonfinite(x, fmt) if any("NaN" in str(e) for e in errors) else None
        if row is not None:
            raise ValueError(f"row {row} holds NaN or Inf values; {t.name} needs finite weights")
        raise errors[0]
    return out


def dequantize(buf: np.ndarray | bytes, qtype: str | int, shape: tuple[int, int] | int) -> np.ndarray:
    """Float32 weights of quantized rows; shape is (rows, n) or n for a single row."""
    t = qtype_info(qtype)
    dims: tuple[int, ...]
    if isinstance(shape, (int, np.integer)):
        dims = (1, int(shape))
        squeeze = True
    else:
        dims = tuple(int(s) for s in shape)
        squeeze = False
        if len(dims) != 2:
            raise ValueError(f"shape must be (rows, n), got {dims}")
    nrows, n = dims
    rsize = row_size(t.name, n)
    data = np.frombuffer(buf, dtype=np.uint8) if isinstance(buf, (bytes, bytearray, memoryview)) else buf
    data = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if data.size != nrows * rsize:
        raise ValueError(f"{t.name} rows of {n} take {nrows * rsize} bytes for shape {dims}, got {data.size}")
    out = np.empty((nrows, n), dtype=np.float32)
    got = lib.kq_dequantize(
        t.ggml_type,
        ffi.cast("const void *", data.ctypes.data),
        data.size,
        ffi.cast("float *", out.ctypes.data),
        nrows,
        n,
    )
    if got < 0:
        raise ValueError(f"native dequantizer failed for {t.name} (status {got})")
    return out[0] if squeeze else out


def _thread_count(threads: int | None, nrows: int) -> int:
    if threads is None:
        threads = os.cpu_count() or 1
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    return max(1, min(threads, nrows // _MIN_ROWS_PER_TASK))


def _split(nrows: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous row ranges, a few per worker so uneven rows still balance."""
    tasks = min(nrows, workers * 4)
    bounds = [nrows * i // tasks for i in range(tasks + 1)]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]
