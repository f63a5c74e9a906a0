"""Our quantized files are llama-quantize's files, byte for byte, and llama.cpp runs them.

Every level is quantized from the same F16 model by us and by llama_model_quantize (the
llama-quantize library call, from the llama-cpp-python wheel) and the two files compared
whole: header (all metadata, tensor names, types, shapes, offsets) and every tensor's bytes.
No key needs an exception: even quantize.imatrix.file matches, because both sides are given
the same file name. The plan is also checked against the reference's header first, so a
wrong plan is reported as a wrong plan, not as different bytes.

The level matrix runs on the starter cut to 2 layers (real weights, real tokenizer; the whole
model takes llama.cpp 30 s for IQ4_NL alone); Q4_K_M and the requantize case run on the whole
model, and test_quant_plan.py checks the plans of every level on the whole model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest

from quantdesk.core.gguf.index import read_index
from quantdesk.core.quantize.imatrix import load_imatrix
from quantdesk.core.quantize.plan import FILE_TYPES, PlanOptions, make_plan, parse_ggml_type
from quantdesk.core.quantize.run import QuantizeRequest, imatrix_kv, quantize_file

LEVELS = list(FILE_TYPES)


def _explain_difference(ours: Path, ref: Path) -> str:
    a, b = read_index(ours), read_index(ref)
    lines = []
    ka, kb = list(a.fields), list(b.fields)
    if ka != kb:
        lines.append(f"metadata keys differ: ours {ka[-5:]} vs llama {kb[-5:]}")
    for key in ka:
        if key in b.fields and a.fields[key].value != b.fields[key].value:
            lines.append(f"metadata {key}: ours {a.fields[key].value!r} vs llama {b.fields[key].value!r}")
    ta = {t.name: t for t in a.tensors}
    with ours.open("rb") as fa, ref.open("rb") as fb:
        for t in b.tensors:
            mine = ta.get(t.name)
            if mine is None:
                lines.append(f"{t.name}: missing in ours")
                continue
            if (mine.type, mine.shape) != (t.type, t.shape):
                lines.append(f"{t.name}: ours {mine.type.name}{mine.shape} vs llama {t.type.name}{t.shape}")
                continue
            fa.seek(mine.offset)
            fb.seek(t.offset)
            if fa.read(mine.nbytes) != fb.read(t.nbytes):
                lines.append(f"{t.name} ({t.type.name}): bytes differ")
    return "; ".join(lines[:8]) or "headers differ in layout"


def assert_same_file(ours: Path, ref: Path) -> None:
    if ours.stat().st_size == ref.stat().st_size and ours.read_bytes() == ref.read_bytes():
        return
    pytest.fail(f"{ours.name} differs from llama-quantize: {_explain_difference(ours, ref)}")


def assert_plan_matches(src: Path, ref: Path, level: str, opts: PlanOptions) -> None:
    plan = make_plan(read_index(src), level, opts)
    theirs = [(t.name, t.type.name, t.shape) for t in read_index(ref).tensors]
    ours = [(t.name, t.dst_type.name, t.shape) for t in plan.tensors]
    diff = [(o, r) for o, r in zip(ours, theirs, strict=False) if o != r]
    assert len(ours) == len(theirs) and not diff, f"plan differs from llama.cpp's: {diff[:5]}"


def assert_generates(path: Path) -> None:
    """llama.cpp loads the file and writes a few tokens with it."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=32, n_threads=2, verbose=False, seed=0)
    try:
        out = llm("The capital of France is", max_tokens=2, temperature=0.0)
        assert out["usage"]["completion_tokens"] >= 1
    finally:
        llm.close()


@pytest.mark.parametrize("level", LEVELS)
def test_every_level_is_byte_identical_to_llama_quantize(
    level: str, f16_small: Path, llama_reference: Callable[..., Path], tmp_path: Path
) -> None:
    ft = FILE_TYPES[level]
    ref = llama_reference(f16_small, level, ft.ftype)
    assert_plan_matches(f16_small, ref, level, PlanOptions())
    out = tmp_path / f"ours-{level}.gguf"
    result = quantize_file(QuantizeRequest(f16_small, out, level, threads=2))
    assert result.output_bytes == out.stat().st_size
    assert_same_file(out, ref)
    assert_generates(out)


def test_the_whole_model_at_q4_k_m_is_byte_identical(
    f16_model: Path, llama_reference: Callable[..., Path], tmp_path: Path
) -> None:
    ref = llama_reference(f16_model, "Q4_K_M", FILE_TYPES["Q4_K_M"].ftype)
    out = tmp_path / "ours-full-Q4_K_M.gguf"
    quantize_file(QuantizeRequest(f16_model, out, "Q4_K_M", threads=2))
    assert_same_file(out, ref)
    assert_generates(out)


def _write_imatrix(path: Path, f16_model: Path, seed: int = 7) -> dict[str, np.ndarray]:
    """A small synthetic importance matrix in llama-imatrix's GGUF format; returns sums/count."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), arch="")
    w.add_key_value("general.type", "imatrix", gguf.GGUFValueType.STRING)
    w.add_key_value("imatrix.datasets", ["synthetic.txt"], gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.STRING)
    w.add_key_value("imatrix.chunk_count", 12, gguf.GGUFValueType.UINT32)
    w.add_key_value("imatrix.chunk_size", 512, gguf.GGUFValueType.UINT32)
    values: dict[str, np.ndarray] = {}
    for t in read_index(f16_model).tensors:
        if len(t.shape) < 2 or not t.name.startswith("blk."):
            continue
        sums = (rng.gamma(0.6, 40.0, size=(1, t.shape[0])) + 1e-3).astype(np.float32)
        count = np.float32(rng.integers(100, 6000))
        w.add_tensor(t.name + ".in_sum2", sums)
        w.add_tensor(t.name + ".counts", np.array([[count]], dtype=np.float32))
        values[t.name] = (sums[0] / count).astype(np.float32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return values


@pytest.fixture(scope="module")
def imatrix_file(f16_small: Path, quant_workdir: Path) -> tuple[Path, dict[str, np.ndarray]]:
    path = quant_workdir / "synthetic.imatrix.gguf"
    values = _write_imatrix(path, f16_small)
    return path, values


IMATRIX_LEVELS = ["Q2_K", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K_M", "Q5_K_S", "Q6_K", "IQ4_NL", "IQ4_XS"]


@pytest.mark.parametrize("level", IMATRIX_LEVELS)
def test_with_an_imatrix_the_bytes_are_llama_quantizes(
    level: str,
    f16_small: Path,
    imatrix_file: tuple[Path, dict[str, np.ndarray]],
    llama_reference: Callable[..., Path],
    tmp_path: Path,
) -> None:
    path, values = imatrix_file
    im = load_imatrix(path)
    assert set(im.values) == set(values)
    for name, v in values.items():  # our reader computes what llama-quantize computes
        np.testing.assert_array_equal(im.values[name], v)
    kv = [(k, v) for k, v, _ in imatrix_kv(im, str(path))]
    ft = FILE_TYPES[level]
    ref = llama_reference(f16_small, f"{level}-imatrix", ft.ftype, imatrix=values, imatrix_kv=kv)
    assert_plan_matches(f16_small, ref, level, PlanOptions(has_imatrix=True))
    out = tmp_path / f"ours-{level}-imatrix.gguf"
    quantize_file(QuantizeRequest(f16_small, out, level, threads=2, imatrix=path))
    assert_same_file(out, ref)


T = gguf.GGMLQuantizationType

OPTION_CASES = {
    # --pure Q2_K with an imatrix: the Q2_K kernel on every ffn_down (the other rows fall back)
    "pure-q2k-imatrix": dict(level="Q2_K", pure=True, imatrix=True),
    "tensor-type": dict(level="Q4_K_M", tensor_types=["attn_v=q8_0", r"blk\.1[0-9]\.ffn_down=q5_k", "ffn_up=iq4_nl"]),
    "output-and-embedding-types": dict(level="Q5_K_M", token_embedding_type="q4_0", output_tensor_type="q6_k"),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_switches_match_llama_quantize(
    case: str,
    f16_small: Path,
    imatrix_file: tuple[Path, dict[str, np.ndarray]],
    llama_reference: Callable[..., Path],
    tmp_path: Path,
) -> None:
    c = dict(OPTION_CASES[case])
    level = c.pop("level")
    use_imatrix = c.pop("imatrix", False)
    ref_opts: dict[str, object] = {}
    req_opts: dict[str, object] = {}
    if c.get("pure"):
        ref_opts["pure"] = req_opts["pure"] = True
    if c.get("tensor_types"):
        req_opts["tensor_types"] = c["tensor_types"]
        ref_opts["tensor_types"] = [(s.split("=")[0], int(parse_ggml_type(s.split("=")[1]))) for s in c["tensor_types"]]
    for key in ("output_tensor_type", "token_embedding_type"):
        if c.get(key):
            req_opts[key] = c[key]
            ref_opts[key] = int(parse_ggml_type(c[key]))
    if use_imatrix:
        path, values = imatrix_file
        req_opts["imatrix"] = path
        ref_opts["imatrix"] = values
        ref_opts["imatrix_kv"] = [(k, v) for k, v, _ in imatrix_kv(load_imatrix(path), str(path))]
    ref = llama_reference(f16_small, case, FILE_TYPES[level].ftype, **ref_opts)
    out = tmp_path / f"ours-{case}.gguf"
    quantize_file(QuantizeRequest(f16_small, out, level, threads=2, **req_opts))  # type: ignore[arg-type]
    assert_same_file(out, ref)


def test_requantizing_the_starter_matches_llama_quantize(
    starter_model: Path, llama_reference: Callable[..., Path], tmp_path: Path
) -> None:
    """--allow-requantize: the Q4_1/Q8_0 starter dequantized to F16 exactly as llama.cpp does."""
    ref = llama_reference(starter_model, "requant-f16", FILE_TYPES["F16"].ftype, allow_requantize=True)
    out = tmp_path / "ours-requant-f16.gguf"
    quantize_file(QuantizeRequest(starter_model, out, "F16", threads=2, allow_requantize=True))
    assert_same_file(out, ref)


@pytest.mark.parametrize(
    "source_type, level", [("BF16", "Q4_K_M"), ("BF16", "F16"), ("F32", "Q5_K_S"), ("F32", "BF16")]
)
def test_bf16_and_f32_sources(
    source_type: str, level: str, f16_small: Path, llama_reference: Callable[..., Path], tmp_path: Path
) -> None:
    """Weights stored as BF16 or F32 are read as llama.cpp reads them (the source made by llama.cpp)."""
    ftype = FILE_TYPES["BF16"].ftype if source_type == "BF16" else 0  # 0: LLAMA_FTYPE_ALL_F32
    src = llama_reference(f16_small, f"as-{source_type}", ftype)
    ref = llama_reference(src, level, FILE_TYPES[level].ftype)
    out = tmp_path / f"ours-{source_type}-{level}.gguf"
    quantize_file(QuantizeRequest(src, out, level, threads=2))
    assert_same_file(out, ref)
