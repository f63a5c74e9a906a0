"""Downloading model files from the Hub: resumable, verified, cancellable, one job per model.

Why our own downloader instead of hf_hub_download: people need to pause, to resume after the app
was closed or killed, to cancel (which removes what was fetched), to see one progress bar for a
model split over several files, and to get their files in a plain folder (not the Hub cache's
symlink tree). We build it from huggingface_hub's own plumbing (hf_hub_url, its shared HTTP
session with proxies from the environment, its headers with the token), plus HTTP Range.

How a download goes:
1. `plan()` asks the Hub for the files (sizes and hashes) pinned to one commit, so every file of a
   multi-file model comes from the same revision, today or when resumed next week.
2. The job checks free disk space, then fetches each file into `<final name>.<hash>.part` beside
   its final place (the hash in the name means a partial is never resumed into different content).
3. While the bytes arrive they are hashed; a resumed partial is re-read first so the hash covers
   the whole file. A file whose hash differs from the Hub's LFS sha256 (or git blob id for small
   files) is deleted and the job fails: it never joins the Library.
4. Only when every file of the job is verified are they renamed to their final names.
Pending downloads are remembered in the data folder (`pending()`), so they can be resumed after
a restart; pause keeps the partials, cancel deletes them.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import re
import shutil
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import httpx2
from huggingface_hub import errors as hf_errors
from huggingface_hub.utils import get_session, hf_raise_for_status

from quantdesk.core import paths, renames, settings
from quantdesk.core.errors import QuantdeskError
from quantdesk.core.fit import default_context
from quantdesk.core.hub import client as hub
from quantdesk.core.hub.client import RemoteFile
from quantdesk.core.jobs import Cancelled, CancelToken, Job, Progress, ProgressCallback
from quantdesk.core.units import human_bytes

if TYPE_CHECKING:
    from _hashlib import HASH  # what hashlib's constructors return, in typeshed

# No byte for this long: drop the connection and continue with a new Range request. It is also
# how long a pause or cancel can take while a connection is stalled.
STALL_TIMEOUT_S = 4.0
CONNECT_TIMEOUT_S = 15.0
MAX_RETRIES = 5  # consecutive failed attempts without a single new byte
DISK_MARGIN_BYTES = 100_000_000  # leave this much free after the download
_REPORT_EVERY_S = 0.1

_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_BAD_CHARS = re.compile(r'[\x00-\x1f<>:"|?*\\]')


class DownloadError(QuantdeskError):
    """A download failed; the message says why and what to do, in one line."""


class VerificationError(DownloadError):
    """A file's bytes did not match the Hub's checksum; the file was deleted."""


# --------------------------------------------------------------------------------------------
# Names from the Hub are data, not paths


def safe_relpath(name: str) -> PurePosixPath:
    """A repo file name as a relative path that cannot leave the destination folder.

    Rejects absolute paths, '..', empty or '.' parts, backslashes, drive letters, control
    characters and names Windows reserves, instead of trying to repair them.
    """
    if not name or len(name) > 1000:
        raise DownloadError(f"refusing a file name from the Hub: {name[:80]!r} (empty or too long)")
    if name.startswith("/") or _BAD_CHARS.search(name):
        raise DownloadError(f"refusing an unsafe file name from the Hub: {name[:80]!r}")
    rel = PurePosixPath(name)
    for part in name.split("/"):
        if part in ("", ".", "..") or part.strip() != part or part.endswith("."):
            raise DownloadError(f"refusing an unsafe file name from the Hub: {name[:80]!r}")
        if part.split(".")[0].upper() in _WINDOWS_RESERVED:
            raise DownloadError(f"refusing a file name Windows cannot store: {name[:80]!r}")
    return rel


def target_path(dest: Path, name: str) -> Path:
    """Where repo file `name` goes under `dest`; raises DownloadError if it would land outside."""
    rel = safe_relpath(name)
    target = dest.joinpath(*rel.parts)
    root = dest.resolve()
    if root != target.resolve() and root not in target.resolve().parents:
        raise DownloadError(f"refusing {name!r}: it would be written outside {dest}")
    return target


def partial_path(target: Path, f: RemoteFile) -> Path:
    """The temporary name while downloading; the content hash in it ties it to those bytes."""
    tag = (f.sha256 or f.blob_id or "nohash")[:12]
    return target.with_name(f"{target.name}.{tag}.part")


def default_dest(repo_id: str) -> Path:
    """models/<author>/<name>, the layout LM Studio uses too, so people find their files."""
    parts = [p for p in repo_id.split("/") if p]
    for p in parts:
        safe_relpath(p)
    return paths.models_dir().joinpath(*parts)


# --------------------------------------------------------------------------------------------
# What to download


@dataclass(frozen=True)
class DownloadSpec:
    """One download job: these files of this repo at this commit, into this folder."""

    repo_id: str
    revision: str  # a commit hash, so a resumed download fetches the very same bytes
    files: tuple[RemoteFile, ...]
    dest: Path
    label: str = ""  # what the person picked: "Q4_K_M", "safetensors checkpoint"

    @property
    def id(self) -> str:
        key = json.dumps([self.repo_id, self.revision, sorted(f.path for f in self.files), str(self.dest)])
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    @property
    def title(self) -> str:
        return f"{self.repo_id} {self.label}".strip()

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def targets(self) -> list[tuple[RemoteFile, Path]]:
        return [(f, target_path(self.dest, f.path)) for f in self.files]

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "revision": self.revision,
            "dest": str(self.dest),
            "label": self.label,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256, "blob_id": f.blob_id} for f in self.files],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DownloadSpec:
        return cls(
            repo_id=str(d["repo_id"]),
            revision=str(d["revision"]),
            dest=Path(d["dest"]),
            label=str(d.get("label", "")),
            files=tuple(
                RemoteFile(str(f["path"]), int(f["size"]), f.get("sha256"), f.get("blob_id")) for f in d["files"]
            ),
        )


def select_files(files: Iterable[RemoteFile], include: Iterable[str]) -> list[RemoteFile]:
    """Files whose path (or base name) matches any of the glob patterns."""
    patterns = list(include)
    return [
        f
        for f in files
        if any(fnmatch.fnmatchcase(f.path, p) or fnmatch.fnmatchcase(PurePosixPath(f.path).name, p) for p in patterns)
    ]


def plan(
    repo_id: str,
    include: Iterable[str] | None = None,
    dest: Path | None = None,
    group: hub.FileGroup | None = None,
    details: hub.RepoDetails | None = None,
) -> DownloadSpec:
    """Decide what to fetch. With neither `include` nor `group`: the recommended quant level of a
    GGUF repo for this machine, else the repo's checkpoint. Raises HubError / DownloadError."""
    details = details or hub.repo_details(repo_id)
    label = ""
    if group is not None:
        chosen, label = list(group.files), group.label
    elif include:
        patterns = list(include)
        chosen = select_files(details.files, patterns)
        if not chosen:
            raise DownloadError(
                f"no file in {details.repo_id} matches {' '.join(patterns)}; "
                f"`quantdesk files {details.repo_id}` lists them"
            )
        label = " ".join(patterns)
    else:
        groups = hub.group_files(details.files)
        shape = hub.model_shape(details, groups)
        assessed = hub.assess(groups, shape, default_context(shape))
        pick = next((a.group for a in assessed if a.recommended), None)
        if pick is None:
            pick = next((g for g in groups if g.kind == "checkpoint"), None)
        if pick is None:
            raise DownloadError(
                f"{details.repo_id} has no GGUF file or safetensors checkpoint that fits; choose files with --include"
            )
        chosen, label = list(pick.files), pick.label
    spec = DownloadSpec(
        details.repo_id, details.sha, tuple(chosen), Path(dest) if dest else default_dest(details.repo_id), label
    )
    spec.targets()  # refuse unsafe names now, before anything is written
    return spec


# --------------------------------------------------------------------------------------------
# Pending downloads survive restarts


def _queue_file() -> Path:
    return paths.data_dir() / "downloads.json"


def pending() -> list[DownloadSpec]:
    """Downloads started but not finished or cancelled (paused, failed, or the app was killed)."""
    out = []
    for d in settings.load(_queue_file()).get("pending", []):
        try:
            out.append(DownloadSpec.from_dict(d))
        except (KeyError, TypeError, ValueError):
            continue  # an entry we cannot read is skipped, not fatal
    return out


def remember(spec: DownloadSpec) -> None:
    """Record a download as pending (a queued one too), so it is offered again after a restart."""
    values = settings.load(_queue_file())
    entries = [d for d in values.get("pending", []) if _safe_id(d) != spec.id]
    values["pending"] = entries + [spec.to_dict()]
    settings.save(values, _queue_file())


def forget(spec: DownloadSpec) -> None:
    values = settings.load(_queue_file())
    values["pending"] = [d for d in values.get("pending", []) if _safe_id(d) != spec.id]
    settings.save(values, _queue_file())


def _safe_id(d: dict[str, Any]) -> str:
    try:
        return DownloadSpec.from_dict(d).id
    except (KeyError, TypeError, ValueError):
        return ""


def downloaded_bytes(spec: DownloadSpec) -> int:
    """What is already on disk for this download (finished files and partials)."""
    total = 0
    for f, t in spec.targets():
        if _already_there(f, t):
            total += f.size
        elif partial_path(t, f).exists():
            total += min(f.size, partial_path(t, f).stat().st_size)
    return total


def discard(spec: DownloadSpec) -> None:
    """Cancel a download that is not running: delete its partial files and forget it."""
    for f, t in spec.targets():
        partial_path(t, f).unlink(missing_ok=True)
    forget(spec)


def _already_there(f: RemoteFile, target: Path) -> bool:
    try:
        return target.is_file() and target.stat().st_size == f.size
    except OSError:
        return False


def check_disk_space(dest: Path, need: int) -> None:
    probe = dest
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need + DISK_MARGIN_BYTES > free:
        raise DownloadError(
            f"not enough disk space in {dest}: the download needs {human_bytes(need)} more and "
            f"{human_bytes(free)} is free; free some space or choose another folder"
        )


# --------------------------------------------------------------------------------------------
# The job


def _hasher(f: RemoteFile) -> tuple[HASH, str] | tuple[None, None]:
    """sha256 for LFS files; for small git files the blob id, which is sha1('blob <size>\\0' + data)."""
    if f.sha256:
        return hashlib.sha256(), f.sha256.lower()
    if f.blob_id:
        h = hashlib.sha1()
        h.update(f"blob {f.size}\0".encode())
        return h, f.blob_id.lower()
    return None, None


class DownloadJob(Job[list[Path]]):
    """Download a DownloadSpec. `pause()` stops and keeps what was fetched; `cancel()` deletes it."""

    def __init__(
        self,
        spec: DownloadSpec,
        *,
        token: str | None = None,
        stall_timeout_s: float = STALL_TIMEOUT_S,
        max_retries: int = MAX_RETRIES,
        retry_wait_s: float = 1.0,
    ):
        super().__init__(f"Downloading {spec.title}", self._run)
        self.spec = spec
        self.token = token
        self.stall_timeout_s = stall_timeout_s
        self.max_retries = max_retries
        self.retry_wait_s = retry_wait_s
        self.paused = False
        self._socket: Any = None  # the socket of the response being read, to interrupt it

    def pause(self) -> None:
        self.paused = True
        self.cancel()

    def cancel(self) -> None:
        """Cancel (or pause) now: besides setting the flag, wake a read that is waiting on a stalled
        connection, which would otherwise notice only after STALL_TIMEOUT_S."""
        super().cancel()
        sock = self._socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            if sys.platform == "win32":
                # Winsock's shutdown does not wake a read blocked in another thread; closing the
                # socket does (the read fails, the job sees the cancel). On Linux and macOS the
                # shutdown is enough, and closing under a reader is what must not be done there.
                with contextlib.suppress(OSError):
                    sock.close()

    # -- the whole job --------------------------------------------------------------------
    def _run(self, report: ProgressCallback, cancel: CancelToken) -> list[Path]:
        spec = self.spec
        targets = spec.targets()  # raises on unsafe names before anything is written
        remember(spec)
        try:
            todo = [(f, t) for f, t in targets if not _already_there(f, t)]
            have = sum(f.size for f, t in targets if (f, t) not in todo)
            on_disk = sum(
                min(f.size, partial_path(t, f).stat().st_size) for f, t in todo if partial_path(t, f).exists()
            )
            spec.dest.mkdir(parents=True, exist_ok=True)
            check_disk_space(spec.dest, sum(f.size for f, _ in todo) - on_disk)
            progress = _Reporter(report, spec.total_bytes, len(targets))
            progress.done = have
            for i, (f, t) in enumerate(todo):
                progress.file = (len(targets) - len(todo) + i + 1, PurePosixPath(f.path).name)
                t.parent.mkdir(parents=True, exist_ok=True)
                self._fetch(f, partial_path(t, f), progress, cancel)
            for f, t in todo:  # every file verified: now they join the Library, together
                try:
                    renames.replace(partial_path(t, f), t)
                except OSError as e:  # Windows: an older file of that name is open (e.g. loaded in Chat)
                    raise DownloadError(
                        f"{t.name}: cannot put the finished download in place "
                        f"({e.strerror or e}); close it where it is open and resume"
                    ) from None
            report(Progress(spec.total_bytes, spec.total_bytes, "B", f"Downloaded {spec.title}", "Done"))
        except Cancelled:
            if not self.paused:
                discard(spec)
            raise
        except VerificationError:
            forget(spec)
            raise
        forget(spec)
        return [t for _, t in targets]

    # -- one file -------------------------------------------------------------------------
    def _fetch(self, f: RemoteFile, part: Path, progress: _Reporter, cancel: CancelToken) -> None:
        name = PurePosixPath(f.path).name
        state = _Partial(f, part)
        if state.have and state.hasher is not None:
            progress.message(f"Checking the part of {name} already downloaded")
            state.rehash(cancel)
        progress.add(state.have)
        url = hub.file_url(self.spec.repo_id, f.path, self.spec.revision)
        failures = 0
        while state.have < f.size or not part.exists():
            cancel.check()
            before = state.have
            try:
                try:
                    self._stream(url, state, progress, cancel)
                finally:
                    self._socket = None
                if state.have < f.size:
                    raise _Incomplete()
            except (httpx2.TransportError, _Incomplete, hf_errors.HfHubHTTPError) as e:
                cancel.check()  # a pause or cancel interrupted the read: that is all it was
                if isinstance(e, hf_errors.HfHubHTTPError) and not _transient(e):
                    raise DownloadError(str(hub.explain(e, name))) from None
                failures = 0 if state.have > before else failures + 1
                if failures > self.max_retries:
                    raise DownloadError(
                        f"{name}: {_network_reason(e)} (tried {failures} times); {human_bytes(state.have)} of "
                        f"{human_bytes(f.size)} is kept, resume to continue"
                    ) from None
                progress.message(f"{name}: {_network_reason(e)}, retrying")
                self._wait(min(30.0, self.retry_wait_s * 2 ** max(0, failures - 1)), cancel)
            except OSError as e:  # the disk, not the network (or our own interrupt)
                cancel.check()
                raise DownloadError(f"{name}: cannot write {state.path}: {e.strerror or e}") from None
        state.verify()

    def _stream(self, url: str, state: _Partial, progress: _Reporter, cancel: CancelToken) -> None:
        """One HTTP request continuing the partial file from byte `state.have`."""
        f = state.file
        headers = hub.headers(self.token)
        headers["Accept-Encoding"] = "identity"  # a compressed body cannot be resumed by byte offset
        if state.have:
            headers["Range"] = f"bytes={state.have}-"
        timeout = httpx2.Timeout(self.stall_timeout_s, connect=CONNECT_TIMEOUT_S)
        with get_session().stream("GET", url, headers=headers, timeout=timeout) as r:
            stream = r.extensions.get("network_stream")
            self._socket = stream.get_extra_info("socket") if stream is not None else None
            if cancel.cancelled:  # cancelled while we were connecting
                raise Cancelled()
            if r.status_code >= 400:
                r.read()
                hf_raise_for_status(r)
            start = _range_start(r.headers.get("Content-Range")) if r.status_code == 206 else 0
            if start != state.have:  # the server ignored our Range (or answered another one): start over
                state.restart(progress)
            with state.path.open("r+b" if state.path.exists() else "wb") as out:
                out.seek(state.have)
                out.truncate()
                for chunk in r.iter_bytes():
                    cancel.check()
                    if state.have + len(chunk) > f.size:
                        raise DownloadError(
                            f"{PurePosixPath(f.path).name}: the server sent more bytes than the Hub "
                            f"lists ({human_bytes(f.size)}); try again later"
                        )
                    out.write(chunk)
                    state.took(chunk)
                    progress.add(len(chunk))

    @staticmethod
    def _wait(seconds: float, cancel: CancelToken) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            cancel.check()
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))


class _Partial:
    """A file being downloaded: how many bytes are on disk and the hash of exactly those bytes.

    One object shared by every attempt, so an attempt that breaks off midway leaves the count and
    the hash in step with the file for the next one."""

    def __init__(self, f: RemoteFile, path: Path):
        self.file = f
        self.path = path
        self.have = path.stat().st_size if path.exists() else 0
        self.hasher: HASH | None
        self.expected: str | None
        self.hasher, self.expected = _hasher(f)
        if self.have > f.size:  # not the file we think it is: start it again
            path.write_bytes(b"")
            self.have = 0

    def rehash(self, cancel: CancelToken) -> None:
        """Hash what an earlier run left on disk (the hash object itself cannot be saved)."""
        assert self.hasher is not None  # _fetch rehashes only a file it can check
        with self.path.open("rb") as src:
            left = self.have
            while left:
                cancel.check()
                block = src.read(min(left, 8 << 20))
                if not block:
                    break
                self.hasher.update(block)
                left -= len(block)

    def took(self, chunk: bytes) -> None:
        self.have += len(chunk)
        if self.hasher is not None:
            self.hasher.update(chunk)

    def restart(self, progress: _Reporter) -> None:
        progress.add(-self.have)
        self.have = 0
        self.hasher, _ = _hasher(self.file)
        if self.path.exists():
            self.path.write_bytes(b"")

    def verify(self) -> None:
        if self.hasher is None or self.expected is None:  # _hasher gives both or neither
            return
        got = self.hasher.hexdigest()
        if got != self.expected:
            self.path.unlink(missing_ok=True)
            kind = "sha256" if self.file.sha256 else "git blob id"
            raise VerificationError(
                f"{PurePosixPath(self.file.path).name} does not match the Hub's checksum ({kind} "
                f"{self.expected[:12]}…, got {got[:12]}…): it was deleted and not added to the Library; "
                "download it again"
            )


class _Incomplete(Exception):  # noqa: N818 (a signal to retry, not an error)
    """The server closed the response before the whole file arrived."""


def _transient(e: hf_errors.HfHubHTTPError) -> bool:
    status = e.response.status_code if getattr(e, "response", None) is not None else 0
    return status >= 500 or status in (408, 429)


def _network_reason(e: BaseException) -> str:
    if isinstance(e, hf_errors.HfHubHTTPError):
        status = e.response.status_code if getattr(e, "response", None) is not None else "?"
        return f"the Hub answered with a server error (HTTP {status})"
    if isinstance(e, httpx2.TimeoutException):
        return "the connection stalled"
    if isinstance(e, httpx2.ConnectError):
        return f"cannot connect to {hub.endpoint()}"
    return "the connection was dropped"


def _range_start(content_range: str | None) -> int:
    m = re.match(r"bytes (\d+)-", content_range or "")
    return int(m.group(1)) if m else -1


class _Reporter:
    """Byte counts -> Progress reports, at most ten a second (a terminal or a Qt signal each)."""

    def __init__(self, report: ProgressCallback, total: int, n_files: int):
        self._report = report
        self.total = total
        self.n_files = n_files
        self.done = 0
        self.file = (1, "")
        self._last = 0.0
        self._note = ""

    def message(self, note: str) -> None:
        self._note = note
        self._emit(force=True)

    def add(self, n: int) -> None:
        self.done += n
        if n > 0:
            self._note = ""
        self._emit()

    def _emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < _REPORT_EVERY_S:
            return
        self._last = now
        i, name = self.file
        text = self._note or (f"Downloading {name}" + (f" (file {i} of {self.n_files})" if self.n_files > 1 else ""))
        self._report(Progress(self.done, self.total, "B", text, "Downloading"))


def describe(spec: DownloadSpec) -> str:
    """'3 files, 4.2 GB, into /path'."""
    n = len(spec.files)
    return f"{n} file{'s' if n != 1 else ''}, {human_bytes(spec.total_bytes)}, into {spec.dest}"
