"""Quantizing loses nothing: bad input is refused with a clear message before anything is written,
and a cancel, a full disk or a kill leave no file behind. The source is never modified."""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import gguf
import numpy as np
import pytest

from app.core import quantize as quantize_mod
from app.core.jobs import Cancelled, CancelToken, Progress
from app.core.quant_writer import AtomicOutput
from app.core.quantize import QuantizeError, QuantizeRequest, quantize_file, quantize_job

ROOT = Path(__file__).resolve().parents[2]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_cancel_mid_way_stops_within_a_second_and_leaves_nothing(f16_small: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.gguf"
    job = quantize_job(QuantizeRequest(f16_small, out, "IQ4_NL", threads=2))
    asked: list[float] = []

    def on_progress(p: Progress) -> None:
        if "blk.0.ffn_down" in p.message and not asked:
            asked.append(time.monotonic())
            job.cancel()

    with pytest.raises(Cancelled):
        job.run(on_progress)
    assert asked and time.monotonic() - asked[0] < 1.0
    assert _files(tmp_path) == set()


def test_an_existing_output_is_refused_unless_overwrite(f16_small: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.gguf"
    out.write_bytes(b"precious")
    with pytest.raises(QuantizeError, match="already exists"):
        quantize_file(QuantizeRequest(f16_small, out, "Q8_0"))
    assert out.read_bytes() == b"precious"
    quantize_file(QuantizeRequest(f16_small, out, "Q8_0", overwrite=True))
    assert out.read_bytes()[:4] == b"GGUF"
    assert _files(tmp_path) == {"out.gguf", "out.gguf.card.json"}


def test_the_source_is_never_the_output(f16_small: Path, tmp_path: Path) -> None:
    src = tmp_path / "model.gguf"
    shutil.copy(f16_small, src)
    before = _sha(src)
    for target in (src, tmp_path / "." / "model.gguf"):
        with pytest.raises(QuantizeError, match="replace the source"):
            quantize_file(QuantizeRequest(src, target, "Q8_0", overwrite=True))
    os.link(src, tmp_path / "hardlink.gguf")
    with pytest.raises(QuantizeError, match="replace the source"):
        quantize_file(QuantizeRequest(src, tmp_path / "hardlink.gguf", "Q8_0", overwrite=True))
    assert _sha(src) == before


def test_the_source_is_untouched(f16_small: Path, tmp_path: Path) -> None:
    before, mtime = _sha(f16_small), f16_small.stat().st_mtime_ns
    quantize_file(QuantizeRequest(f16_small, tmp_path / "q.gguf", "Q4_K_M"))
    assert _sha(f16_small) == before and f16_small.stat().st_mtime_ns == mtime


def _tiny_gguf(path: Path, names: tuple[str, str] = ("a.weight", "b.weight")) -> Path:
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_block_count(1)
    for n in names:
        w.add_tensor(n, np.ones((4, 64), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _patched(src: Path, dst: Path, old: bytes, new: bytes, count: int = 1) -> Path:
    data = src.read_bytes()
    assert old in data
    dst.write_bytes(data.replace(old, new, count))
    return dst


@pytest.mark.parametrize(
    "case, message",
    [
        ("truncated", "past the end of the file"),
        ("header-cut", "truncated"),
        ("magic", "wrong magic"),
        ("version", "unsupported GGUF version 7"),
        ("duplicate", "duplicate tensor name"),
        ("unknown-type", "unknown type 99"),
        ("missing", "no such file"),
    ],
)
def test_bad_input_gets_a_clear_message_and_nothing_is_written(
    case: str, message: str, f16_small: Path, tmp_path: Path
) -> None:
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    tiny = _tiny_gguf(src_dir / "tiny.gguf")
    bad = src_dir / "bad.gguf"
    if case == "truncated":
        bad.write_bytes(f16_small.read_bytes()[: f16_small.stat().st_size // 2])
    elif case == "header-cut":
        bad.write_bytes(tiny.read_bytes()[:100])
    elif case == "magic":
        bad.write_bytes(b"GGML" + tiny.read_bytes()[4:])
    elif case == "version":
        bad.write_bytes(b"GGUF" + struct.pack("<I", 7) + tiny.read_bytes()[8:])
    elif case == "duplicate":
        _patched(tiny, bad, b"b.weight", b"a.weight")
    elif case == "unknown-type":
        # the second tensor's type field follows its name, dims count and two dims
        data = bytearray(tiny.read_bytes())
        at = data.index(b"b.weight") + len(b"b.weight") + 4 + 16
        data[at : at + 4] = struct.pack("<I", 99)
        bad.write_bytes(bytes(data))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(QuantizeError, match=message):
        quantize_file(QuantizeRequest(bad, out_dir / "out.gguf", "Q8_0"))
    assert _files(out_dir) == set()


def test_an_unknown_architecture_still_quantizes(tmp_path: Path) -> None:
    src = _patched(_tiny_gguf(tmp_path / "t.gguf"), tmp_path / "u.gguf", b"llama", b"zzzzz", count=2)
    result = quantize_file(QuantizeRequest(src, tmp_path / "q.gguf", "Q8_0"))
    assert result.output.exists()


def test_not_enough_space_says_how_much_is_needed(f16_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quantize_mod, "free_bytes", lambda folder: 1_000_000)
    with pytest.raises(QuantizeError, match=r"needs \d+(\.\d)? MB, only 1\.0 MB is free"):
        quantize_file(QuantizeRequest(f16_small, tmp_path / "q.gguf", "Q8_0"))
    assert _files(tmp_path) == set()


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """A real 40 MB file system, when we may mount one (root); else the test is skipped."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs Linux and root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_is_found_before_starting_and_while_writing(f16_small: Path, small_tmpfs: Path) -> None:
    # 1. the check up front: the F16 output (87 MB) does not fit 40 MB
    with pytest.raises(QuantizeError, match="not enough free space.*needs"):
        quantize_file(QuantizeRequest(f16_small, small_tmpfs / "big.gguf", "F16"))
    assert _files(small_tmpfs) == set()
    # 2. Q2_K (36 MB) fits, but the disk fills while writing (another program takes the
    #    space): ENOSPC, and nothing is left
    out = small_tmpfs / "q.gguf"
    filled: list[Path] = []

    def fill(p: Progress) -> None:
        if not filled and "blk.0" in p.message:
            filler = small_tmpfs / "filler"
            with filler.open("wb") as f:
                try:
                    while True:
                        f.write(bytes(1 << 20))
                        f.flush()
                except OSError:
                    pass
            filled.append(filler)

    with pytest.raises(OSError) as err:
        quantize_file(QuantizeRequest(f16_small, out, "Q2_K", threads=2), report=fill)
    assert err.value.errno == 28  # ENOSPC
    filled[0].unlink()
    assert _files(small_tmpfs) == set()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main(sys.argv[1:]))", *args]


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no file size limit (RLIMIT_FSIZE); "
                    "test_a_failing_write_mid_way_leaves_nothing covers the clean-up there")
def test_a_write_error_leaves_nothing(f16_small: Path, tmp_path: Path) -> None:
    """A real failing write for everyone, no root needed: a file size limit (EFBIG)."""
    code = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (5_000_000, 5_000_000)); "
        "from app.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    out = tmp_path / "q.gguf"
    r = subprocess.run([sys.executable, "-c", code, "quantize", str(f16_small), str(out), "--type", "Q8_0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "File too large" in r.stderr
    assert _files(tmp_path) == set()


def test_a_failing_write_mid_way_leaves_nothing(f16_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fails after a few megabytes (on every system; the real EFBIG above needs a POSIX
    file size limit): the error reaches the caller and no file is left, named or hidden."""
    real_write = AtomicOutput.write

    def failing_write(self: AtomicOutput, data: object) -> None:
        if self._written > 3_000_000:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(self, data)

    monkeypatch.setattr(AtomicOutput, "write", failing_write)
    with pytest.raises(OSError) as err:
        quantize_file(QuantizeRequest(f16_small, tmp_path / "q.gguf", "Q8_0"))
    assert err.value.errno == errno.ENOSPC
    assert _files(tmp_path) == set()


def test_a_killed_run_leaves_nothing(f16_model: Path, f16_small: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.gguf"
    probe = AtomicOutput(tmp_path / "probe.gguf")  # does this system give us unnamed files here?
    unnamed = probe.temp_name is None
    probe.abort()
    proc = subprocess.Popen(_cli("quantize", str(f16_model), str(out), "--type", "IQ4_NL", "--threads", "1"),
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    for line in proc.stderr:  # wait until it is writing tensors
        if "blk.1." in line or time.monotonic() > deadline:
            break
    proc.kill()  # SIGKILL on POSIX, TerminateProcess on Windows: no clean-up code runs
    proc.wait(timeout=10)
    proc.stderr.close()
    del proc  # Windows: our handle would keep the dead process known to the system, as if running
    assert "q.gguf" not in _files(tmp_path)
    if unnamed:
        # Linux: the output was an unnamed file, which the kernel dropped with the process
        assert _files(tmp_path) == set()
    else:
        # macOS, Windows: a hidden partial may remain; the next output written there removes it
        assert all(n.startswith(".q.gguf.") and n.endswith(".partial") for n in _files(tmp_path))
        quantize_file(QuantizeRequest(f16_small, tmp_path / "next.gguf", "Q8_0"))
        assert _files(tmp_path) == {"next.gguf", "next.gguf.card.json"}


def test_cancel_token_from_another_thread(f16_small: Path, tmp_path: Path) -> None:
    """The UI cancels from its own thread while the job runs in a worker.

    The job pauses in its first progress report until the other thread has cancelled, so the
    test does not depend on how fast the kernels are (a fixed sleep did, and they got faster).
    """
    cancel = CancelToken()
    errors: list[BaseException] = []
    started, cancelled = threading.Event(), threading.Event()

    def report(_p: object) -> None:
        started.set()
        cancelled.wait(5)

    def work() -> None:
        try:
            quantize_file(QuantizeRequest(f16_small, tmp_path / "q.gguf", "IQ4_XS", threads=1), report, cancel)
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    assert started.wait(10)
    cancel.cancel()
    cancelled.set()
    t.join(5)
    assert not t.is_alive()
    assert errors and isinstance(errors[0], Cancelled)
    assert _files(tmp_path) == set()


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_weights_are_named_and_nothing_is_written(bad_value: float, tmp_path: Path) -> None:
    """A weight that is not a number stops the run with the tensor and row named (as llama-quantize
    refuses such rows too), the output is never created, and the original error is what the user
    sees (not a complaint about closing the source's memory map, which the rows were views of)."""
    src = tmp_path / "nan.gguf"
    w = gguf.GGUFWriter(str(src), arch="llama")
    w.add_block_count(1)
    good = np.ones((4, 64), dtype=np.float16)
    bad = good.copy()
    bad[2, 17] = bad_value
    w.add_tensor("a.weight", good)
    w.add_tensor("b.weight", bad)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(QuantizeError, match=r"b\.weight.*row 2") as caught:
        quantize_file(QuantizeRequest(src, out_dir / "q.gguf", "Q8_0"))
    assert "NaN" in str(caught.value) or "Inf" in str(caught.value)
    assert _files(out_dir) == set()
