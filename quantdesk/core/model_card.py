"""The card stored beside every file Quantdesk produces: where it came from and how it was made.

`<output>.card.json` records the source file and its SHA-256, the level, the Quantdesk version,
the imatrix file and its hash (if one was used) and the time taken, so a result on disk can be
traced and reproduced months later without guessing. The Library shows it.

Hashing a multi-gigabyte source costs seconds, and people quantize one source to several levels
in a row, so hashes are remembered per (path, size, modification time) in the data folder.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from quantdesk import __version__
from quantdesk.core import renames
from quantdesk.core.paths import data_dir

CARD_SUFFIX = ".card.json"
_CACHE_LOCK = threading.Lock()


def card_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + CARD_SUFFIX)


@dataclass
class ModelCard:
    output: str
    source: str
    source_sha256: str
    level: str
    quantdesk_version: str = __version__
    imatrix: str | None = None
    imatrix_sha256: str | None = None
    seconds: float = 0.0
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    output_bytes: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # non-default switches (pure, overrides ...)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_card(card: ModelCard, output: str | Path) -> Path:
    """Write the card beside `output` atomically (temporary name, then rename)."""
    path = card_path(output)
    renames.write_text(path, json.dumps(card.as_dict(), indent=2) + "\n")
    return path


def read_card(output: str | Path) -> dict[str, Any] | None:
    """The card of a produced file, or None when it has none (or it is unreadable)."""
    try:
        return json.loads(card_path(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class HashStopped(Exception):  # noqa: N818 (a signal to stop, not an error)
    """file_sha256 was asked to stop before it finished."""


def _hash_file(path: Path, stop: threading.Event | None, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while b := f.read(chunk):
            if stop is not None and stop.is_set():
                raise HashStopped()
            h.update(b)
    return h.hexdigest()


def _cache_file() -> Path:
    return data_dir() / "hash-cache.json"


def file_sha256(path: str | Path, stop: threading.Event | None = None) -> str:
    """Hex SHA-256 of a file, remembered while the file keeps its size and modification time.

    `stop` (set from another thread) makes it give up with HashStopped."""
    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    with _CACHE_LOCK:
        try:
            cache = json.loads(_cache_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cache = {}
        if key in cache:
            return str(cache[key])
    digest = _hash_file(path, stop)
    with _CACHE_LOCK:
        try:
            cache = json.loads(_cache_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cache = {}
        cache = {k: v for k, v in cache.items() if not k.startswith(f"{path}|")}
        cache[key] = digest
        try:
            renames.write_text(_cache_file(), json.dumps(cache))
        except OSError:  # e.g. another Quantdesk process holds the cache open (Windows), or the data
            pass  # folder cannot be made (read-only, a file of that name): skip remembering
    return digest
