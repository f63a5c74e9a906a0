"""The per-tensor plan is llama.cpp's: every level, with and without an imatrix, with the switches.

llama.cpp's choice is read from a llama_model_quantize dry run on the whole F16 starter model
(30 layers, hidden size 576: most K-quant tensors fall back to legacy types, which is exactly
the part of the rules that is easy to get wrong). The rules' building blocks are tested too.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from bench.llama_quantize_ref import llama_plan
from quantdesk.core.gguf.index import KV, GGUFIndex, TensorInfo, read_index
from quantdesk.core.quantize.plan import (
    FILE_TYPES,
    PlanError,
    PlanOptions,
    allows_quantization,
    category,
    file_type,
    make_plan,
    parse_ggml_type,
    use_more_bits,
)

T = gguf.GGMLQuantizationType


def _ours(src: Path, level: str, opts: PlanOptions) -> list[tuple[str, str]]:
    return [(t.name, t.dst_type.name) for t in make_plan(read_index(src), level, opts).tensors]


@pytest.mark.parametrize("imatrix", [False, True], ids=["plain", "imatrix"])
@pytest.mark.parametrize("level", list(FILE_TYPES))
def test_plan_equals_llama_quantizes_choice(level: str, imatrix: bool, f16_model: Path) -> None:
    options: dict[str, object] = {}
    if imatrix:  # any imatrix switches llama.cpp to its imatrix rules; the values do not matter
        options["imatrix"] = {"blk.0.ffn_down.weight": [1.0] * 1536}
    theirs = llama_plan(str(f16_model), FILE_TYPES[level].ftype, **options)
    assert len(theirs) == 272
    assert _ours(f16_model, level, PlanOptions(has_imatrix=imatrix)) == theirs


SWITCHES = {
    "pure": (PlanOptions(pure=True), dict(pure=True)),
    "output-type": (PlanOptions(output_tensor_type=T.Q4_K), dict(output_tensor_type=int(T.Q4_K))),
    "embedding-type": (PlanOptions(token_embedding_type=T.Q5_0), dict(token_embedding_type=int(T.Q5_0))),
    "tensor-types": (
        PlanOptions(tensor_types=[("attn_v", T.Q8_0), (r"blk\.2\d\.", T.Q2_K)]),
        dict(tensor_types=[("attn_v", int(T.Q8_0)), (r"blk\.2\d\.", int(T.Q2_K))]),
    ),
}


@pytest.mark.parametrize("level", ["Q3_K_M", "Q4_K_M", "Q8_0"])
@pytest.mark.parametrize("switch", list(SWITCHES))
def test_switches_change_the_plan_as_in_llama_quantize(level: str, switch: str, f16_model: Path) -> None:
    ours_opts, their_opts = SWITCHES[switch]
    assert _ours(f16_model, level, ours_opts) == llama_plan(str(f16_model), FILE_TYPES[level].ftype, **their_opts)


def test_a_quantized_source_needs_allow_requantize(starter_model: Path) -> None:
    index = read_index(starter_model)
    with pytest.raises(PlanError, match="already quantized"):
        make_plan(index, "Q4_K_M")
    plan = make_plan(index, "Q4_K_M", PlanOptions(allow_requantize=True))
    assert [(t.name, t.dst_type.name) for t in plan.tensors] == llama_plan(
        str(starter_model), FILE_TYPES["Q4_K_M"].ftype, allow_requantize=True
    )


def test_building_blocks() -> None:
    assert [i for i in range(30) if use_more_bits(i, 30)] == [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]
    assert category("blk.3.attn_v.weight") == "attn_v"
    assert category("blk.3.attn_kv_b.weight") == "attn_kv_b"
    assert category("blk.3.ffn_up_exps.weight") == "ffn_up"
    assert category("token_embd.weight") == "token_embd"
    assert not allows_quantization("blk.0.attn_norm.weight", 1)
    assert not allows_quantization("blk.0.ffn_gate_inp.weight", 2)
    assert not allows_quantization("position_embd.weight", 2)
    assert not allows_quantization("blk.0.attn_q.bias", 2)
    assert allows_quantization("blk.0.attn_q.weight", 2)
    assert file_type("q4_k").name == "Q4_K_M"
    assert parse_ggml_type("iq4_xs") == T.IQ4_XS
    with pytest.raises(PlanError, match="unknown level"):
        file_type("Q7_K")
    with pytest.raises(PlanError, match="unknown tensor type"):
        parse_ggml_type("q9_9")


def _synthetic_index(arch: str, n_layer: int, ncols: int, n_head: int = 32, n_head_kv: int = 8) -> GGUFIndex:
    """Just enough of a header for the rules (no data)."""
    idx = GGUFIndex(path=Path("synthetic.gguf"), size=0, version=3)
    for key, value in (
        ("general.architecture", arch),
        (f"{arch}.block_count", n_layer),
        (f"{arch}.attention.head_count", n_head),
        (f"{arch}.attention.head_count_kv", n_head_kv),
    ):
        idx.fields[key] = KV(key, gguf.GGUFValueType.UINT32, 0, 0, value)
    names = ["token_embd.weight", "output.weight", "output_norm.weight"]
    for i in range(n_layer):
        names += [f"blk.{i}.{n}.weight" for n in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_down", "ffn_up")]
    for n in names:
        shape = (ncols,) if n.endswith("norm.weight") else (ncols, 64)
        idx.tensors.append(TensorInfo(n, shape, T.F16, 0, 2 * ncols * (1 if len(shape) == 1 else 64)))
    return idx


def test_an_unknown_architecture_gets_the_generic_rules() -> None:
    plan = {t.name: t.dst_type for t in make_plan(_synthetic_index("mystery-arch", 8, 1024), "Q4_K_M").tensors}
    assert plan["output.weight"] == T.Q6_K  # untied: the output head gets Q6_K
    assert plan["token_embd.weight"] == T.Q4_K
    assert plan["output_norm.weight"] == T.F16  # 1-D stays as it is
    assert plan["blk.0.attn_v.weight"] == T.Q6_K and plan["blk.1.attn_v.weight"] == T.Q4_K
    assert plan["blk.7.ffn_down.weight"] == T.Q6_K


def test_a_70b_llama_gets_more_bits_for_attn_v() -> None:
    plan = {t.name: t.dst_type for t in make_plan(_synthetic_index("llama", 80, 256), "Q3_K_S").tensors}
    assert plan["blk.40.attn_v.weight"] == T.Q5_K
    assert plan["blk.40.attn_q.weight"] == T.Q3_K
