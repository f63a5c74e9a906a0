"""Checkpoints to GGUF: our converter against the files llama.cpp's convert_hf_to_gguf.py wrote.

The references under tests/data/convert/refs/ were made by tools/regen_convert_refs.py from the
same recipes (tests/data/convert/recipes.py) the tests build here, so both converters read
byte-identical checkpoints. "Identical" means: same tensors (names, order, types, shapes, bytes)
and same metadata (keys, order, types, values).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from quantdesk.core.convert import ConvertRequest, convert
from quantdesk.core.gguf.index import read_index
from tests.data.convert import recipes  # one instance: its tokenizer cache serves every test file


def gguf_facts(path: Path) -> tuple[list[tuple[str, int, bytes]], list[tuple[str, int, tuple[int, ...], bytes]]]:
    """Every key (name, type, raw bytes of key and value) and every tensor (name, type, shape, bytes)."""
    idx = read_index(path)
    raw = path.read_bytes()
    kvs = [(k, int(kv.type), raw[kv.start : kv.end]) for k, kv in idx.fields.items()]
    tensors = [(t.name, int(t.type), t.shape, raw[t.offset : t.offset + t.nbytes]) for t in idx.tensors]
    return kvs, tensors


def assert_same_gguf(ours: Path, ref: Path) -> None:
    our_kv, our_t = gguf_facts(ours)
    ref_kv, ref_t = gguf_facts(ref)
    assert [k for k, _, _ in our_kv] == [k for k, _, _ in ref_kv]
    for (k, t1, v1), (_, t2, v2) in zip(our_kv, ref_kv, strict=True):
        assert t1 == t2, f"metadata {k}: type {t1} != {t2}"
        assert v1 == v2, f"metadata {k}: value differs"
    assert [(n, ty, s) for n, ty, s, _ in our_t] == [(n, ty, s) for n, ty, s, _ in ref_t]
    for (n, _, _, b1), (_, _, _, b2) in zip(our_t, ref_t, strict=True):
        assert b1 == b2, f"tensor {n}: bytes differ"
    assert ours.stat().st_size == ref.stat().st_size


CASES = [(name, outtype) for name, (_, outtypes) in recipes.RECIPES.items() for outtype in outtypes]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, starter_model: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    built = {}
    for name, (build, _) in recipes.RECIPES.items():
        build(root / name, starter_model)
        built[name] = root / name
    return built


@pytest.mark.parametrize("name,outtype", CASES, ids=[f"{n}-{o}" for n, o in CASES])
def test_matches_convert_hf_to_gguf(checkpoints: dict[str, Path], tmp_path: Path, name: str, outtype: str) -> None:
    ref = recipes.ref_path(name, outtype)
    if not ref.is_file():
        pytest.skip(f"no reference {ref.name}; run tools/regen_convert_refs.py")
    out = tmp_path / f"{name}.{outtype}.gguf"
    convert(ConvertRequest(checkpoints[name], out, outtype))
    assert_same_gguf(out, ref)


LIVE_PYTHON = os.environ.get("QUANTDESK_REF_PYTHON")  # a Python with torch + transformers + sentencepiece
LLAMA_CPP = os.environ.get("QUANTDESK_LLAMA_CPP")  # vendor/llama.cpp of the llama-cpp-python sdist


@pytest.mark.skipif(
    not (LIVE_PYTHON and LLAMA_CPP), reason="set QUANTDESK_REF_PYTHON and QUANTDESK_LLAMA_CPP to regenerate live"
)
def test_live_against_convert_hf_to_gguf(checkpoints: dict[str, Path], tmp_path: Path, starter_model: Path) -> None:
    """Where torch is available: run llama.cpp's script now, on this machine, and compare."""
    tool = Path(__file__).resolve().parents[2] / "tools" / "regen_convert_refs.py"
    live = tmp_path / "live"
    subprocess.run(
        [LIVE_PYTHON, str(tool), "--llama-cpp", LLAMA_CPP, "--starter", str(starter_model), "--out", str(live)],
        check=True,
        capture_output=True,
    )
    for name, outtype in CASES:
        out = tmp_path / f"{name}.{outtype}.gguf"
        convert(ConvertRequest(checkpoints[name], out, outtype))
        assert_same_gguf(out, live / recipes.ref_path(name, outtype).name)


@pytest.mark.parametrize("name,outtype", [("tiny-gemma3-minimal", "f16"), ("tiny-llama-spm", "bf16")])
def test_sliced_conversion_is_identical(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, outtype: str
) -> None:
    """Big tensors are converted a slice of rows at a time; slicing must not change a byte."""
    import quantdesk.core.convert.family as family

    monkeypatch.setattr(family, "SLICE_VALUES", 100)  # a few rows per slice, odd boundaries
    out = tmp_path / "sliced.gguf"
    convert(ConvertRequest(checkpoints[name], out, outtype))
    assert_same_gguf(out, recipes.ref_path(name, outtype))


@pytest.mark.parametrize("name", list(recipes.RECIPES))
def test_references_load_and_generate(name: str) -> None:
    """The files we match byte for byte are working llama.cpp models (so are ours, being identical)."""
    import llama_cpp

    ref = recipes.ref_path(name, recipes.RECIPES[name][1][0])
    model = llama_cpp.Llama(str(ref), n_ctx=64, n_threads=1, verbose=False)
    out = []
    for tok in model.generate(model.tokenize(b"hello world", add_bos=True), temp=0.0, top_k=1):
        out.append(tok)
        if len(out) == 4:
            break
    assert len(out) == 4 and all(0 <= t < model.n_vocab() for t in out)


def test_llama3_rope_factors_match_torch_for_llama3_shapes() -> None:
    """rope_freqs as the reference's own code computes it with torch (recorded by the regen tool)
    for real Llama 3.x settings: theta 500000, factors 8/16/32, head_dim 64 and 128."""
    from quantdesk.core.convert.family import llama3_rope_factors

    expected = json.loads((recipes.HERE / "llama3_rope_factors.json").read_text(encoding="utf-8"))
    for case in expected:
        got = llama3_rope_factors(case["rope"], case["head_dim"])
        assert got.tobytes().hex() == case["float32_hex"], case["rope"]


SDIST_VOCABS = Path(LLAMA_CPP) / "models" if LLAMA_CPP else None


@pytest.mark.skipif(
    SDIST_VOCABS is None or not SDIST_VOCABS.is_dir(),
    reason="set QUANTDESK_LLAMA_CPP (vendor/llama.cpp of the sdist) for the real Llama 3 / Qwen2 tokenizers",
)
@pytest.mark.parametrize("name", list(recipes.SDIST_RECIPES))
def test_real_bpe_tokenizers_match_fingerprint(tmp_path: Path, name: str) -> None:
    """Llama 3's and Qwen2's real tokenizers (rebuilt from llama.cpp's vocab GGUFs): our file has
    the fingerprint (sha256 of every key and tensor) of what convert_hf_to_gguf.py wrote."""
    build, outtype = recipes.SDIST_RECIPES[name]
    folder = tmp_path / name
    build(folder, Path(LLAMA_CPP))
    out = tmp_path / "out.gguf"
    convert(ConvertRequest(folder, out, outtype))
    ours = recipes.fingerprint(out)
    ref = json.loads((recipes.FINGERPRINTS / f"{name}.{outtype}.json").read_text(encoding="utf-8"))
    assert [k for k, _, _ in ours["kv"]] == [k for k, _, _ in ref["kv"]]
    for mine, theirs in zip(ours["kv"], ref["kv"], strict=True):
        assert mine == theirs, f"metadata {mine[0]} differs"
    assert ours["tensors"] == ref["tensors"]
    assert ours["size"] == ref["size"]
