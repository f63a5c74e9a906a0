"""Giving a finished temporary file its final name, the same way on Linux, macOS and Windows.

Every output goes to a temporary name beside its destination and is renamed when complete. Two
things differ between systems and are handled here, once:

- Windows refuses to rename or delete a file that any program has open, including for a moment
  (an antivirus scan, another Quantdesk process reading settings.json). `replace()` waits a
  little and tries again before giving up. The caller must have closed its own handle first.
- "Never clobber" is a hard link on Linux and macOS (link fails if the name exists), but hard
  links do not exist on FAT/exFAT drives (a USB stick), and on Windows a plain rename already
  refuses an existing name. `rename_new()` picks what works.
"""

from __future__ import annotations

import errno
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path

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
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")  # unique per writer
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
