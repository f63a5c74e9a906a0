"""Both imatrix formats read to the values llama-quantize uses (sum / count per column)."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from quantdesk.core.quantize.imatrix import ImatrixError, load_imatrix


def _write_dat(path: Path, entries: dict[str, tuple[int, np.ndarray]], chunks: int = 0, dataset: str = "") -> None:
    out = struct.pack("<i", len(entries))
    for name, (ncall, sums) in entries.items():
        b = name.encode()
        out += struct.pack("<i", len(b)) + b + struct.pack("<ii", ncall, sums.size) + sums.astype("<f4").tobytes()
    if chunks:
        d = dataset.encode()
        out += struct.pack("<ii", chunks, len(d)) + d
    path.write_bytes(out)


def test_legacy_dat(tmp_path: Path) -> None:
    sums = np.array([3.0, 6.0, 9.0, 1.0], dtype=np.float32)
    path = tmp_path / "old.dat"
    _write_dat(path, {"blk.0.attn_q.weight": (3, sums), "blk.0.ffn_up.weight": (0, sums)}, 40, "wiki.train.raw")
    im = load_imatrix(path)
    assert im.format == "dat" and im.chunk_count == 40 and im.datasets == ["wiki.train.raw"]
    np.testing.assert_array_equal(im.values["blk.0.attn_q.weight"], sums / np.float32(3))
    np.testing.assert_array_equal(im.values["blk.0.ffn_up.weight"], sums)  # ncall 0: taken as is
    _write_dat(path, {"x.weight": (1, sums)})  # the trailer is optional
    assert load_imatrix(path).chunk_count == 0


def test_gguf_with_experts_and_an_unused_expert(tmp_path: Path) -> None:
    path = tmp_path / "new.imatrix.gguf"
    w = gguf.GGUFWriter(str(path), arch="")
    w.add_key_value("general.type", "imatrix", gguf.GGUFValueType.STRING)
    w.add_key_value("imatrix.chunk_count", 5, gguf.GGUFValueType.UINT32)
    w.add_key_value("imatrix.datasets", ["a.txt", "b.txt"], gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.STRING)
    sums = np.arange(1, 9, dtype=np.float32).reshape(2, 4)  # 2 experts x 4 columns
    w.add_tensor("blk.0.ffn_down_exps.weight.in_sum2", sums)
    w.add_tensor("blk.0.ffn_down_exps.weight.counts", np.array([[4.0], [0.0]], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    im = load_imatrix(path)
    assert im.format == "gguf" and im.chunk_count == 5 and im.datasets == ["a.txt", "b.txt"]
    np.testing.assert_array_equal(im.values["blk.0.ffn_down_exps.weight"], [0.25, 0.5, 0.75, 1.0, 1, 1, 1, 1])


def test_bad_files_get_clear_messages(tmp_path: Path) -> None:
    path = tmp_path / "junk.dat"
    path.write_bytes(b"\x01\x00\x00\x00\xff\xff")
    with pytest.raises(ImatrixError, match="truncated"):
        load_imatrix(path)
    with pytest.raises(ImatrixError, match="cannot read"):
        load_imatrix(tmp_path / "missing.dat")
    _write_dat(path, {"x.weight": (1, np.array([1.0, np.inf], dtype=np.float32))})
    with pytest.raises(ImatrixError, match="not finite"):
        load_imatrix(path)
    im_path = tmp_path / "m.dat"
    _write_dat(im_path, {"blk.0.attn_q.weight": (1, np.ones(8, dtype=np.float32))})
    with pytest.raises(ImatrixError, match="another model"):
        load_imatrix(im_path).for_tensor("blk.0.attn_q.weight", 576)
    assert load_imatrix(im_path).for_tensor("token_embd.weight", 576) is None


def _mapped(path: Path) -> bool:
    return str(path.resolve()) in Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads this process's memory map from /proc")
def test_a_rejected_gguf_imatrix_is_not_left_mapped(tmp_path: Path) -> None:
    """Windows cannot replace or delete a memory-mapped file: after an error the user must be able to
    fix the file in place, so the reader's mapping may not outlive the call (checked here on Linux)."""
    path = tmp_path / "bad.imatrix.gguf"
    w = gguf.GGUFWriter(str(path), arch="")
    w.add_tensor("blk.0.attn_q.weight.in_sum2", np.ones(4, dtype=np.float32))  # no .counts tensor
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ImatrixError, match="no matching .counts") as info:
        load_imatrix(path)
    assert not _mapped(path), "the error (still held, as the UI holds it to show it) keeps the file mapped"
    assert info.value is not None


def test_a_gguf_chunk_count_that_is_not_a_number_is_unknown(tmp_path: Path) -> None:
    """A string in imatrix.chunk_count was a ValueError traceback from `quantize --imatrix`."""
    path = tmp_path / "odd.imatrix.gguf"
    w = gguf.GGUFWriter(str(path), arch="")
    w.add_key_value("imatrix.chunk_count", "lots", gguf.GGUFValueType.STRING)
    w.add_tensor("blk.0.attn_q.weight.in_sum2", np.ones((1, 4), dtype=np.float32))
    w.add_tensor("blk.0.attn_q.weight.counts", np.array([[2.0]], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    im = load_imatrix(path)
    assert im.chunk_count == 0
    np.testing.assert_array_equal(im.values["blk.0.attn_q.weight"], [0.5] * 4)


def test_entry_names_from_the_file_are_escaped_in_messages(tmp_path: Path) -> None:
    """An entry's name is the file's text: a newline split the one-line message, ESC[2J cleared the terminal."""
    path = tmp_path / "evil.dat"
    name = "blk.0.\x1b[2J\nattn_q.weight"
    _write_dat(path, {name: (1, np.ones(8, dtype=np.float32))})
    with pytest.raises(ImatrixError) as info:
        load_imatrix(path).for_tensor(name, 576)
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)
    assert "blk.0.\\x1b[2J\\nattn_q.weight has 8 values" in str(info.value)
    b = name.encode()
    path.write_bytes(struct.pack("<i", 1) + struct.pack("<i", len(b)) + b + struct.pack("<ii", 1, 0))
    with pytest.raises(ImatrixError, match=r"blk\.0\.\\x1b\[2J\\nattn_q\.weight has no values"):
        load_imatrix(path)
    path.write_bytes(struct.pack("<i", 1) + struct.pack("<i", len(b)) + b + b"\x01")
    with pytest.raises(ImatrixError) as info:
        load_imatrix(path)
    assert "\n" not in str(info.value) and "while reading blk.0.\\x1b[2J\\nattn_q.weight" in str(info.value)


def _gguf_imatrix(path: Path, datasets: list[str], chunk_count: int, chunk_type: gguf.GGUFValueType) -> Path:
    w = gguf.GGUFWriter(str(path), arch="")
    w.add_key_value("general.type", "imatrix", gguf.GGUFValueType.STRING)
    w.add_key_value("imatrix.chunk_count", chunk_count, chunk_type)
    w.add_key_value("imatrix.datasets", datasets, gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.STRING)
    w.add_tensor("blk.0.attn_q.weight.in_sum2", np.full((1, 576), 3.0, dtype=np.float32))
    w.add_tensor("blk.0.attn_q.weight.counts", np.array([[2.0]], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_a_chunk_count_too_large_for_the_output_is_unknown(f16_small: Path, tmp_path: Path) -> None:
    """A UINT64 imatrix.chunk_count of 2^32 was a struct.error when the quantizer copied it into
    quantize.imatrix.chunks_count, a uint32; it is left out, like a count that is not a number."""
    from quantdesk.core.gguf.index import read_index
    from quantdesk.core.quantize.run import QuantizeRequest, quantize_file

    path = _gguf_imatrix(tmp_path / "big.imatrix.gguf", ["a.txt"], 1 << 32, gguf.GGUFValueType.UINT64)
    assert load_imatrix(path).chunk_count == 0
    out = tmp_path / "q.gguf"
    quantize_file(QuantizeRequest(f16_small, out, "Q4_K_M", imatrix=path))
    fields = read_index(out).fields
    assert "quantize.imatrix.chunks_count" not in fields and fields["quantize.imatrix.dataset"].value == "a.txt"
    path = _gguf_imatrix(tmp_path / "ok.imatrix.gguf", ["a.txt"], (1 << 32) - 1, gguf.GGUFValueType.UINT64)
    assert load_imatrix(path).chunk_count == (1 << 32) - 1


def test_a_gguf_imatrix_with_200000_dataset_names_reads_fast(tmp_path: Path) -> None:
    """gguf's reader took ~27 µs per array item: 5 s for these names, minutes for a large imatrix."""
    import time

    names = [f"calibration-{i:06d}.txt" for i in range(200_000)]
    path = _gguf_imatrix(tmp_path / "many.imatrix.gguf", names, 7, gguf.GGUFValueType.UINT32)
    started = time.perf_counter()
    im = load_imatrix(path)
    took = time.perf_counter() - started
    assert im.datasets == names and im.chunk_count == 7
    np.testing.assert_array_equal(im.values["blk.0.attn_q.weight"], [1.5] * 576)
    assert took < 1.0, f"{took:.2f} s"
