"""The atomic output file, in both of its forms: the unnamed file (Linux O_TMPFILE) and the hidden
temporary name used everywhere else (macOS, Windows, file systems without unnamed files).

The named form is forced here on Linux too, so the path macOS and Windows take is tested on
every run. What only Windows does (refusing to rename an open file) is covered by the order of
operations: the file is closed before any rename, which these tests check directly."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from quantdesk.core import renames
from quantdesk.core.quantize import writer as quant_writer
from quantdesk.core.quantize.writer import AtomicOutput, remove_stale_partials

# every byte value, including 0x0A, which a text-mode descriptor on Windows would expand
PAYLOAD = bytes(range(256)) * 64 + b"\n\r\n\n"


@pytest.fixture(params=["unnamed", "named"])
def mode(request, monkeypatch) -> str:
    if request.param == "named":
        monkeypatch.setattr(AtomicOutput, "_open_unnamed", lambda self: None)
    return request.param


def test_commit_gives_the_exact_bytes_their_name_and_leaves_nothing_else(mode: str, tmp_path: Path) -> None:
    dest = tmp_path / "m.gguf"
    out = AtomicOutput(dest)
    out.write(PAYLOAD)
    if mode == "named":
        assert out.temp_name is not None and out.temp_name.name.startswith(".m.gguf.")
    assert not dest.exists()
    out.commit()
    assert out.file.closed
    assert dest.read_bytes() == PAYLOAD
    assert os.listdir(tmp_path) == ["m.gguf"]


def test_commit_never_clobbers_unless_overwrite(mode: str, tmp_path: Path) -> None:
    dest = tmp_path / "m.gguf"
    dest.write_bytes(b"precious")
    out = AtomicOutput(dest)
    out.write(PAYLOAD)
    with pytest.raises(FileExistsError):
        out.commit()
    out.abort()
    assert dest.read_bytes() == b"precious" and os.listdir(tmp_path) == ["m.gguf"]

    out = AtomicOutput(dest, overwrite=True)
    out.write(PAYLOAD)
    out.commit()
    assert dest.read_bytes() == PAYLOAD and os.listdir(tmp_path) == ["m.gguf"]


def test_abort_removes_everything_and_can_be_repeated(mode: str, tmp_path: Path) -> None:
    out = AtomicOutput(tmp_path / "m.gguf")
    out.write(PAYLOAD)
    out.abort()
    out.abort()
    assert os.listdir(tmp_path) == []


def test_the_named_file_is_closed_before_it_is_renamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows cannot rename an open file: commit must close first (checked at the rename)."""
    monkeypatch.setattr(AtomicOutput, "_open_unnamed", lambda self: None)
    seen = []
    for name in ("replace", "rename_new"):
        real = getattr(renames, name)

        def check(src, dst, real=real, name=name):
            seen.append((name, out.file.closed))
            real(src, dst)

        monkeypatch.setattr(renames, name, check)
    for overwrite in (False, True):
        out = AtomicOutput(tmp_path / "m.gguf", overwrite=overwrite)
        out.write(PAYLOAD)
        out.commit()
    assert seen == [("rename_new", True), ("replace", True)]


def test_no_clobber_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FAT and exFAT drives have no hard links: the rename still never replaces an existing file."""

    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_bytes(b"new")
    dst.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        renames.rename_new(src, dst)
    assert dst.read_bytes() == b"old" and src.exists()
    dst.unlink()
    renames.rename_new(src, dst)
    assert dst.read_bytes() == b"new" and not src.exists()


def test_partials_of_dead_writers_are_swept_and_live_ones_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed run on macOS or Windows leaves its hidden partial; the next output there removes it."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    pid = proc.pid
    del proc  # Windows: our handle would keep the dead process known to the system, as if running
    dead = tmp_path / f".old.gguf.{pid}-0123abcd.partial"
    live = tmp_path / f".other.gguf.{os.getpid()}-0123abcd.partial"
    user_files = [tmp_path / ".notes.partial", tmp_path / "x.gguf.1234-0123abcd.partial", tmp_path / "m.gguf"]
    for p in [dead, live, *user_files]:
        p.write_bytes(b"x")
    if psutil.pid_exists(pid):
        pytest.skip("the finished child's process id was reused at once")
    monkeypatch.setattr(AtomicOutput, "_open_unnamed", lambda self: None)
    out = AtomicOutput(tmp_path / "new.gguf")
    assert not dead.exists() and live.exists() and all(p.exists() for p in user_files)
    out.abort()
    assert remove_stale_partials(tmp_path / "missing") == []


def test_windows_sharing_violations_are_waited_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On Windows a scanner or another Quantdesk process may hold a file open for a moment: the
    rename is tried again for up to a second (the Windows branch, run here with sys.platform set)."""
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_bytes(b"new")
    real_replace, failures = os.replace, [2]

    def busy_then_free(a, b):
        if failures[0]:
            failures[0] -= 1
            raise PermissionError(13, "The process cannot access the file because it is being used by another process")
        real_replace(a, b)

    monkeypatch.setattr(os, "replace", busy_then_free)
    monkeypatch.setattr(sys, "platform", "win32")
    renames.replace(src, dst)
    assert dst.read_bytes() == b"new" and failures == [0]
    monkeypatch.setattr(sys, "platform", "linux")  # elsewhere a PermissionError is real: no waiting
    failures[0] = 1
    src.write_bytes(b"x")
    with pytest.raises(PermissionError):
        renames.replace(src, dst)


def test_a_killed_converts_intermediate_is_swept_by_the_next_output(tmp_path: Path) -> None:
    """convert writes a hidden F16 intermediate under a temp_name_for name; if the run is killed,
    the next output in that folder removes it, on every system (unnamed files or not)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    pid = proc.pid
    del proc
    mine = quant_writer.temp_name_for(tmp_path / "model.gguf.f16")
    dead = mine.with_name(mine.name.replace(f".{os.getpid()}-", f".{pid}-"))
    dead.write_bytes(b"GGUF")
    if psutil.pid_exists(pid):
        pytest.skip("the finished child's process id was reused at once")
    out = AtomicOutput(tmp_path / "next.gguf")
    out.write(b"data")
    out.commit()
    assert not dead.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["next.gguf"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    pid = proc.pid
    del proc  # Windows: our handle would keep the dead process known to the system, as if running
    if psutil.pid_exists(pid):
        pytest.skip("the finished child's process id was reused at once")
    return pid


def test_a_killed_writes_card_and_hash_cache_temporaries_are_swept(tmp_path: Path, quantdesk_home: Path) -> None:
    """A kill between writing and renaming left .NAME.card.json.PID-x.tmp beside the output and
    .hash-cache.json.PID-x.tmp in the data folder for ever: the sweep knew only .partial names.
    Now every temporary name comes from renames.temp_name, and every writer sweeps its folder."""
    import gguf
    import numpy as np

    from quantdesk.core.quantize.run import QuantizeRequest, quantize_file

    pid = _dead_pid()
    src_dir, out_dir = tmp_path / "src", tmp_path / "out"
    src_dir.mkdir()
    out_dir.mkdir()
    w = gguf.GGUFWriter(str(src_dir / "t.gguf"), arch="llama")
    w.add_tensor("a.weight", np.ones((4, 64), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    card_tmp = out_dir / f".old.gguf.card.json.{pid}-0123abcd.tmp"
    cache_tmp = quantdesk_home / f".hash-cache.json.{pid}-89abcdef.tmp"
    live_tmp = quantdesk_home / f".settings.json.{os.getppid()}-0123abcd.tmp"  # our parent: alive
    for p in (card_tmp, cache_tmp, live_tmp):
        p.write_text("{}", encoding="utf-8")
    quantize_file(QuantizeRequest(src_dir / "t.gguf", out_dir / "q.gguf", "Q8_0"))
    assert sorted(p.name for p in out_dir.iterdir()) == ["q.gguf", "q.gguf.card.json"]
    assert not cache_tmp.exists() and live_tmp.exists()  # a running writer's file is kept
    assert (quantdesk_home / "hash-cache.json").is_file()


def test_every_temporary_name_is_one_the_sweep_knows(tmp_path: Path) -> None:
    """The partial models and the small text files: both kinds, a long name cut to fit."""
    for kind in renames.TEMP_KINDS:
        name = renames.temp_name(tmp_path / ("m" * 250), kind)
        assert renames._TEMP_NAME.match(name.name) and len(name.name.encode()) < 255
    assert quant_writer.temp_name_for(tmp_path / "x.gguf").name.endswith(".partial")
