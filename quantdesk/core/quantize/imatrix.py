"""Importance matrices (imatrix files) as llama.cpp's llama-imatrix writes them, in both formats.

An importance matrix says, per input column of each weight matrix, how large the activations
that meet it were on some calibration text; the quantizers then spend their precision where it
matters. llama-imatrix stores running sums and how many values went into them; the weight of a
column is sum / count. Two formats exist:

- GGUF (`*.imatrix.gguf`, current): per tensor `<name>.in_sum2` (F32, one row of sums per
  expert) and `<name>.counts` (F32, one count per expert); keys imatrix.datasets,
  imatrix.chunk_count, imatrix.chunk_size.
- legacy `.dat`: int32 entry count; per entry int32 name length, the name, int32 ncall, int32
  nval, nval float32 sums; optionally int32 chunk count, int32 length and the dataset name.

Both are read into the per-column values llama-quantize computes from them, bit for bit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import gguf
import numpy as np

from quantdesk.core.errors import QuantdeskError, printable
from quantdesk.core.gguf.index import GGUFError, TensorInfo, read_index, string_array, whole_number

MAX_CHUNK_COUNT = (1 << 32) - 1  # quantize.imatrix.chunks_count is a uint32


class ImatrixError(QuantdeskError):
    """The imatrix file cannot be used; the message says why, in one line."""


@dataclass
class Imatrix:
    path: Path
    format: str  # "gguf" or "dat"
    values: dict[str, np.ndarray] = field(default_factory=dict)  # tensor name -> float32 per column
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0

    def for_tensor(self, name: str, n_columns: int) -> np.ndarray | None:
        """The values for this tensor (n_columns per expert, all experts), None when it has none.

        A length that does not fit is an error, except for token embeddings (llama.cpp ignores
        those: they are looked up, not multiplied, so calibration never sizes them right)."""
        v = self.values.get(name)
        if v is None:
            return None
        if v.size != n_columns:
            if name in ("token_embd.weight", "per_layer_token_embd.weight"):
                return None
            raise ImatrixError(
                f"{self.path.name}: {printable(name)} has {v.size} values, the model's tensor needs {n_columns} "
                "(an imatrix made for another model?)"
            )
        return v


def load_imatrix(path: str | Path) -> Imatrix:
    """Read either format (decided by the content, not the name). Raises ImatrixError."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as e:
        raise ImatrixError(f"{path}: cannot read ({e.strerror})") from None
    im = _load_gguf(path) if head == b"GGUF" else _load_dat(path)
    for name, v in im.values.items():
        if not np.isfinite(v).all():
            raise ImatrixError(f"{path.name}: {printable(name)} contains a value that is not finite")
    if not im.values:
        raise ImatrixError(f"{path.name}: holds no importance data")
    return im


def _load_gguf(path: Path) -> Imatrix:
    """Through our own header index (quantdesk.core.gguf.index), not gguf's reader: that one spends
    ~27 µs on every array item (5 s for 200,000 dataset names, minutes for a large imatrix). The
    values are read with plain reads, so no memory map outlives the call (on Windows a mapped file
    cannot be replaced or deleted, and a user must be able to fix a rejected file at once)."""
    try:
        index = read_index(path)
    except GGUFError as e:
        raise ImatrixError(str(e)) from None
    tensors = {t.name: t for t in index.tensors}
    im = Imatrix(path=path, format="gguf")
    with path.open("rb") as f:
        for tname, t in tensors.items():
            if not tname.endswith(".in_sum2"):
                continue
            name = tname[: -len(".in_sum2")]
            counts_t = tensors.get(name + ".counts")
            if counts_t is None:
                raise ImatrixError(f"{path.name}: {printable(tname)} has no matching .counts tensor")
            if t.type != gguf.GGMLQuantizationType.F32 or counts_t.type != gguf.GGMLQuantizationType.F32:
                raise ImatrixError(f"{path.name}: {printable(name)} is not stored as F32")
            sums, counts = _read_f32(f, t), _read_f32(f, counts_t)
            if counts.size == 0 or sums.size % counts.size:
                raise ImatrixError(f"{path.name}: {printable(name)} has {sums.size} sums for {counts.size} counts")
            per_row = sums.reshape(counts.size, -1)
            # a count of 0: that expert never saw input during calibration; llama.cpp uses weight 1
            safe = np.where(counts > 0, counts, np.float32(1)).astype(np.float32)
            values = np.where(counts[:, None] > 0, per_row / safe[:, None], np.float32(1)).astype(np.float32)
            im.values[name] = values.reshape(-1)
    if not im.values and tensors:
        raise ImatrixError(f"{path.name}: a GGUF file, but not an imatrix (no .in_sum2 tensors)")
    datasets = index.fields.get("imatrix.datasets")
    if datasets is not None and datasets.type == gguf.GGUFValueType.STRING:
        im.datasets = [str(datasets.value)]
    elif datasets is not None and datasets.item_type == gguf.GGUFValueType.STRING:
        try:
            im.datasets = string_array(path, datasets)
        except GGUFError as e:
            raise ImatrixError(str(e)) from None
    im.chunk_count = _chunk_count(index.get("imatrix.chunk_count"))
    return im


def _read_f32(f: BinaryIO, t: TensorInfo) -> np.ndarray:
    """A tensor's float32 values (the index has checked that they lie inside the file)."""
    f.seek(t.offset)
    return np.frombuffer(f.read(t.nbytes), dtype="<f4").astype(np.float32)


def _chunk_count(value: object) -> int:
    """How many chunks of text made the imatrix, or 0 (unknown) for anything that is not a count the
    quantized file can record: it is copied there as a uint32, where 2^32 was a struct.error."""
    n = whole_number(value)
    return n if n is not None and 0 < n <= MAX_CHUNK_COUNT else 0


def _load_dat(path: Path) -> Imatrix:
    data = path.read_bytes()
    im = Imatrix(path=path, format="dat")
    pos = 0

    def take(n: int, what: str) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise ImatrixError(f"{path.name}: not an imatrix file, or truncated (while reading {printable(what)})")
        chunk = data[pos : pos + n]
        pos += n
        return chunk

    (n_entries,) = struct.unpack("<i", take(4, "the entry count"))
    if n_entries < 1 or n_entries > 1_000_000:
        raise ImatrixError(f"{path.name}: not an imatrix file (entry count {n_entries})")
    for i in range(n_entries):
        (length,) = struct.unpack("<i", take(4, f"entry {i}"))
        if length <= 0 or length > 4096:
            raise ImatrixError(f"{path.name}: not an imatrix file (bad name length in entry {i})")
        try:
            name = take(length, f"entry {i}").decode("utf-8")
        except UnicodeDecodeError:
            raise ImatrixError(f"{path.name}: not an imatrix file (entry {i} has no readable name)") from None
        ncall, nval = struct.unpack("<ii", take(8, name))
        if nval < 1:
            raise ImatrixError(f"{path.name}: {printable(name)} has no values")
        sums = np.frombuffer(take(4 * nval, name), dtype="<f4").astype(np.float32)
        im.values[name] = (sums / np.float32(ncall)).astype(np.float32) if ncall > 0 else sums.copy()
    if pos + 4 <= len(data):  # optional trailer: chunk count and dataset name
        im.chunk_count = _chunk_count(struct.unpack("<i", take(4, "the chunk count"))[0])
        if pos + 4 <= len(data):
            (length,) = struct.unpack("<i", take(4, "the dataset name"))
            if 0 < length <= len(data) - pos:
                im.datasets = [take(length, "the dataset name").split(b"\0")[0].decode("utf-8", "replace")]
    return im
