"""Writing the quantized GGUF: the header laid out up front, and an output file that appears whole or not at all.

The header is known before any tensor is quantized (the plan gives every output size), so it is
written first and the tensor data streams after it; no seeking back, no placeholder.

The metadata is what llama-quantize writes: every key of the input copied byte for byte in
order, then general.quantization_version and general.file_type (llama.cpp's gguf removes a key
it sets and appends it at the end), split keys dropped, then the quantize.imatrix.* keys.
Tensor data is aligned to general.alignment (32 when absent), each tensor padded with zeros.

The output lives in an unnamed file in the destination folder (Linux O_TMPFILE) that gets its
name only when complete and synced, so a cancel, a full disk or even a kill -9 leaves nothing
behind. Where the system has no unnamed files (macOS, Windows, some Linux file systems), a
hidden temporary name carrying the writer's process id is used: it is removed on every failure
we get to see, and one left by a killed process is removed by the next output written to that
folder (a file whose writer is still running is never touched).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import gguf

from quantdesk.core import renames
from quantdesk.core.gguf.index import GGUFIndex, read_span
from quantdesk.core.quantize.plan import Plan

SPLIT_KEYS = ("split.no", "split.count", "split.tensors.count")
WRITEBACK_STEP = 64 << 20
GGUF_VERSION = 3


def _str(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def encode_kv(key: str, value: Any, vtype: gguf.GGUFValueType) -> bytes:
    """One metadata entry (only the scalar types quantize adds: u32, i32, string)."""
    out = _str(key) + struct.pack("<I", int(vtype))
    if vtype == gguf.GGUFValueType.UINT32:
        return out + struct.pack("<I", int(value))
    if vtype == gguf.GGUFValueType.INT32:
        return out + struct.pack("<i", int(value))
    if vtype == gguf.GGUFValueType.STRING:
        return out + _str(str(value))
    raise ValueError(f"encode_kv: unsupported type {vtype}")


def build_header(
    index: GGUFIndex,
    plan: Plan,
    extra_kv: Sequence[tuple[str, Any, gguf.GGUFValueType]] = (),
) -> tuple[bytes, list[int], int]:
    """The header bytes (padded to the alignment), each tensor's offset in the data section, and
    the size of the data section (every tensor padded to the alignment).

    extra_kv: keys set after general.file_type, in order (the imatrix keys)."""
    align = index.alignment
    added = [
        ("general.quantization_version", gguf.GGML_QUANT_VERSION, gguf.GGUFValueType.UINT32),
        ("general.file_type", plan.file_type.ftype, gguf.GGUFValueType.UINT32),
        *extra_kv,
    ]
    dropped = set(SPLIT_KEYS) | {k for k, _, _ in added}
    kv_parts: list[bytes] = []
    src_header = read_span(index.path, 0, index.data_offset)
    for key, kv in index.fields.items():
        if key not in dropped:
            kv_parts.append(src_header[kv.start : kv.end])  # copied as written
    kv_parts += [encode_kv(k, v, t) for k, v, t in added]

    ti_parts: list[bytes] = []
    offsets: list[int] = []
    pos = 0
    for t in plan.tensors:
        offsets.append(pos)
        ti_parts.append(
            _str(t.name)
            + struct.pack("<I", len(t.shape))
            + struct.pack(f"<{len(t.shape)}Q", *t.shape)
            + struct.pack("<IQ", int(t.dst_type), pos)
        )
        pos += padded(t.dst_nbytes, align)
    head = struct.pack("<4sIQQ", b"GGUF", GGUF_VERSION, len(plan.tensors), len(kv_parts))
    header = head + b"".join(kv_parts) + b"".join(ti_parts)
    header += bytes(padded(len(header), align) - len(header))
    return header, offsets, pos


def padded(n: int, align: int) -> int:
    return -(-n // align) * align


_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000


def _link_fd(fd: int, dest: Path) -> None:
    """Give the unnamed file open as `fd` the name `dest` (Linux linkat).

    linkat(fd, "", AT_EMPTY_PATH) is the direct way (Linux 6.10+ for everyone, older kernels
    need a capability); the classic way goes through /proc/self/fd, which some sandboxes refuse."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.linkat(fd, b"", _AT_FDCWD, os.fsencode(dest), _AT_EMPTY_PATH) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, os.strerror(err), str(dest))
    except (OSError, AttributeError) as e:
        if isinstance(e, FileExistsError):
            raise
    os.link(f"/proc/self/fd/{fd}", dest)


def temp_name_for(dest: Path) -> Path:
    """A hidden name beside `dest` for a model still being written (quantdesk.core.renames.temp_name)."""
    return renames.temp_name(dest, "partial")


def remove_stale_partials(folder: Path) -> list[Path]:
    """Delete the temporary files in `folder` of writers that are gone: partial models, and the
    small files (cards, the hash cache) renames.write_text was writing (renames.remove_stale_temporaries)."""
    return renames.remove_stale_temporaries(folder)


class AtomicOutput:
    """A file in `dest`'s folder that becomes `dest` on commit() and vanishes on abort()."""

    def __init__(self, dest: Path, overwrite: bool = False):
        self.dest = dest
        self.overwrite = overwrite
        self.temp_name: Path | None = None  # only when unnamed files are not available
        remove_stale_partials(dest.parent)  # e.g. a convert's intermediate, or a partial on macOS/Windows
        fd = self._open_unnamed()
        if fd is None:
            self.temp_name = temp_name_for(dest)
            # O_BINARY: without it Windows opens the descriptor in text mode and turns every
            # 0x0A byte written into 0x0D 0x0A, corrupting the model.
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            fd = os.open(self.temp_name, flags, 0o644)
        self.fd: int = fd
        self.file: BinaryIO = os.fdopen(self.fd, "wb", buffering=1 << 20)
        self._written = 0
        self._synced_to = 0

    def write(self, data: Any) -> None:
        """Append bytes. Every WRITEBACK_STEP bytes, ask the OS to start writing them to disk
        now (asynchronously), so the fsync at the end has little left to wait for and dirty
        pages do not pile up in memory."""
        self.file.write(data)
        self._written += memoryview(data).nbytes
        if self._written - self._synced_to >= WRITEBACK_STEP and hasattr(os, "posix_fadvise"):
            self.file.flush()
            try:
                os.posix_fadvise(self.fd, self._synced_to, self._written - self._synced_to, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass  # only an optimisation
            self._synced_to = self._written

    def _open_unnamed(self) -> int | None:
        flag = getattr(os, "O_TMPFILE", None)
        if flag is None:
            return None
        # Whether an unnamed file can be named later depends on the file system, kernel and
        # sandbox: try it on a throw-away one first (a file named once cannot be named again
        # after losing that name, so the probe cannot be the real file).
        try:
            probe_fd = os.open(self.dest.parent, flag | os.O_WRONLY, 0o600)
        except OSError as e:
            if e.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                return None  # this file system has no unnamed files: use a temporary name
            raise
        probe = temp_name_for(self.dest)
        try:
            _link_fd(probe_fd, probe)
        except OSError:
            return None
        finally:
            os.close(probe_fd)
        os.unlink(probe)
        return os.open(self.dest.parent, flag | os.O_WRONLY, 0o644)

    def commit(self) -> None:
        """Flush, sync and give the file its name (replacing an old one only if overwrite)."""
        self.file.flush()
        os.fsync(self.fd)  # a full disk can show up only here, on delayed-allocation file systems
        if self.temp_name is None:
            if self.overwrite:
                tmp = temp_name_for(self.dest)
                _link_fd(self.fd, tmp)
                try:
                    os.replace(tmp, self.dest)
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
            else:
                _link_fd(self.fd, self.dest)  # fails if dest appeared meanwhile: never clobber
            self.file.close()
            return
        # A named temporary file is closed before it is renamed: Windows refuses to rename a
        # file that is open. If the rename fails, abort() still finds it by temp_name.
        self.file.close()
        if self.overwrite:
            renames.replace(self.temp_name, self.dest)
        else:
            renames.rename_new(self.temp_name, self.dest)  # never clobber, even without hard links
        self.temp_name = None

    def abort(self) -> None:
        """Drop everything written; safe to call more than once and after a failed commit."""
        try:
            self.file.close()
        except OSError:
            pass  # e.g. the final flush hit a full disk; the data is going away anyway
        if self.temp_name is not None:
            try:
                os.unlink(self.temp_name)
            except OSError:
                pass  # gone already, or (Windows) held open by a scanner: a later run sweeps it
            self.temp_name = None
