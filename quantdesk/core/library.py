"""The models on this disk: the app's models folder, the built-in starter model, folders the user
added, and the places other tools keep models (the Hugging Face cache, LM Studio's folder).

Files are found where they are, never copied: people already have gigabytes of GGUF files and
should not download or store them twice. Each GGUF file is its own entry (a split file counts
once, with the size of all its parts); a folder holding config.json and *.safetensors is one
checkpoint entry.

`list_models()` only looks at names and sizes, so it stays fast with hundreds of files; what is
inside a file (`info()`) is read on demand and remembered while the file is unchanged.

The API other parts use (quantize, chat, lab): `list_models()`, `LibraryEntry`, `info()`,
`delete()`, `reveal()`, `add_folder()` / `remove_folder()` / `folders()`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantdesk.core import paths, settings, starter
from quantdesk.core.errors import QuantdeskError
from quantdesk.core.gguf import reader as gguf_file
from quantdesk.core.hub.client import quant_from_name, shard_info

FOLDERS_KEY = "library_folders"
MAX_DEPTH = 6  # folders deeper than this below a root are not scanned (a home folder added by mistake)
CHECKPOINT_FILES = re.compile(
    r"(\.safetensors|\.safetensors\.index\.json|config\.json|tokenizer.*|"
    r"special_tokens_map\.json|generation_config\.json|vocab\.(json|txt)|merges\.txt|"
    r"\.tiktoken|chat_template\.(jinja|json))$"
)

SOURCE_APP = "Quantdesk"
SOURCE_BUILTIN = "Built-in"
SOURCE_FOLDER = "Added folder"
SOURCE_HF_CACHE = "Hugging Face cache"
SOURCE_LM_STUDIO = "LM Studio"


class LibraryError(QuantdeskError):
    """A library action failed; the message says why in one line."""


@dataclass(frozen=True)
class LibraryEntry:
    """One model on disk, as every page sees it."""

    path: Path  # the .gguf (the first part of a split file) or the checkpoint folder
    kind: str  # "gguf" | "checkpoint"
    name: str  # what to call it: the file name without .gguf, or the checkpoint's folder
    size: int  # bytes on disk, all parts / all checkpoint files
    file_type: str  # quant level from the file name ("Q4_K_M"), "" when unknown; info() has the truth
    source: str  # SOURCE_* above
    repo_id: str = ""  # "author/name" when the folder layout tells (models folder, HF cache)
    files: tuple[Path, ...] = ()  # every file that makes up the entry
    builtin: bool = False

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["path"] = str(self.path)
        d["files"] = [str(f) for f in self.files]
        return d


# --------------------------------------------------------------------------------------------
# Where to look


def folders() -> list[Path]:
    """The folders the user added."""
    return [Path(p) for p in settings.get(FOLDERS_KEY, []) if isinstance(p, str)]


def add_folder(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise LibraryError(f"{p} is not a folder")
    p = p.resolve()
    current = [str(f) for f in folders()]
    if str(p) not in current:
        settings.set_value(FOLDERS_KEY, current + [str(p)])
    return p


def remove_folder(path: str | Path) -> None:
    """Stop showing a folder's models (the files stay where they are)."""
    target = str(Path(path).expanduser().resolve())
    settings.set_value(FOLDERS_KEY, [str(f) for f in folders() if str(f.resolve()) != target])


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, from the environment as it is now (as huggingface_hub computes it)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def lm_studio_dirs() -> list[Path]:
    """LM Studio's models folders (current and older versions)."""
    home = Path.home()
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


def known_locations() -> list[tuple[str, Path]]:
    """Other tools' model folders that exist on this machine, with their names."""
    out = [(SOURCE_HF_CACHE, hf_cache_dir())] + [(SOURCE_LM_STUDIO, d) for d in lm_studio_dirs()]
    return [(label, p) for label, p in out if p.is_dir()]


# --------------------------------------------------------------------------------------------
# Scanning


def list_models() -> list[LibraryEntry]:
    """Every model we can find, the starter model first, then by name. Never raises for a folder
    that vanished or cannot be read: those are skipped."""
    entries: list[LibraryEntry] = []
    seen: set[Path] = set()

    def keep(e: LibraryEntry) -> None:
        key = _real(e.path)
        if key not in seen:
            seen.add(key)
            entries.append(e)

    start = starter.starter_model_path()
    if start is not None and start.is_file():
        keep(
            LibraryEntry(
                start,
                "gguf",
                starter.STARTER_NAME,
                start.stat().st_size,
                quant_from_name(start.name) or "",
                SOURCE_BUILTIN,
                "",
                (start,),
                builtin=True,
            )
        )
    roots = [(paths.models_dir(), SOURCE_APP)] + [(f, SOURCE_FOLDER) for f in folders()]
    roots += [(d, SOURCE_LM_STUDIO) for d in lm_studio_dirs()]
    for root, source in roots:
        for e in _scan(root, source):
            keep(e)
    for e in _scan_hf_cache(hf_cache_dir()):
        keep(e)
    rest = sorted(
        entries[1:] if entries and entries[0].builtin else entries, key=lambda e: (e.name.lower(), str(e.path))
    )
    return ([entries[0]] if entries and entries[0].builtin else []) + rest


def _real(p: Path) -> Path:
    try:
        return p.resolve()
    except OSError:
        return p


def _size(files: list[Path]) -> int:
    total = 0
    for f in files:
        with contextlib.suppress(OSError):
            total += f.stat().st_size
    return total


def _walk(root: Path) -> Iterator[tuple[Path, list[str]]]:
    """(folder, file names) below root, skipping hidden folders and files (an output still being
    written is hidden) and going at most MAX_DEPTH deep."""
    if not root.is_dir():
        return
    base = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: None):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if len(here.parts) - base < MAX_DEPTH else []
        yield here, sorted(f for f in filenames if not f.startswith("."))


def _entries_in(folder: Path, names: list[str], source: str, repo_id: str) -> list[LibraryEntry]:
    out = []
    ggufs = [n for n in names if n.lower().endswith(".gguf") and "mmproj" not in n.lower()]
    for n in ggufs:
        shard = shard_info(n)
        if shard and shard[0] != 1:
            continue  # later parts are counted with the first
        files = [folder / n]
        if shard:
            prefix = n[: n.lower().rfind(f"-{shard[0]:05d}-of-")]
            files = [folder / m for m in ggufs if m.startswith(prefix) and shard_info(m)]
        stem = re.sub(r"-00001-of-\d{5}$", "", n[:-5])
        out.append(
            LibraryEntry(
                folder / n, "gguf", stem, _size(files), quant_from_name(n) or "", source, repo_id, tuple(files)
            )
        )
    if "config.json" in names and any(n.endswith(".safetensors") for n in names):
        files = [folder / n for n in names if CHECKPOINT_FILES.search(n)]
        out.append(
            LibraryEntry(
                folder,
                "checkpoint",
                repo_id.split("/")[-1] if repo_id else folder.name,
                _size(files),
                "",
                source,
                repo_id,
                tuple(files),
            )
        )
    return out


def _scan(root: Path, source: str) -> list[LibraryEntry]:
    out = []
    for folder, names in _walk(root):
        rel = folder.relative_to(root).parts
        # models/<author>/<name>/... is how we (and LM Studio) lay out downloads
        repo_id = "/".join(rel[:2]) if source in (SOURCE_APP, SOURCE_LM_STUDIO) and len(rel) >= 2 else ""
        out.extend(_entries_in(folder, names, source, repo_id))
    return out


def _scan_hf_cache(cache: Path) -> list[LibraryEntry]:
    """models--<author>--<name>/snapshots/<commit>/... ; files there are symlinks to blobs."""
    out: list[LibraryEntry] = []
    if not cache.is_dir():
        return out
    for repo_dir in sorted(cache.glob("models--*")):
        repo_id = repo_dir.name[len("models--") :].replace("--", "/")
        snapshots = repo_dir / "snapshots"
        if not snapshots.is_dir():
            continue
        for folder, names in _walk(snapshots):
            names = [n for n in names if (folder / n).exists()]  # dangling links: blob not downloaded
            out.extend(_entries_in(folder, names, SOURCE_HF_CACHE, repo_id))
    return out


# --------------------------------------------------------------------------------------------
# What is inside, delete, reveal

_info_cache: dict[tuple[str, int, int], gguf_file.ModelInfo] = {}
_info_locks: dict[tuple[str, int, int], threading.Lock] = {}
_info_lock = threading.Lock()


def info(entry: LibraryEntry | Path) -> gguf_file.ModelInfo:
    """The GGUF metadata (read_info), cached while the file's size and mtime stay the same.
    Raises GGUFError for a bad file and LibraryError for a checkpoint (it has no GGUF header)."""
    path = entry.path if isinstance(entry, LibraryEntry) else Path(entry)
    if path.is_dir():
        raise LibraryError(f"{path.name} is a safetensors checkpoint; convert it to GGUF first")
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _info_lock:
        file_lock = _info_locks.setdefault(key, threading.Lock())
    # Reading a header with a large vocabulary takes seconds: two pages asking for the same file
    # at once wait for one read instead of doing two.
    with file_lock:
        if key not in _info_cache:
            _info_cache[key] = gguf_file.read_info(path)
        return _info_cache[key]


def cached_info(entry: LibraryEntry | Path) -> gguf_file.ModelInfo | None:
    """info() if it was already read and the file is unchanged, else None (never reads the file)."""
    path = entry.path if isinstance(entry, LibraryEntry) else Path(entry)
    try:
        st = path.stat()
    except OSError:
        return None
    with _info_lock:
        return _info_cache.get((str(path), st.st_size, st.st_mtime_ns))


def find(path: str | Path) -> LibraryEntry | None:
    target = _real(Path(path))
    return next((e for e in list_models() if _real(e.path) == target), None)


def delete(entry: LibraryEntry) -> None:
    """Delete the entry's files from disk (the UI asks first). A checkpoint folder keeps anything
    that is not part of the checkpoint, such as GGUF files quantized beside it."""
    if entry.builtin:
        raise LibraryError("the built-in starter model ships with the app and cannot be deleted")
    cache = _real(hf_cache_dir())
    for f in entry.files:
        try:
            if f.is_symlink():
                blob = _real(f)
                f.unlink()
                if cache in blob.parents:  # a Hub cache snapshot: the bytes live in blobs/
                    blob.unlink(missing_ok=True)
            else:
                f.unlink(missing_ok=True)
        except PermissionError as e:  # on Windows also: the file is open (loaded in Chat, being quantized)
            raise LibraryError(
                f"cannot delete {f}: {e.strerror or e}; if it is open in Chat or another program, close it there first"
            ) from None
        except OSError as e:
            raise LibraryError(f"cannot delete {f}: {e.strerror or e}") from None
    folder = entry.path if entry.kind == "checkpoint" else entry.path.parent
    _remove_empty_parents(folder)


def _remove_empty_parents(folder: Path) -> None:
    """Tidy models/<author>/<name>/ folders a delete left empty, never above a library root."""
    stops = {_real(paths.models_dir())} | {_real(f) for f in folders()} | {_real(d) for d in lm_studio_dirs()}
    current = folder
    while current != current.parent and _real(current) not in stops:
        try:
            current.rmdir()  # only succeeds when empty
        except OSError:
            return
        current = current.parent


def reveal_command(path: Path) -> list[str]:
    """The platform's way to show a file in its folder."""
    if sys.platform == "darwin":
        return ["open", "-R", str(path)]
    if sys.platform.startswith("win"):
        return ["explorer", "/select,", str(path)]
    return ["xdg-open", str(path if path.is_dir() else path.parent)]


def reveal(path: Path) -> None:
    cmd = reveal_command(path)
    if shutil.which(cmd[0]) is None:
        raise LibraryError(f"cannot open a file manager here ({cmd[0]} not found); the file is {path}")
    if sys.platform.startswith("win"):
        # Explorer splits its command line at commas, not spaces, so the path is always quoted
        # (Windows paths cannot contain '"'); a list would leave a path with a comma unquoted.
        subprocess.Popen(f'{cmd[0]} {cmd[1]}"{cmd[2]}"')
        return
    subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
