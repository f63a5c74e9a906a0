"""Reading safetensors checkpoints lazily with numpy, checking what a downloaded file can get wrong.

A safetensors file is an 8-byte little-endian header length, a JSON header naming every tensor's
dtype, shape and byte range, then the raw bytes. We parse the header ourselves rather than using
the `safetensors` package because bf16 is not a numpy dtype (we read raw bytes and widen them) and
because every failure must become a one-line ConvertError before anything is written.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quantdesk.core.convert.errors import ConvertError
from quantdesk.core.errors import printable

# Floating-point dtypes a checkpoint may hold; anything else is refused with a clear message.
FLOAT_DTYPES = {"F32": 4, "F16": 2, "BF16": 2}
KNOWN_DTYPES = {
    **FLOAT_DTYPES,
    "F64": 8,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "U16": 2,
    "U32": 4,
    "U64": 8,
}
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the format's own limit
MAX_DIMENSION = 1 << 63  # GGUF stores dimensions as int64 for llama.cpp; a larger one cannot be written


@dataclass(frozen=True)
class LazyTensor:
    """Where one tensor's bytes live; nothing is read until load()."""

    name: str
    dtype: str  # safetensors spelling: "BF16", "F16", "F32"
    shape: tuple[int, ...]
    path: Path
    offset: int  # absolute offset of the first byte in the file
    nbytes: int

    def load(self) -> np.ndarray:
        """The tensor as float16 or float32 (bf16 is widened to float32 exactly, as torch does)."""
        return self.load_rows(0, self.shape[0] if self.shape else 1)

    def load_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of the first dimension, so big tensors can be converted in slices."""
        if not self.shape:
            start, stop = 0, 1
        row_bytes = self.nbytes // (self.shape[0] if self.shape else 1) if self.nbytes else 0
        want = (stop - start) * row_bytes
        with self.path.open("rb") as f:
            f.seek(self.offset + start * row_bytes)
            raw = f.read(want)
        if len(raw) != want:
            raise ConvertError(f"{self.path.name}: truncated (tensor {self.name!r} runs past the end of the file)")
        if self.dtype == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif self.dtype == "F16":
            arr = np.frombuffer(raw, dtype="<f2")
        elif self.dtype == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:  # refused earlier by check_dtypes; kept as a guard
            raise ConvertError(f"tensor {self.name!r} has dtype {self.dtype}, which cannot be converted")
        return arr.reshape((stop - start, *self.shape[1:]) if self.shape else ())


def read_header(path: Path) -> dict[str, LazyTensor]:
    """All tensors of one safetensors file, in name order (as the safetensors library lists them)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ConvertError(f"missing checkpoint shard: {path.name}") from None
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ConvertError(f"{path.name}: not a safetensors file (too short)")
            n = int.from_bytes(head, "little")
            if n < 2 or n > MAX_HEADER_BYTES:
                raise ConvertError(f"{path.name}: malformed safetensors header (header length {n})")
            if 8 + n > size:
                raise ConvertError(f"{path.name}: truncated (file ends inside the header)")
            text = f.read(n)
    except OSError as e:  # a folder of that name, no permission ...
        raise ConvertError(f"{path.name}: cannot read ({e.strerror})") from None
    try:
        header = json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise ConvertError(f"{path.name}: malformed safetensors header ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise ConvertError(f"{path.name}: malformed safetensors header (not a JSON object)")
    data_start = 8 + n
    tensors: dict[str, LazyTensor] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        tensors[name] = _parse_entry(path, name, meta, data_start, size)
    # Two tensors sharing bytes would both be written with the same data: a damaged or forged
    # header (the safetensors library refuses it too).
    spans = sorted(tensors.values(), key=lambda t: (t.offset, t.nbytes))
    for a, b in itertools.pairwise(spans):
        if b.offset < a.offset + a.nbytes:
            raise ConvertError(f"{path.name}: malformed safetensors header (tensors {a.name!r} and {b.name!r} overlap)")
    return dict(sorted(tensors.items()))


def _parse_entry(path: Path, name: str, meta: object, data_start: int, size: int) -> LazyTensor:
    bad = f"{path.name}: malformed safetensors header (entry {name!r})"
    if not isinstance(meta, dict):
        raise ConvertError(bad)
    dtype, shape, offsets = meta.get("dtype"), meta.get("shape"), meta.get("data_offsets")
    if (
        not isinstance(dtype, str)
        or dtype not in KNOWN_DTYPES
        or not isinstance(shape, list)
        or not isinstance(offsets, list)
    ):
        raise ConvertError(bad)
    if len(offsets) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in [*offsets, *shape]
    ):
        raise ConvertError(bad)
    if any(d >= MAX_DIMENSION for d in shape):
        raise ConvertError(f"{bad}: a dimension of {max(shape)} is too large")
    begin, end = offsets
    # Python's integers are exact: numpy's int64 product wraps, and a wrapped product that matched
    # the byte range passed this check and failed later in a reshape (or overflowed at 2^63).
    count = math.prod(shape)
    if end < begin or end - begin != count * KNOWN_DTYPES[dtype]:
        raise ConvertError(f"{bad}: byte range does not match its shape")
    if data_start + end > size:
        raise ConvertError(f"{path.name}: truncated (tensor {name!r} runs past the end of the file)")
    return LazyTensor(name, dtype, tuple(shape), path, data_start + begin, end - begin)


def check_dtypes(tensors: dict[str, LazyTensor]) -> None:
    """Refuse weights we would have to guess about (F64, integers, FP8) before writing anything."""
    for t in tensors.values():
        if t.dtype not in FLOAT_DTYPES:
            raise ConvertError(
                f"tensor {t.name!r} is {t.dtype}; only F32, F16 and BF16 checkpoints can be converted"
                + (" (this looks like an already quantized checkpoint)" if t.dtype.startswith(("I", "U", "F8")) else "")
            )


def index_checkpoint(folder: Path) -> dict[str, LazyTensor]:
    """Every tensor of a checkpoint: model.safetensors, or the shards listed by the index file.

    Order: shards in name order, tensors in name order within a shard (what convert_hf_to_gguf.py
    iterates, so our files list tensors in the same order).
    """
    index_file = folder / "model.safetensors.index.json"
    expected: set[str] = set()
    if index_file.is_file():
        try:
            index = json.loads(index_file.read_text(encoding="utf-8"))
        except (ValueError, RecursionError) as e:
            raise ConvertError(f"{index_file.name}: malformed index ({type(e).__name__})") from None
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise ConvertError(f"{index_file.name}: malformed index (no 'weight_map' object)")
        expected = set(weight_map)
        part_names = sorted(set(weight_map.values()))
        for part in part_names:
            # a bare file name: no folder part for any system ("\\" and "C:" lead elsewhere on Windows)
            if os.sep in part or "/" in part or "\\" in part or ":" in part or part.startswith("."):
                raise ConvertError(f"{index_file.name}: malformed index (shard name {part!r})")
            if not (folder / part).is_file():
                raise ConvertError(f"missing checkpoint shard: {printable(part)} (listed in {index_file.name})")
    else:
        part_names = sorted(
            p.name for p in folder.iterdir() if p.name.startswith("model") and p.name.endswith(".safetensors")
        )
    if not part_names:
        raise ConvertError(f"{folder}: no model.safetensors (or index and shards) in this folder")
    tensors: dict[str, LazyTensor] = {}
    for part in part_names:
        for name, t in read_header(folder / part).items():
            if name in tensors:
                raise ConvertError(f"tensor {name!r} appears in more than one shard")
            tensors[name] = t
    if expected:
        missing = sorted(expected - set(tensors))
        if missing:
            raise ConvertError(
                f"{index_file.name} lists {len(missing)} tensor(s) not found in the shards, e.g. {missing[0]!r}"
            )
        extra = sorted(set(tensors) - expected)
        if extra:
            raise ConvertError(f"shards hold {len(extra)} tensor(s) not listed in {index_file.name}, e.g. {extra[0]!r}")
    return tensors
