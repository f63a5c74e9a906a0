"""Giving a finished temporary file its final name, the same way on Linux, macOS and Windows.

Every output goes to a temporary name beside its destination and is renamed when complete. Two
things differ between systems and are handled here, once:

- Windows refuses to rename or delete a file that any program has open, including for a moment
  (an antivirus scan, another Quantdesk process reading settings.json). `replace()` waits a
  little and tries again before giving up. The caller must have closed its own handle first.
- "Never clobber" is a hard link on Linux and macOS (link fails if the name exists), but hard
  links do not exist on FAT/exFAT drives (a USB stick), and on Windows a plain rename already
  refuses an existing name. `rename_new()` picks what works.

Every temporary name the app makes comes from `temp_name()` (hidden, beside its destination,
with the writer's process id), so that one left by a killed process can be recognised:
`remove_stale_temporaries()` deletes those whose process is gone. Every writer sweeps the folder
it writes to (write_text here, and quantdesk.core.quantize.writer's outputs).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

# Windows: how long to keep trying when another program has the file open (sharing violation).
_RETRY_FOR_S = 1.0
_RETRY_STEP_S = 0.05


def replace(src: str | Path, dst: str | Path) -> None:
    """os.replace, retried for up to a second on Windows while another program holds a file open."""
    _retrying(os.replace, src, dst)


def _retrying(rename: Callable[[str | Path, str | Path], None], src: str | Path, dst: str | Path) -> None:
    deadline = time.monotonic() + _RETRY_FOR_S
    while True:
        try:
            rename(src, dst)
            return
        except PermissionError:  # Windows: a sharing violation, usually gone in milliseconds
            if sys.platform != "win32" or time.monotonic() > deadline:
                raise
            time.sleep(_RETRY_STEP_S)


def rename_new(src: str | Path, dst: str | Path) -> None:
    """Rename `src` to `dst`, raising FileExistsError instead of replacing an existing `dst`.

    `src` must be closed (Windows). On Windows os.rename itself refuses an existing name. On
    POSIX a hard link does the same atomically; where the file system has no hard links (FAT,
    exFAT, some network shares) we check and rename, which leaves a window of microseconds in
    which a file created by another program could be replaced.
    """
    if sys.platform == "win32":
        _retrying(os.rename, src, dst)  # FileExistsError when dst exists
        return
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (EPERM, ENOTSUP, EOPNOTSUPP ...)
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst)) from None
        os.rename(src, dst)
        return
    os.unlink(src)


def write_text(path: str | Path, text: str, mode: int | None = None) -> None:
    """Write a small text file (settings, a card, a saved result, a token) so that readers see the
    old content or the new, never half of it: a temporary name in the same folder, synced, then
    renamed over the old file. `mode` (e.g. 0o600 for a secret) is set before the file gets its name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)  # e.g. a card or the hash cache of a killed run
    tmp = temp_name(path, "tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


TEMP_NAME_CHARS = 48  # of dest's name kept in a temporary name: it must fit where dest fits (255 bytes)
TEMP_KINDS = ("partial", "tmp")  # a model being written; a small text file being written
_TEMP_NAME = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.(?:" + "|".join(TEMP_KINDS) + r")$")


def temp_name(dest: Path, kind: str) -> Path:
    """A hidden name beside `dest` for a file still being written, unique to this writer and
    carrying this process's id, so that one left behind by a killed run can be recognised and
    removed later. A long name is cut: the additions must not take a name that fits past the file
    system's limit. `kind` is one of TEMP_KINDS."""
    assert kind in TEMP_KINDS
    return dest.with_name(f".{dest.name[:TEMP_NAME_CHARS]}.{os.getpid()}-{secrets.token_hex(4)}.{kind}")


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files in `folder` whose writing process is gone (killed, crashed).

    Only names made by temp_name() are considered, and only when the process id in the name is
    not running: a live writer's file is never removed (on Windows it could not be anyway)."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TEMP_NAME.match(e.name)
        if m is None or int(m.group(1)) == os.getpid() or psutil.pid_exists(int(m.group(1))):
            continue
        try:
            os.unlink(e.path)
            removed.append(Path(e.path))
        except OSError:
            pass  # in use after all, or not ours to delete: leave it
    return removed
