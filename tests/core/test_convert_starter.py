"""The starter model as a Hugging Face checkpoint, converted back: same weights, same continuation.

The checkpoint holds the starter's tensors dequantized and stored as F16 (norms F32) with q/k
rows in Hugging Face order (tests/data/convert/recipes.py: starter_checkpoint). Fair equality:
our F16 conversion must hold exactly those weights under the starter's names, and must generate
exactly what a GGUF with the starter's own metadata and those same F16 weights generates.
(Comparing with the Q4_1 starter itself would compare two different sets of weights.)
"""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from quantdesk.core.convert import ConvertRequest, convert
from quantdesk.core.gguf.index import read_index
from tests.data.convert import recipes  # one instance: its tokenizer cache serves every test file

PROMPT = b"The capital of France is"
N_TOKENS = 16


def _gguf_str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_same_metadata_gguf(starter: Path, out: Path, tensors: dict[str, np.ndarray]) -> None:
    """A GGUF with the starter's metadata (raw bytes, minus file_type) and the given F16/F32 tensors."""
    idx = read_index(starter)
    raw = starter.read_bytes()
    kvs = [raw[kv.start : kv.end] for k, kv in idx.fields.items() if k != "general.file_type"]
    infos, blobs, offset = [], [], 0
    for t in idx.tensors:
        data = tensors[t.name]
        data = data.astype(np.float32 if data.ndim == 1 else np.float16)
        ggml_type = gguf.GGMLQuantizationType.F32 if data.ndim == 1 else gguf.GGMLQuantizationType.F16
        dims = list(reversed(data.shape))
        infos.append(
            _gguf_str(t.name)
            + struct.pack("<I", len(dims))
            + struct.pack(f"<{len(dims)}Q", *dims)
            + struct.pack("<IQ", int(ggml_type), offset)
        )
        blob = data.tobytes()
        blobs.append(blob + bytes(-len(blob) % 32))
        offset += len(blobs[-1])
    with out.open("wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, len(infos), len(kvs)))
        f.write(b"".join(kvs) + b"".join(infos))
        f.write(bytes(-f.tell() % 32))
        for blob in blobs:
            f.write(blob)


def greedy(path: Path) -> tuple[list[int], list[int]]:
    import llama_cpp

    model = llama_cpp.Llama(str(path), n_ctx=128, n_threads=2, verbose=False)
    prompt = model.tokenize(PROMPT, add_bos=False)
    out: list[int] = []
    for tok in model.generate(prompt, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
        out.append(tok)
        if len(out) == N_TOKENS:
            break
    del model
    return prompt, out


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory, starter_model: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("starter-convert")
    folder = root / "SmolLM2-135M-Instruct"
    expected = recipes.starter_checkpoint(folder, starter_model)
    ours = root / "converted.f16.gguf"
    convert(ConvertRequest(folder, ours, "f16"))
    reference = root / "reference.f16.gguf"
    write_same_metadata_gguf(starter_model, reference, expected)
    return ours, reference


def test_converted_starter_holds_the_same_weights(converted: tuple[Path, Path]) -> None:
    ours, reference = converted
    a, b = read_index(ours), read_index(reference)
    assert sorted(t.name for t in a.tensors) == sorted(t.name for t in b.tensors)
    ref_tensors = {t.name: t for t in b.tensors}
    raw_a, raw_b = np.memmap(ours, dtype=np.uint8, mode="r"), np.memmap(reference, dtype=np.uint8, mode="r")
    for t in a.tensors:
        r = ref_tensors[t.name]
        assert (t.type, t.shape) == (r.type, r.shape), t.name
        assert np.array_equal(raw_a[t.offset : t.offset + t.nbytes], raw_b[r.offset : r.offset + r.nbytes]), t.name
    assert a.get("llama.context_length") == 8192
    assert a.get("tokenizer.ggml.pre") == "smollm"
    assert a.get("general.file_type") == int(gguf.LlamaFileType.MOSTLY_F16)


def test_converted_starter_generates_like_the_same_weights(converted: tuple[Path, Path]) -> None:
    ours, reference = converted
    prompt_a, out_a = greedy(ours)
    prompt_b, out_b = greedy(reference)
    assert prompt_a == prompt_b  # the tokenizer came through intact
    assert out_a == out_b
    assert len(out_a) == N_TOKENS
