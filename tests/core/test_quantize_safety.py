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

from quantdesk.core.jobs import Cancelled, CancelToken, Progress
from quantdesk.core.quantize import run as quantize_mod
from quantdesk.core.quantize.run import QuantizeError, QuantizeRequest, quantize_file, quantize_job
from quantdesk.core.quantize.writer import AtomicOutput

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


def test_the_imatrix_is_never_the_output(f16_small: Path, tmp_path: Path) -> None:
    """--overwrite with the imatrix's name replaced it with the model."""
    import struct as st

    entry = b"blk.0.attn_q.weight"
    im = tmp_path / "m.imatrix"
    im.write_bytes(
        st.pack("<i", 1)
        + st.pack("<i", len(entry))
        + entry
        + st.pack("<ii", 1, 576)
        + np.ones(576, dtype="<f4").tobytes()
    )
    before = _sha(im)
    with pytest.raises(QuantizeError, match="would replace the imatrix"):
        quantize_file(QuantizeRequest(f16_small, im, "Q4_K_M", imatrix=im, overwrite=True))
    assert _sha(im) == before
    # nor the card written beside the output (OUT.card.json), of the imatrix or of the source
    im = im.rename(tmp_path / "m.card.json")
    with pytest.raises(QuantizeError, match="card written beside the output would replace the imatrix"):
        quantize_file(QuantizeRequest(f16_small, tmp_path / "m", "Q4_K_M", imatrix=im))
    assert _sha(im) == before
    src = tmp_path / "model.gguf.card.json"
    shutil.copy(f16_small, src)
    with pytest.raises(QuantizeError, match="card written beside the output would replace the source"):
        quantize_file(QuantizeRequest(src, tmp_path / "model.gguf", "Q8_0"))
    assert _sha(src) == _sha(f16_small) and not (tmp_path / "model.gguf").exists()


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
        ("duplicate-key", "the key 'x.one' appears twice"),
        ("overlapping-tensors", "tensor 'b.weight' is at offset 0, expected 512"),
        ("long-name", r"is too long \(at most 63 bytes\)"),
        ("big-endian", "a big-endian GGUF file"),
        ("alignment-2^32", r"general.alignment 4294967296 \(uint64\); llama.cpp wants a uint32 power of two"),
        ("alignment-a-bool", r"general.alignment True \(bool\)"),
        ("no-tensors-alignment-2^31", "holds no tensors, so there is nothing to quantize"),
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
    elif case == "duplicate-key":  # which of the two counts? llama.cpp refuses the file too
        w = gguf.GGUFWriter(str(src_dir / "keys.gguf"), arch="llama")
        w.add_uint32("x.one", 1)
        w.add_uint32("x.two", 2)
        w.add_tensor("a.weight", np.ones((4, 64), dtype=np.float16))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        _patched(src_dir / "keys.gguf", bad, b"x.two", b"x.one")
    elif case == "big-endian":  # was "unsupported GGUF version 50331648"
        bad.write_bytes(b"GGUF" + struct.pack(">I", 3) + tiny.read_bytes()[8:])
    elif case == "long-name":  # ggml's names hold 63 bytes: llama.cpp cannot load the file
        _tiny_gguf(bad, names=("a.weight", "blk.0." + "x" * 60 + ".weight"))
    elif case == "overlapping-tensors":  # b.weight's offset (after its type) pointed at a.weight's data
        data = bytearray(tiny.read_bytes())
        at = data.index(b"b.weight") + len(b"b.weight") + 4 + 16 + 4
        data[at : at + 8] = struct.pack("<Q", 0)
        bad.write_bytes(bytes(data))
    elif case.startswith(("alignment-", "no-tensors-")):
        # a tiny file: the quantizer tried to allocate gigabytes to pad a header to that alignment
        w = gguf.GGUFWriter(str(bad), arch="llama")
        if case == "alignment-a-bool":
            w.add_bool("general.alignment", True)
        else:
            vtype = gguf.GGUFValueType.UINT64 if case == "alignment-2^32" else gguf.GGUFValueType.UINT32
            w.add_key_value("general.alignment", 1 << (32 if case == "alignment-2^32" else 31), vtype)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(QuantizeError, match=message):
        quantize_file(QuantizeRequest(bad, out_dir / "out.gguf", "Q8_0"))
    assert _files(out_dir) == set()


def test_an_unknown_architecture_still_quantizes(tmp_path: Path) -> None:
    src = _patched(_tiny_gguf(tmp_path / "t.gguf"), tmp_path / "u.gguf", b"llama", b"zzzzz", count=2)
    result = quantize_file(QuantizeRequest(src, tmp_path / "q.gguf", "Q8_0"))
    assert result.output.exists()


def test_not_enough_space_says_how_much_is_needed(
    f16_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    return [sys.executable, "-c", "import sys; from quantdesk.cli import main; sys.exit(main(sys.argv[1:]))", *args]


@pytest.mark.skipif(
    sys.platform == "win32",
    reason="Windows has no file size limit (RLIMIT_FSIZE); "
    "test_a_failing_write_mid_way_leaves_nothing covers the clean-up there",
)
def test_a_write_error_leaves_nothing(f16_small: Path, tmp_path: Path) -> None:
    """A real failing write for everyone, no root needed: a file size limit (EFBIG)."""
    code = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (5_000_000, 5_000_000)); "
        "from quantdesk.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    out = tmp_path / "q.gguf"
    r = subprocess.run(
        [sys.executable, "-c", code, "quantize", str(f16_small), str(out), "--type", "Q8_0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "File too large" in r.stderr and "Traceback" not in r.stderr  # one line, not a traceback
    assert _files(tmp_path) == set()


def test_a_failing_write_mid_way_leaves_nothing(
    f16_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    proc = subprocess.Popen(
        _cli("quantize", str(f16_model), str(out), "--type", "IQ4_NL", "--threads", "1"),
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
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


def _llama_gguf(path: Path, tensors: dict[str, np.ndarray], **kv: object) -> Path:
    """A tiny llama GGUF llama.cpp itself can read (it needs the hyperparameters)."""
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_context_length(128)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_feed_forward_length(128)
    w.add_layer_norm_rms_eps(1e-5)
    for key, value in kv.items():
        w.add_string(key, str(value))
    for name, a in tensors.items():
        w.add_tensor(name, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("level, ftype", [("Q8_0", 7), ("Q4_0", 2), ("Q4_K_M", 15)])
def test_odd_shapes_get_the_bytes_llama_cpp_writes(level: str, ftype: int, tmp_path: Path) -> None:
    """Rows of 48 fit no block: llama.cpp falls back to F16 even from a 32-block level (we refused);
    a [256, 1] tensor is 1-D to ggml, so it is not quantized and is written with one dimension."""
    from bench.llama_quantize_ref import llama_quantize

    rng = np.random.default_rng(1)
    src = _llama_gguf(
        tmp_path / "odd.gguf",
        {
            "token_embd.weight": rng.standard_normal((16, 64)).astype(np.float16),
            "blk.0.attn_q.weight": rng.standard_normal((4, 48)).astype(np.float16),
            "blk.0.attn_v.weight": rng.standard_normal((8, 160)).astype(np.float16),
            "blk.0.ffn_up.weight": rng.standard_normal((1, 256)).astype(np.float16),
            "blk.0.ffn_gate_exps.weight": rng.standard_normal((1, 4, 256)).astype(np.float16),
        },
    )
    ours, ref = tmp_path / "ours.gguf", tmp_path / "ref.gguf"
    llama_quantize(str(src), str(ref), ftype, nthread=1)
    quantize_file(QuantizeRequest(src, ours, level, threads=1))
    assert ours.read_bytes() == ref.read_bytes()


def _one_tensor(tmp_path: Path, a: np.ndarray, name: str = "blk.0.attn_q.weight") -> Path:
    tensors = {name: a}
    if name != "blk.0.attn_q.weight":
        tensors["blk.0.attn_q.weight"] = np.ones((8, 256), dtype=np.float32)
    return _llama_gguf(tmp_path / "src.gguf", tensors)


def _bf16(a: np.ndarray) -> np.ndarray:
    return (a.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)


@pytest.mark.parametrize(
    "case, level, message",
    [
        ("nan-in-a-copied-norm", "Q8_0", r"blk\.0\.attn_norm\.weight: row 0 holds NaN or Inf"),
        ("inf-to-f16", "F16", r"row 1 holds NaN or Inf"),
        ("bf16-nan-to-bf16", "BF16", r"row 3 holds NaN or Inf"),
        ("too-large-for-f16", "F16", r"row 0 holds values too large for F16"),
        ("too-large-for-q8_0-scales", "Q8_0", r"row 0 holds values too large for Q8_0"),
    ],
)
def test_nan_inf_or_overflow_is_refused_where_llama_cpp_refuses(
    case: str, level: str, message: str, tmp_path: Path
) -> None:
    """llama-quantize validates every tensor it reads and makes (ggml_validate_row_data): a NaN in
    a tensor that is only copied, or a value that overflows F16 or a block's fp16 scale, stops it.
    We wrote such files without a word."""
    from bench.llama_quantize_ref import llama_quantize

    a = np.ones((8, 256), dtype=np.float32)
    if case == "nan-in-a-copied-norm":
        norm = np.ones(256, dtype=np.float32)
        norm[5] = np.nan
        src = _one_tensor(tmp_path, norm, "blk.0.attn_norm.weight")
    elif case == "inf-to-f16":
        a[1, 2] = np.inf
        src = _one_tensor(tmp_path, a)
    elif case == "bf16-nan-to-bf16":
        bits = _bf16(a)
        bits[3, 9] = 0x7FC0
        w = gguf.GGUFWriter(str(tmp_path / "src.gguf"), arch="llama")
        w.add_block_count(1)
        w.add_tensor(
            "blk.0.attn_q.weight", bits.view(np.uint8).reshape(8, 512), raw_dtype=gguf.GGMLQuantizationType.BF16
        )
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        src = tmp_path / "src.gguf"
    else:
        a[0, 0] = 1e6 if level == "F16" else 1e7  # 1e7 / 127 overflows Q8_0's fp16 block scale
        src = _one_tensor(tmp_path, a)
    before = _sha(src)
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    if case != "bf16-nan-to-bf16":  # that file lacks the hyperparameters llama.cpp needs to load it
        with pytest.raises(RuntimeError):
            llama_quantize(str(src), str(ref_dir / "ref.gguf"), gguf.LlamaFileType[f"MOSTLY_{level}"].value, nthread=1)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(QuantizeError, match=message):
        quantize_file(QuantizeRequest(src, out_dir / "q.gguf", level))
    assert _files(out_dir) == set() and _sha(src) == before


def test_an_empty_tensor_is_refused(tmp_path: Path) -> None:
    """llama.cpp writes a [256, 0] tensor as [256] with no data: a file that does not load."""
    src = _one_tensor(tmp_path, np.zeros((0, 256), dtype=np.float32), "z.weight")
    with pytest.raises(QuantizeError, match=r"z\.weight: the tensor is empty \(shape \[256, 0\]\)"):
        quantize_file(QuantizeRequest(src, tmp_path / "q.gguf", "Q8_0"))
    assert not (tmp_path / "q.gguf").exists()


@pytest.mark.parametrize("value", ["x", "1.5e30", "-1"])
def test_a_count_that_is_not_a_number_is_named(value: str, tmp_path: Path) -> None:
    """A string (or a float, or a negative number) where the layer count belongs was a ValueError traceback."""
    w = gguf.GGUFWriter(str(tmp_path / "src.gguf"), arch="llama")
    if value == "x":
        w.add_string("llama.block_count", value)
    elif value == "-1":
        w.add_int32("llama.block_count", -1)
    else:
        w.add_float32("llama.block_count", float(value))
    w.add_tensor("blk.0.attn_q.weight", np.ones((8, 256), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(QuantizeError, match=r"the metadata key llama\.block_count is .*, not a count"):
        quantize_file(QuantizeRequest(tmp_path / "src.gguf", tmp_path / "q.gguf", "Q4_K_M"))
    assert not (tmp_path / "q.gguf").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="only Linux lets a file name hold bytes that are not UTF-8")
def test_an_imatrix_whose_name_is_not_utf8(f16_small: Path, tmp_path: Path) -> None:
    """Its name goes into quantize.imatrix.file; the undecodable byte was a UnicodeEncodeError."""
    import struct as st

    name = os.fsdecode(b"im\xff.dat")
    values = np.ones(576, dtype="<f4")
    entry = b"blk.0.attn_q.weight"
    (tmp_path / name).write_bytes(
        st.pack("<i", 1) + st.pack("<i", len(entry)) + entry + st.pack("<ii", 1, 576) + values.tobytes()
    )
    out = tmp_path / "q.gguf"
    quantize_file(QuantizeRequest(f16_small, out, "Q4_K_M", imatrix=tmp_path / name))
    from quantdesk.core.gguf.index import read_index

    assert read_index(out).get("quantize.imatrix.file").endswith("im?.dat")


@pytest.mark.skipif(sys.platform == "win32", reason="Windows limits the whole path, not each name")
def test_long_output_names(tmp_path: Path) -> None:
    """A name that fits (240 bytes) failed on the hidden temporary name, which added ~25 bytes;
    one that cannot fit (300 bytes) escaped as an OSError from checking whether it exists."""
    src = _tiny_gguf(tmp_path / "t.gguf")
    quantize_file(QuantizeRequest(src, tmp_path / ("a" * 235 + ".gguf"), "Q8_0"))
    with pytest.raises(QuantizeError, match="File name too long"):
        quantize_file(QuantizeRequest(src, tmp_path / ("b" * 300 + ".gguf"), "Q8_0"))
    assert {n[:3] for n in _files(tmp_path) if n != "t.gguf"} == {"aaa"}


def test_an_unusable_data_folder_does_not_stop_a_quantize(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The source's hash is remembered in the data folder; when that folder cannot be made (a file
    of its name, a read-only disk) the run failed with "cannot read the source to hash it"."""
    home = tmp_path / "home"
    home.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("QUANTDESK_HOME", str(home))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = quantize_file(QuantizeRequest(_tiny_gguf(tmp_path / "t.gguf"), out_dir / "q.gguf", "Q8_0"))
    assert result.output.exists()


HOSTILE_NAME = "blk.0.\x1b[2J\nq.weight"  # clears the screen, then a second line


def test_tensor_names_from_the_file_are_escaped_in_messages(tmp_path: Path) -> None:
    """A tensor name is the file's text: printed raw, a newline split the one-line message and
    ESC[2J cleared the user's terminal. Every message shows it escaped (quantdesk.core.errors.printable)."""
    bad = np.ones((8, 256), dtype=np.float32)
    bad[1, 3] = np.nan
    src = _llama_gguf(tmp_path / "src.gguf", {HOSTILE_NAME: bad})
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(QuantizeError) as info:
        quantize_file(QuantizeRequest(src, out_dir / "q.gguf", "Q8_0"))
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message
    assert message.startswith("blk.0.\\x1b[2J\\nq.weight: row 1 holds NaN or Inf values")
    empty = _llama_gguf(tmp_path / "empty.gguf", {HOSTILE_NAME: np.zeros((0, 256), dtype=np.float32)})
    with pytest.raises(QuantizeError, match=r"^blk\.0\.\\x1b\[2J\\nq\.weight: the tensor is empty"):
        quantize_file(QuantizeRequest(empty, out_dir / "q.gguf", "Q8_0"))
    labels: list[str] = []
    quantize_file(
        QuantizeRequest(
            _llama_gguf(tmp_path / "ok.gguf", {HOSTILE_NAME: np.ones((8, 256), np.float32)}),
            out_dir / "ok.gguf",
            "Q8_0",
        ),
        lambda p: labels.append(p.message),
    )
    assert labels and not any("\x1b" in m or "\n" in m for m in labels)  # the progress line too


def test_a_source_truncated_while_being_quantized_is_named(f16_small: Path, tmp_path: Path) -> None:
    """Another program truncating the source mid-run killed the process with SIGBUS (the source was
    memory-mapped, and Python cannot catch that signal). Run in a child process, so that a regression
    cannot take the test session down with it."""
    src = tmp_path / "model.gguf"
    shutil.copy(f16_small, src)
    script = f"""
import os, sys
from quantdesk.core.quantize.run import QuantizeError, QuantizeRequest, quantize_file
src = {str(src)!r}
cut = []
def report(p):
    if "blk.0" in p.message and not cut:
        os.truncate(src, os.path.getsize(src) // 2)  # as another program would
        cut.append(1)
try:
    quantize_file(QuantizeRequest(src, {str(tmp_path / "q.gguf")!r}, "Q8_0", threads=1), report)
except QuantizeError as e:
    print("refused:", e)
    sys.exit(3)
"""
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, (r.returncode, r.stderr[-2000:])
    assert "refused: model.gguf: the file got shorter while it was being read" in r.stdout
    assert _files(tmp_path) == {"model.gguf"}
