"""Quantizing a GGUF model file to a level such as Q4_K_M: the streaming, safe, cancellable run.

The same bytes llama.cpp's llama-quantize writes (tests compare them), made by our own kernels
(quantdesk.kquant). What happens, in order:

1. prepare(): every check that can fail is done before anything is written: the source is a
   sound GGUF (quantdesk.core.gguf.reader), it is not the output, the output does not exist (unless
   overwrite), the imatrix reads, the plan can be made (quantdesk.core.quantize.plan), the disk has room.
2. run(): the source is read tensor by tensor, in slices of rows, so memory stays bounded by
   a slice, not the model (pages already used are handed back to the OS). Plain reads, not a
   memory map: see _Source. The output is an unnamed file in the destination folder that gets its name only
   when complete (quantdesk.core.quantize.writer); a card is written beside it (quantdesk.core.model_card).

Both run as one quantdesk.core.jobs Job: progress in bytes of the source, with the tensor in the
message ("Quantizing blk.12.ffn_down (57/272)"), and cancel checked between slices (each well
under a second of work).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np

from quantdesk import kquant
from quantdesk.core.errors import QuantdeskError, printable
from quantdesk.core.gguf.index import read_index
from quantdesk.core.gguf.reader import GGUFError
from quantdesk.core.jobs import CancelToken, Job, Progress, ProgressCallback
from quantdesk.core.model_card import ModelCard, card_path, file_sha256, write_card
from quantdesk.core.quantize.imatrix import Imatrix, ImatrixError, load_imatrix
from quantdesk.core.quantize.plan import (
    FILE_TYPES,
    FileType,
    Plan,
    PlanError,
    PlanOptions,
    TensorPlan,
    file_type,
    make_plan,
    parse_ggml_type,
    row_bytes,
)
from quantdesk.core.quantize.writer import AtomicOutput, build_header

T = gguf.GGMLQuantizationType

# Values per slice of rows to start with: ~4 M values is a few tens of ms in a fast kernel and
# 16 MB of float32 at most. Slow kernels (IQ4_NL: a few M values/s) get smaller slices so that
# cancel and progress stay well under a second (SLICE_SECONDS).
SLICE_VALUES = 1 << 22
SLICE_SECONDS = 0.2


class QuantizeError(QuantdeskError):
    """Something the user can fix stops the run; the message says what, in one line."""


@dataclass
class QuantizeRequest:
    """Everything `quantdesk quantize` and the Quantize page let the user choose."""

    source: Path
    output: Path
    level: str = "Q4_K_M"
    threads: int | None = None
    imatrix: Path | None = None
    allow_requantize: bool = False
    output_tensor_type: str | None = None
    token_embedding_type: str | None = None
    tensor_types: Sequence[str] = ()  # "REGEX=TYPE", like llama-quantize's --tensor-type
    pure: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        self.source = Path(self.source)
        self.output = Path(self.output)
        self.imatrix = Path(self.imatrix) if self.imatrix else None


@dataclass
class QuantizeResult:
    output: Path
    card: Path
    level: str
    source_bytes: int
    output_bytes: int
    seconds: float
    n_tensors: int


@dataclass
class Prepared:
    """A request checked and planned; nothing written yet."""

    request: QuantizeRequest
    file_type: FileType
    plan: Plan
    header: bytes
    offsets: list[int]
    alignment: int
    imatrix: Imatrix | None
    output_bytes: int
    notes: list[str] = field(default_factory=list)  # things worth telling the user (fallbacks ...)


def plan_options(request: QuantizeRequest, has_imatrix: bool) -> PlanOptions:
    """The request's switches in the plan's terms. Raises PlanError for a malformed switch."""
    overrides = []
    for item in request.tensor_types:
        name, sep, tname = item.partition("=")
        if not sep or not name or not tname:
            raise PlanError(f"--tensor-type wants REGEX=TYPE (e.g. attn_v=q8_0), got {item!r}")
        try:
            re.compile(name.lower())
        except re.error as e:
            raise PlanError(f"--tensor-type {item!r}: not a valid regular expression ({e})") from None
        overrides.append((name.lower(), parse_ggml_type(tname)))  # llama-quantize lowercases names
    return PlanOptions(
        output_tensor_type=parse_ggml_type(request.output_tensor_type) if request.output_tensor_type else None,
        token_embedding_type=parse_ggml_type(request.token_embedding_type) if request.token_embedding_type else None,
        tensor_types=overrides,
        pure=request.pure,
        allow_requantize=request.allow_requantize,
        has_imatrix=has_imatrix,
    )


# Types we can write: the kernels' table, plus the plain float types done here in numpy.
def writable_types() -> set[T]:
    return {T.F32, T.F16, T.BF16} | {T(info.ggml_type) for info in kquant.TYPES.values()}


def free_bytes(folder: Path) -> int:
    """Free space for an ordinary user in `folder` (a function so tests can reason about it)."""
    return shutil.disk_usage(folder).free


def imatrix_kv(imatrix: Imatrix, name_as_given: str) -> list[tuple[str, object, gguf.GGUFValueType]]:
    """The quantize.imatrix.* keys llama-quantize adds (integers land as u32, strings cut at 127 bytes)."""
    kv: list[tuple[str, object, gguf.GGUFValueType]] = [
        ("quantize.imatrix.file", _c_str127(name_as_given), gguf.GGUFValueType.STRING)
    ]
    if imatrix.datasets:
        kv.append(("quantize.imatrix.dataset", _c_str127(imatrix.datasets[0]), gguf.GGUFValueType.STRING))
    kv.append(("quantize.imatrix.entries_count", len(imatrix.values), gguf.GGUFValueType.UINT32))
    if imatrix.chunk_count > 0:
        kv.append(("quantize.imatrix.chunks_count", imatrix.chunk_count, gguf.GGUFValueType.UINT32))
    return kv


def _same_file(a: Path, b: Path) -> bool:
    """True when both names lead to the same file (hard links included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _c_str127(s: str) -> str:
    # a file name need not be UTF-8 (Linux): its undecodable bytes, kept by Python as surrogates,
    # cannot go into a GGUF string and become "?"
    b = s.encode("utf-8", "replace")[:127]
    return b.decode("utf-8", "ignore")


def prepare(request: QuantizeRequest) -> Prepared:
    """Check everything and make the plan. Raises QuantizeError with a one-line message."""
    src, out = request.source, request.output
    try:
        index = read_index(src)
    except GGUFError as e:
        raise QuantizeError(str(e)) from None
    if not index.tensors:  # and its header padding, derived from general.alignment, is unchecked
        raise QuantizeError(f"{src.name}: the file holds no tensors, so there is nothing to quantize")
    try:
        out_exists = out.exists() or out.is_symlink()
    except OSError as e:  # e.g. a name longer than the file system allows
        raise QuantizeError(f"{out}: {e.strerror or e}") from None
    if out_exists:
        if src.resolve() == out.resolve() or _same_file(src, out):
            raise QuantizeError(f"{out.name}: the output would replace the source; choose another name")
        if request.imatrix is not None and (
            request.imatrix.resolve() == out.resolve() or _same_file(request.imatrix, out)
        ):
            raise QuantizeError(f"{out.name}: the output would replace the imatrix; choose another name")
        if not request.overwrite:
            raise QuantizeError(f"{out} already exists; choose another name or allow replacing it (--overwrite)")
        if out.is_dir():
            raise QuantizeError(f"{out} is a folder")
    elif src.resolve() == out.resolve():
        raise QuantizeError(f"{out.name}: the output would replace the source; choose another name")
    card = card_path(out)  # written beside the output, replacing any file of that name
    for what, path in (("source", src), ("imatrix", request.imatrix)):
        if path is not None and _same_file(path, card):
            raise QuantizeError(
                f"{card.name}: the card written beside the output would replace the {what}; choose another name"
            )
    if not out.parent.is_dir():
        raise QuantizeError(f"{out.parent}: no such folder")
    if not os.access(out.parent, os.W_OK):
        raise QuantizeError(f"{out.parent}: no permission to write here")

    try:
        ft = file_type(request.level)
        imatrix = load_imatrix(request.imatrix) if request.imatrix else None
        plan = make_plan(index, ft, plan_options(request, imatrix is not None))
    except (PlanError, ImatrixError) as e:
        raise QuantizeError(str(e)) from None

    can_write = writable_types()
    for t in plan.tensors:
        if t.converts and t.dst_type not in can_write:
            raise QuantizeError(f"{printable(t.name)}: type {t.dst_type.name} cannot be written by this version")
        if t.converts and t.src_type not in can_write and t.src_type not in _GGUF_PY_DEQUANT:
            raise QuantizeError(f"{printable(t.name)}: cannot read type {t.src_type.name} to requantize it")
        if imatrix is not None and t.converts:
            try:
                imatrix.for_tensor(t.name, t.shape[0] * math.prod(t.shape[2:]))
            except ImatrixError as e:
                raise QuantizeError(str(e)) from None

    extra = imatrix_kv(imatrix, str(request.imatrix)) if imatrix is not None else []
    header, offsets, data_bytes = build_header(index, plan, extra)
    output_bytes = len(header) + data_bytes
    free = free_bytes(out.parent)
    if free < output_bytes:
        from quantdesk.core.units import human_bytes

        raise QuantizeError(
            f"not enough free space in {out.parent}: the output needs {human_bytes(output_bytes)}, "
            f"only {human_bytes(free)} is free"
        )
    notes = []
    if plan.n_fallback:
        notes.append(f"{plan.n_fallback} tensors have rows that do not fit {ft.base.name} blocks and use a nearby type")
    return Prepared(request, ft, plan, header, offsets, index.alignment, imatrix, output_bytes, notes)


# Types gguf-py can turn back into floats (for requantizing types our kernels do not read).
_GGUF_PY_DEQUANT = set(getattr(gguf.quants, "_type_traits", {})) | {T.F32, T.F16, T.BF16}


# --- converting one slice of rows -------------------------------------------------------------


def _read_rows(src_file: _Source, t: TensorPlan, row0: int, nrows: int) -> tuple[np.ndarray, str | None]:
    """Rows [row0, row0+nrows) of the source tensor as the kernels take them.

    Returns (array, src_dtype) where src_dtype is "bf16" for raw bfloat16 bits."""
    n = t.shape[0]
    src = t.src_type
    if src in (T.F32, T.F16, T.BF16):
        dtype = {T.F32: np.float32, T.F16: np.float16, T.BF16: np.uint16}[src]
        itemsize = np.dtype(dtype).itemsize
        a = src_file.read(t.src_offset + row0 * n * itemsize, nrows * n * itemsize).view(dtype)
        return a.reshape(nrows, n), ("bf16" if src == T.BF16 else None)
    blk, size = gguf.GGML_QUANT_SIZES[src]
    rbytes = n // blk * size
    raw = src_file.read(t.src_offset + row0 * rbytes, nrows * rbytes)
    if src.name in kquant.TYPES:
        return kquant.dequantize(raw, src.name, (nrows, n)), None
    return gguf.quants.dequantize(raw.reshape(nrows, rbytes), src).astype(np.float32, copy=False), None


def _to_f32(x: np.ndarray, src_dtype: str | None) -> np.ndarray:
    if src_dtype == "bf16":
        return (x.astype(np.uint32) << 16).view(np.float32)
    return x.astype(np.float32, copy=False)


def _f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round to nearest even, NaN kept quiet: the conversion ggml uses when writing BF16."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = ((u + (np.uint32(0x7FFF) + ((u >> 16) & 1))) >> 16).astype(np.uint16)
    is_nan = (u & 0x7FFFFFFF) > 0x7F800000
    return np.where(is_nan, ((u >> 16) | 64).astype(np.uint16), rounded)


def convert_rows(
    x: np.ndarray, src_dtype: str | None, dst: T, imatrix: np.ndarray | None, threads: int | None
) -> np.ndarray:
    """Rows in, the destination type's bytes out."""
    if dst == T.F32:
        return _to_f32(x, src_dtype).reshape(-1).view(np.uint8)
    if dst == T.F16:
        with np.errstate(over="ignore"):  # a value beyond F16's range becomes Inf, refused by the caller
            return _to_f32(x, src_dtype).astype(np.float16).reshape(-1).view(np.uint8)
    if dst == T.BF16:
        if src_dtype == "bf16":
            return np.ascontiguousarray(x).reshape(-1).view(np.uint8)
        return _f32_to_bf16_bits(_to_f32(x, src_dtype)).reshape(-1).view(np.uint8)
    return kquant.quantize(x, dst.name, imatrix=imatrix, threads=threads, src_dtype=src_dtype)


# --- refusing NaN and Inf, as llama.cpp does ---------------------------------------------------

# Where each quantized type keeps its fp16 scales, per block: (block bytes, byte offsets). A block
# whose scale is NaN or Inf decodes to NaN/Inf weights. llama-quantize checks these fields (and
# every value of F32/F16/BF16 data) in each source tensor it reads and each tensor it makes
# (ggml_validate_row_data), and refuses the model when one is not finite; so do we.
_SCALE_FIELDS: dict[T, tuple[int, tuple[int, ...]]] = {
    T.Q4_0: (18, (0,)),
    T.Q4_1: (20, (0, 2)),
    T.Q5_0: (22, (0,)),
    T.Q5_1: (24, (0, 2)),
    T.Q8_0: (34, (0,)),
    T.Q2_K: (84, (80, 82)),
    T.Q3_K: (110, (108,)),
    T.Q4_K: (144, (0, 2)),
    T.Q5_K: (176, (0, 2)),
    T.Q6_K: (210, (208,)),
    T.IQ4_NL: (18, (0,)),
    T.IQ4_XS: (136, (0,)),
}
# Float types by their bits: a value is NaN or Inf when, sign bit cleared, it is at least this.
_FLOAT_BITS: dict[T, tuple[type[np.unsignedinteger], int, int]] = {
    T.F32: (np.uint32, 0x7FFFFFFF, 0x7F800000),
    T.F16: (np.uint16, 0x7FFF, 0x7C00),
    T.BF16: (np.uint16, 0x7FFF, 0x7F80),
}


def first_nonfinite_byte(data: bytes | memoryview | np.ndarray, t: T) -> int | None:
    """Offset in `data` (whole blocks or values of type t) of the first value or block scale that
    is NaN or Inf; None when all are finite, or for a type whose layout is not checked here.
    Integer operations on the bits: several times faster than np.isfinite on float16."""
    if t in _FLOAT_BITS:
        dtype, magnitude, inf = _FLOAT_BITS[t]
        bits = np.frombuffer(data, dtype=dtype) & dtype(magnitude)
        if bits.size == 0 or bits.max() < inf:
            return None
        return int(np.argmax(bits >= inf)) * bits.itemsize
    if t not in _SCALE_FIELDS:
        return None
    block_bytes, offsets = _SCALE_FIELDS[t]
    blocks = np.frombuffer(data, dtype=np.uint8).reshape(-1, block_bytes)
    bad = np.zeros(len(blocks), dtype=bool)
    for off in offsets:  # an fp16 is NaN or Inf when its exponent bits (in the high byte) are all set
        bad |= (blocks[:, off + 1] & 0x7C) == 0x7C
    return int(np.argmax(bad)) * block_bytes if bad.any() else None


def _check_finite(t: TensorPlan, data: bytes | memoryview | np.ndarray, dtype: T, first_row: int, source: bool) -> None:
    """Raise QuantizeError naming the tensor and row when `data` (whole rows of `dtype`, starting
    at row `first_row` of the tensor) holds a NaN or Inf."""
    at = first_nonfinite_byte(data, dtype)
    if at is None:
        return
    row = first_row + at // row_bytes(dtype, t.shape[0])
    if source:
        raise QuantizeError(f"{printable(t.name)}: row {row} holds NaN or Inf values; the model is damaged")
    raise QuantizeError(
        f"{printable(t.name)}: row {row} holds values too large for {dtype.name} (they would become Inf); "
        "choose a level with more range"
    )


# --- the run ----------------------------------------------------------------------------------


class _Source:
    """The source file, read with plain reads at given offsets.

    Not a memory map: when another program truncates a mapped file (a download restarted, a copy
    overwritten), touching a page past its new end kills the process with SIGBUS, which Python
    cannot catch, and the user saw the app vanish. A read just comes back short, and we can say
    what happened. The copy a read makes costs little next to the quantization of those rows."""

    def __init__(self, path: Path):
        self.name = path.name
        self.file = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by close(), after the run)

    def read(self, offset: int, n: int) -> np.ndarray:
        """n bytes at offset, as uint8; QuantizeError when the file ends before them."""
        buf = bytearray(n)
        view = memoryview(buf)
        self.file.seek(offset)
        got = 0
        while got < n:
            k = self.file.readinto(view[got:])
            if not k:
                raise QuantizeError(
                    f"{self.name}: the file got shorter while it was being read (did another program change "
                    "it?); nothing was written"
                )
            got += k
        return np.frombuffer(buf, dtype=np.uint8)

    def done_with(self, start: int, stop: int) -> None:
        """Tell the OS we are done with these bytes, so they do not crowd the page cache."""
        if stop > start and hasattr(os, "posix_fadvise"):
            try:
                os.posix_fadvise(self.file.fileno(), start, stop - start, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass  # only an optimisation

    def close(self) -> None:
        self.file.close()


def _human_name(name: str) -> str:
    """A tensor's name for the progress line (shown on a terminal: escaped, as in messages)."""
    return printable(name[: -len(".weight")] if name.endswith(".weight") else name)


def run(prepared: Prepared, report: ProgressCallback, cancel: CancelToken) -> QuantizeResult:
    """Write the output. On any failure or cancel, nothing is left at the output path."""
    req, plan = prepared.request, prepared.plan
    started = time.monotonic()
    total_in = sum(t.src_nbytes for t in plan.tensors) or 1
    n = len(plan.tensors)

    hasher = _BackgroundHash(req.source)  # overlaps hashing the source with the work
    out = AtomicOutput(req.output, overwrite=req.overwrite)
    try:
        source = _Source(req.source)
        try:
            out.write(prepared.header)
            done_in = 0
            for i, t in enumerate(plan.tensors):
                label = f"Quantizing {_human_name(t.name)} ({i + 1}/{n})"
                cancel.check()
                report(Progress(done_in, total_in, "B", label, "Quantizing"))

                def progress(d: int, base: int = done_in, label: str = label) -> None:
                    report(Progress(base + d, total_in, "B", label, "Quantizing"))

                written = _write_tensor(source, t, prepared, out, cancel, progress)
                pad = -written % prepared.alignment
                if pad:
                    out.write(bytes(pad))
                done_in += t.src_nbytes
            report(Progress(total_in, total_in, "B", "Writing to disk", "Quantizing"))
            cancel.check()
        finally:
            source.close()
        source_hash = hasher.result(cancel)
        try:
            out.commit()
        except PermissionError as e:  # Windows: the file being replaced is open (loaded in Chat ...)
            raise QuantizeError(
                f"{req.output}: cannot put the result in place ({e.strerror or e}); "
                "if that file is open in Chat or another program, close it there"
            ) from None
    except BaseException:
        hasher.stop()
        out.abort()
        raise
    seconds = time.monotonic() - started
    imatrix_hash = file_sha256(req.imatrix) if req.imatrix else None
    card = ModelCard(
        output=str(req.output),
        source=str(req.source),
        source_sha256=source_hash,
        level=prepared.file_type.name,
        imatrix=str(req.imatrix) if req.imatrix else None,
        imatrix_sha256=imatrix_hash,
        seconds=round(seconds, 3),
        output_bytes=prepared.output_bytes,
        options=_card_options(req),
    )
    try:
        cpath = write_card(card, req.output)
    except OSError:
        cpath = card_path(req.output)  # the model is fine; a missing card is not worth losing it
    return QuantizeResult(req.output, cpath, prepared.file_type.name, total_in, prepared.output_bytes, seconds, n)


def _card_options(req: QuantizeRequest) -> dict[str, object]:
    opts: dict[str, object] = {}
    for key in ("allow_requantize", "pure"):
        if getattr(req, key):
            opts[key] = True
    for key in ("output_tensor_type", "token_embedding_type"):
        if getattr(req, key):
            opts[key] = getattr(req, key)
    if req.tensor_types:
        opts["tensor_types"] = list(req.tensor_types)
    return opts


def _write_tensor(
    source: _Source,
    t: TensorPlan,
    prepared: Prepared,
    out: AtomicOutput,
    cancel: CancelToken,
    progress: Callable[[int], None],
) -> int:
    """Stream one tensor to the output in slices of rows; returns the bytes written."""
    if not t.converts:
        src_row_bytes = max(1, row_bytes(t.src_type, t.shape[0]))
        step = max(1, SLICE_VALUES * 2 // src_row_bytes) * src_row_bytes  # whole rows, to check them
        for a in range(0, t.src_nbytes, step):
            b = min(t.src_nbytes, a + step)
            chunk = source.read(t.src_offset + a, b - a)
            _check_finite(t, chunk, t.src_type, a // src_row_bytes, True)
            out.write(chunk)
            source.done_with(t.src_offset + a, t.src_offset + b)
            progress(b)
            cancel.check()
        return t.src_nbytes

    ncols = t.shape[0]
    rows_per_expert = t.shape[1] if len(t.shape) > 1 else 1
    n_experts = math.prod(t.shape[2:])
    im = None
    if prepared.imatrix is not None:
        im = prepared.imatrix.for_tensor(t.name, ncols * n_experts)
    src_row_bytes = t.src_nbytes // max(1, rows_per_expert * n_experts)
    max_step = max(1, SLICE_VALUES // ncols)
    step = max_step
    written = 0
    for e in range(n_experts):
        im_e = im[e * ncols : (e + 1) * ncols] if im is not None else None
        r = 0
        while r < rows_per_expert:
            rows = min(step, rows_per_expert - r)
            row0 = e * rows_per_expert + r
            started = time.monotonic()
            x, src_dtype = _read_rows(source, t, row0, rows)
            try:
                data = convert_rows(x, src_dtype, t.dst_type, im_e, prepared.request.threads)
            except ValueError as err:
                raise QuantizeError(f"{printable(t.name)}: {err}") from None
            if first_nonfinite_byte(data, t.dst_type) is not None:
                # a NaN or Inf weight (the kernels refuse those themselves), or one the type cannot hold
                source_bad = not np.isfinite(_to_f32(x, src_dtype)).all()
                _check_finite(t, data, t.dst_type, row0, source_bad)
            del x
            out.write(data)
            written += data.size
            source.done_with(t.src_offset + row0 * src_row_bytes, t.src_offset + (row0 + rows) * src_row_bytes)
            progress((row0 + rows) * src_row_bytes)
            cancel.check()
            r += rows
            took = time.monotonic() - started
            if took > SLICE_SECONDS and step > 1:
                step = max(1, int(step * SLICE_SECONDS / took))
            elif took < SLICE_SECONDS / 4 and step < max_step:
                step = min(max_step, step * 2)
    if written != t.dst_nbytes:  # would mean a wrong plan: never write a file with a broken layout
        raise QuantizeError(f"{printable(t.name)}: wrote {written} bytes, the plan says {t.dst_nbytes}")
    return written


class _BackgroundHash:
    """SHA-256 of the source computed in a thread while the run goes on (remembered by model_card)."""

    def __init__(self, path: Path):
        self._result: str | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(path,), name="hash-source", daemon=True)
        self._thread.start()

    def _work(self, path: Path) -> None:
        try:
            self._result = file_sha256(path, stop=self._stop)
        except BaseException as e:  # reported by result()
            self._error = e

    def result(self, cancel: CancelToken) -> str:
        while self._thread.is_alive():
            self._thread.join(0.2)
            cancel.check()
        if self._error is not None:
            raise QuantizeError(f"cannot read the source to hash it ({self._error})")
        assert self._result is not None
        return self._result

    def stop(self) -> None:
        """Stop hashing (the run failed or was cancelled) and wait for the thread, which ends
        within one read: until then it holds the source open, and Windows cannot delete an open
        file (convert removes its intermediate source right after a failed run)."""
        self._stop.set()
        self._thread.join(10)


# --- what the Quantize page shows before starting ----------------------------------------------


@dataclass
class LevelEstimate:
    """One row of the level list: the size the output will have, from this model's own plan."""

    level: str
    output_bytes: int
    bits_per_weight: float
    tradeoff: str
    problem: str | None = None  # why this level cannot be made from this source


@dataclass
class SourceSummary:
    path: Path
    architecture: str
    n_weights: int
    quantized_as: str | None  # e.g. "Q4_1" when the weights are already quantized, else None
    levels: list[LevelEstimate]


def summarize_source(source: str | Path, imatrix: bool = False) -> SourceSummary:
    """Read the source's header and plan every level (milliseconds; run it as a job anyway, since
    the disk may be slow). Raises QuantizeError for a file that is not a sound GGUF."""
    source = Path(source)
    try:
        index = read_index(source)
    except GGUFError as e:
        raise QuantizeError(str(e)) from None
    weights = [t for t in index.tensors if len(t.shape) >= 2]
    quantized = sorted({t.type.name for t in weights if t.type not in (T.F32, T.F16, T.BF16)})
    can_write = writable_types()
    levels = []
    for name, ft in FILE_TYPES.items():
        try:
            plan = make_plan(index, ft, PlanOptions(allow_requantize=True, has_imatrix=imatrix))
        except PlanError as e:
            levels.append(LevelEstimate(name, 0, 0.0, ft.tradeoff, str(e)))
            continue
        missing = sorted({t.dst_type.name for t in plan.tensors if t.converts and t.dst_type not in can_write})
        problem = f"needs {', '.join(missing)}, not available in this version" if missing else None
        size = index.data_offset + plan.data_bytes  # the header barely changes: same keys, same names
        levels.append(LevelEstimate(name, size, plan.bits_per_weight, ft.tradeoff, problem))
    return SourceSummary(
        path=source,
        architecture=str(index.get("general.architecture", "unknown")),
        n_weights=sum(t.n_elements for t in index.tensors),
        quantized_as=", ".join(quantized) or None,
        levels=levels,
    )


_LEVEL_IN_NAME = re.compile(r"[-_.](?:I?Q\d(?:_[A-Z0-9]+)*|F16|BF16|F32)$", re.IGNORECASE)


def default_output(source: Path, level: str, folder: Path) -> Path:
    """'SmolLM2-135M-Instruct.Q4_1.gguf' at Q8_0 -> folder/'SmolLM2-135M-Instruct-Q8_0.gguf'."""
    stem = source.name[: -len(".gguf")] if source.name.lower().endswith(".gguf") else source.stem
    stem = _LEVEL_IN_NAME.sub("", stem) or stem
    return folder / f"{stem}-{file_type(level).name}.gguf"


def quantize_file(
    request: QuantizeRequest,
    report: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> QuantizeResult:
    """Prepare and run in the calling thread (scripts, tests)."""
    prepared = prepare(request)
    return run(prepared, report or (lambda p: None), cancel or CancelToken())


def quantize_job(request: QuantizeRequest) -> Job[QuantizeResult]:
    """The job the CLI and the Quantize page run: checks first, then the streaming run."""

    def fn(report: ProgressCallback, cancel: CancelToken) -> QuantizeResult:
        report(Progress(0, 0, "B", "Checking the source", "Preparing"))
        prepared = prepare(request)
        cancel.check()
        return run(prepared, report, cancel)

    return Job(f"Quantize {request.source.name} to {request.level.upper()}", fn)
