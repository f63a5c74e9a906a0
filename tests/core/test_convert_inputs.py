"""Bad checkpoints get one clear line and leave nothing behind; cancel and progress behave; the CLI."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from quantdesk.cli import main as cli_main
from quantdesk.core.convert import ConvertError, ConvertRequest, convert, convert_job, is_checkpoint
from quantdesk.core.jobs import Cancelled, CancelToken, Progress
from tests.data.convert import recipes  # one instance: its tokenizer cache serves every test file


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pristine") / "tiny-llama"
    recipes.tiny_llama_spm(folder)
    return folder


@pytest.fixture
def ckpt(pristine: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "in" / "tiny-llama"
    shutil.copytree(pristine, folder)
    return folder


def _refused(folder: Path, out_dir: Path, match: str, outtype: str = "f16") -> None:
    out_dir.mkdir(exist_ok=True)
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(ConvertError, match=match) as info:
        convert(ConvertRequest(folder, out_dir / "out.gguf", outtype))
    assert "\n" not in str(info.value)
    assert list(out_dir.iterdir()) == []  # nothing written, no temporary left
    assert sorted(p.name for p in folder.iterdir()) == before  # the source is untouched


def _edit_config(folder: Path, **changes: object) -> None:
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg), encoding="utf-8")


def test_unsupported_architecture_lists_the_supported_ones(ckpt: Path, tmp_path: Path) -> None:
    _edit_config(ckpt, architectures=["FalconForCausalLM"])
    _refused(
        ckpt, tmp_path / "out", r"FalconForCausalLM is not supported; supported: .*LlamaForCausalLM.*Qwen2ForCausalLM"
    )


def test_missing_tokenizer(ckpt: Path, tmp_path: Path) -> None:
    (ckpt / "tokenizer.model").unlink()
    _refused(ckpt, tmp_path / "out", "no tokenizer")


def test_missing_config(ckpt: Path, tmp_path: Path) -> None:
    (ckpt / "config.json").unlink()
    _refused(ckpt, tmp_path / "out", "no config.json")


def test_malformed_safetensors_header(ckpt: Path, tmp_path: Path) -> None:
    path = ckpt / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[8:12] = b"{{{{"
    path.write_bytes(bytes(data))
    _refused(ckpt, tmp_path / "out", "model.safetensors: malformed safetensors header")


def test_absurd_header_length(ckpt: Path, tmp_path: Path) -> None:
    path = ckpt / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[0:8] = (1 << 40).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    _refused(ckpt, tmp_path / "out", "malformed safetensors header")


def test_truncated_safetensors(ckpt: Path, tmp_path: Path) -> None:
    path = ckpt / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-1000])
    _refused(ckpt, tmp_path / "out", "model.safetensors: truncated")


def _shard(ckpt: Path) -> None:
    """Turn the single file into two shards with an index, as the Hub has bigger models."""
    from quantdesk.core.convert.safetensors_file import read_header

    tensors = read_header(ckpt / "model.safetensors")
    arrays = {n: (t.load(), "F32") for n, t in tensors.items()}
    (ckpt / "model.safetensors").unlink()
    recipes._write(ckpt, json.loads((ckpt / "config.json").read_text(encoding="utf-8")), arrays, shards=2)


def test_missing_shard(ckpt: Path, tmp_path: Path) -> None:
    _shard(ckpt)
    (ckpt / "model-00002-of-00002.safetensors").unlink()
    _refused(ckpt, tmp_path / "out", "missing checkpoint shard: model-00002-of-00002.safetensors")


def test_truncated_shard(ckpt: Path, tmp_path: Path) -> None:
    _shard(ckpt)
    path = ckpt / "model-00001-of-00002.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    _refused(ckpt, tmp_path / "out", "model-00001-of-00002.safetensors: truncated")


def test_malformed_index(ckpt: Path, tmp_path: Path) -> None:
    _shard(ckpt)
    (ckpt / "model.safetensors.index.json").write_text('{"weight_map": [1, 2]}', encoding="utf-8")
    _refused(ckpt, tmp_path / "out", "model.safetensors.index.json: malformed index")


@pytest.mark.parametrize(
    "shard",
    ["../model-00001-of-00002.safetensors", "sub\\model.safetensors", "C:model.safetensors", ".hidden.safetensors"],
)
def test_index_naming_a_shard_outside_the_folder(ckpt: Path, tmp_path: Path, shard: str) -> None:
    """A shard name is a bare file name on every system ('\\' and 'C:' lead elsewhere on Windows)."""
    _shard(ckpt)
    index = json.loads((ckpt / "model.safetensors.index.json").read_text(encoding="utf-8"))
    index["weight_map"]["model.norm.weight"] = shard
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    _refused(ckpt, tmp_path / "out", "malformed index \\(shard name")


def test_index_naming_a_tensor_no_shard_holds(ckpt: Path, tmp_path: Path) -> None:
    _shard(ckpt)
    index = json.loads((ckpt / "model.safetensors.index.json").read_text(encoding="utf-8"))
    index["weight_map"]["model.layers.9.mlp.up_proj.weight"] = "model-00001-of-00002.safetensors"
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    _refused(ckpt, tmp_path / "out", "lists 1 tensor.*not found in the shards")


@pytest.mark.parametrize(
    "dtype,match", [("F64", "is F64; only F32, F16 and BF16"), ("I32", "is I32; .*already quantized")]
)
def test_dtype_surprises(ckpt: Path, tmp_path: Path, dtype: str, match: str) -> None:
    from quantdesk.core.convert.safetensors_file import read_header

    tensors = read_header(ckpt / "model.safetensors")
    arrays = {n: (t.load(), "BF16") for n, t in tensors.items()}
    name = "model.layers.1.mlp.up_proj.weight"
    arrays[name] = (arrays[name][0] * (1000 if dtype == "I32" else 1), dtype)
    recipes.write_safetensors(ckpt / "model.safetensors", arrays)
    _refused(ckpt, tmp_path / "out", match)


def test_unknown_tensor_name(ckpt: Path, tmp_path: Path) -> None:
    from quantdesk.core.convert.safetensors_file import read_header

    arrays = {n: (t.load(), "BF16") for n, t in read_header(ckpt / "model.safetensors").items()}
    arrays["model.layers.0.self_attn.mystery.weight"] = (np.zeros((4, 4), np.float32), "BF16")
    recipes.write_safetensors(ckpt / "model.safetensors", arrays)
    _refused(ckpt, tmp_path / "out", "'model.layers.0.self_attn.mystery.weight' has no GGUF name")


def test_unknown_outtype(ckpt: Path, tmp_path: Path) -> None:
    _refused(ckpt, tmp_path / "out", "unknown output type 'q9_z'", outtype="q9_z")


def test_existing_output_is_kept(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.gguf"
    out.write_bytes(b"precious")
    with pytest.raises(ConvertError, match="already exists"):
        convert(ConvertRequest(ckpt, out, "f16"))
    assert out.read_bytes() == b"precious"


def test_cancel_leaves_nothing(ckpt: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    job = convert_job(ConvertRequest(ckpt, out_dir / "out.gguf", "f16"))
    seen: list[Progress] = []

    def on_progress(p: Progress) -> None:
        seen.append(p)
        if p.message.startswith("Converting blk.0"):
            job.cancel()

    with pytest.raises(Cancelled):
        job.run(on_progress)
    assert list(out_dir.iterdir()) == []


def test_quantized_outtype_runs_both_stages(ckpt: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    stages: list[str] = []
    result = convert(
        ConvertRequest(ckpt, out_dir / "out.gguf", "Q8_0"), lambda p: stages.append(p.stage), CancelToken()
    )
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == ["Converting", "Quantizing"]
    from quantdesk.core.gguf.index import read_index

    idx = read_index(result.output)
    assert idx.get("general.file_type") == 7  # MOSTLY_Q8_0
    assert {t.type.name for t in idx.tensors} == {"Q8_0", "F32"}
    # the intermediate F16 file is gone; only the output and its card remain
    assert sorted(p.name for p in out_dir.iterdir()) == ["out.gguf", "out.gguf.card.json"]


def test_is_checkpoint(ckpt: Path, tmp_path: Path) -> None:
    assert is_checkpoint(ckpt)
    assert not is_checkpoint(tmp_path)


def test_cli_convert(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.gguf"
    assert cli_main(["convert", str(ckpt), str(out), "--outtype", "bf16"]) == 0
    assert "llama, bf16" in capsys.readouterr().out
    assert out.is_file()
    _edit_config(ckpt, architectures=["GPTNeoXForCausalLM"])
    assert cli_main(["convert", str(ckpt), str(tmp_path / "no.gguf")]) == 2
    assert "GPTNeoXForCausalLM is not supported" in capsys.readouterr().err
    assert not (tmp_path / "no.gguf").exists()


def test_full_disk_is_refused_before_writing(ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import quantdesk.core.quantize.run

    monkeypatch.setattr(quantdesk.core.quantize.run, "free_bytes", lambda folder: 1000)
    _refused(ckpt, tmp_path / "out", r"not enough disk space in .*: .* needed, 1000 B free|not enough disk space")


def test_missing_output_folder(ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(ConvertError, match="no such folder"):
        convert(ConvertRequest(ckpt, tmp_path / "nowhere" / "out.gguf", "f16"))


def test_quantized_card_names_the_checkpoint(ckpt: Path, tmp_path: Path) -> None:
    from quantdesk.core.model_card import read_card

    out = tmp_path / "q.gguf"
    convert(ConvertRequest(ckpt, out, "Q4_0"))
    card = read_card(out)
    assert card is not None and card["source"] == str(ckpt) and card["level"] == "Q4_0"


def test_describe_checkpoint(ckpt: Path) -> None:
    from quantdesk.core.convert import describe_checkpoint

    info = describe_checkpoint(ckpt)
    assert info.convertible and info.gguf_architecture == "llama" and info.dtypes == ["BF16"]
    assert info.parameters == 115_008 + 2 * 8  # the rotary buffers count here; they are dropped on conversion
    _edit_config(ckpt, architectures=["BertModel"])
    info = describe_checkpoint(ckpt)
    assert not info.convertible and "BertModel is not supported" in (info.problem or "")


def test_config_missing_a_required_key(ckpt: Path, tmp_path: Path) -> None:
    cfg = json.loads((ckpt / "config.json").read_text(encoding="utf-8"))
    del cfg["hidden_size"]
    (ckpt / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    _refused(ckpt, tmp_path / "out", "config.json: hidden_size is missing")


def test_malformed_tokenizer_config(ckpt: Path, tmp_path: Path) -> None:
    (ckpt / "tokenizer_config.json").write_text("{not json", encoding="utf-8")
    _refused(ckpt, tmp_path / "out", "tokenizer_config.json: not valid JSON")


@pytest.mark.parametrize("case", sorted(recipes.SPECIAL_VOCAB_CASES))
def test_special_vocab_reads_like_llama_cpp(tmp_path: Path, case: str) -> None:
    """Special tokens / add_bos / merges / chat template as llama.cpp's own gguf-py reads them
    (expected values recorded by tools/regen_convert_refs.py), insertion order included."""
    from quantdesk.core.convert.special_vocab import SpecialVocab

    expected = json.loads(recipes.SPECIAL_VOCAB_EXPECTED.read_text(encoding="utf-8"))[case]
    recipes.special_vocab_case(tmp_path, case)
    sv = SpecialVocab(tmp_path, load_merges=True, n_vocab=8)
    assert sv.merges == expected["merges"]
    assert list(sv.token_ids.items()) == list(expected["special_token_ids"].items())
    assert list(sv.add_token.items()) == list(expected["add_special_token"].items())
    assert sv.chat_template == expected["chat_template"]
    assert sv.normalizer_lowercase == expected["normalizer_lowercase"]
    assert sv.normalizer_strip_accents == expected["normalizer_strip_accents"]


def test_unknown_bpe_pre_tokenizer(tmp_path: Path, starter_model: Path) -> None:
    folder = tmp_path / "in" / "tiny-bpe"
    recipes.tiny_llama_bpe(folder, starter_model)
    tok = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    tok["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = True  # a different pre-tokenizer
    (folder / "tokenizer.json").write_text(json.dumps(tok), encoding="utf-8")
    _refused(folder, tmp_path / "out", "pre-tokenizer is not one llama.cpp knows")


def test_write_failure_leaves_nothing(ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fills up mid-way: one line, and no partial file."""
    import errno

    import quantdesk.core.convert.converter as converter

    calls = {"n": 0}
    real = converter.convert_slice

    def failing(data, qtype):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(data, qtype)

    monkeypatch.setattr(converter, "convert_slice", failing)
    _refused(ckpt, tmp_path / "out", "writing out.gguf failed: No space left on device")


def _header(ckpt: Path) -> tuple[dict, bytes]:
    data = (ckpt / "model.safetensors").read_bytes()
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _rewrite(ckpt: Path, header: dict, payload: bytes) -> None:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    (ckpt / "model.safetensors").write_bytes(len(text).to_bytes(8, "little") + text + payload)


def _set_bf16(ckpt: Path, tensor: str, index: int, bits: int) -> None:
    header, payload = _header(ckpt)
    at = header[tensor]["data_offsets"][0] + 2 * index
    _rewrite(ckpt, header, payload[:at] + bits.to_bytes(2, "little") + payload[at + 2 :])


@pytest.mark.parametrize("outtype", ["f16", "Q4_K_M"])
@pytest.mark.parametrize(
    "tensor, bits, match",
    [
        ("model.layers.0.self_attn.q_proj.weight", 0x7FC0, "q_proj.weight' holds NaN or Inf values"),
        ("model.norm.weight", 0x7F80, "model.norm.weight' holds NaN or Inf values"),
        (
            "model.layers.0.mlp.down_proj.weight",
            0x4F80,
            "down_proj.weight' holds values too large for F16; convert to bf16",
        ),
    ],
)
def test_nan_inf_or_f16_overflow_in_the_weights(
    ckpt: Path, tmp_path: Path, tensor: str, bits: int, match: str, outtype: str
) -> None:
    """Were written into the GGUF as they were (NaN), or as Inf (4.3e9 does not fit F16)."""
    _set_bf16(ckpt, tensor, 3, bits)
    _refused(ckpt, tmp_path / "out", match, outtype)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"rms_norm_eps": "tiny"}, "config.json: rms_norm_eps is 'tiny', not a number"),
        ({"max_position_embeddings": "4k"}, "config.json: max_position_embeddings is '4k', not a whole number"),
        ({"rope_scaling": "linear"}, "config.json: rope_scaling should be an object, not 'linear'"),
        ({"rope_scaling": {"type": "linear", "factor": "x"}}, "config.json: rope_scaling: factor is 'x', not a number"),
        ({"num_attention_heads": 3}, r"q_proj.weight: 64 rows, but config.json gives 3 heads of 21"),
        ({"num_key_value_heads": "2"}, "config.json: num_key_value_heads is '2', not a whole number"),
        ({"vocab_size": "320"}, "config.json: vocab_size is '320', not a whole number"),
        ({"architectures": [["LlamaForCausalLM"]]}, r"architecture \['LlamaForCausalLM'\] is not supported"),
        ({"text_config": {"architectures": [[1]]}}, r"architecture \[1\] is not supported"),
        ({"rope_parameters": {"full_attention": "x"}}, "full_attention and sliding_attention should be objects"),
        ({"rope_scaling": {"rope_type": "llama3", "factor": "x"}}, "rope_scaling: factor is 'x', not a number"),
        # each of these reached gguf's writer or unpermute_rows ("x" was written as a string array)
        ({"intermediate_size": 2.5}, "config.json: intermediate_size is 2.5, not a whole number"),
        ({"intermediate_size": "x"}, "config.json: intermediate_size is 'x', not a whole number"),
        ({"num_key_value_heads": 0.5}, "config.json: num_key_value_heads is 0.5, not a whole number"),
        ({"num_key_value_heads": 1e308}, "config.json: num_key_value_heads is 1e[+]308, not a whole number"),
        ({"num_attention_heads": True}, "config.json: num_attention_heads is True, not a whole number"),
        ({"hidden_size": "x"}, "config.json: hidden_size is 'x', not a whole number"),
        # found by tools/fuzz: the name from the file went into the message raw (a second line)
        ({"architectures": ["Llama\nX\x1b[2J"]}, r"^architecture Llama\\nX\\x1b\[2J is not supported"),
        ({"num_attention_heads": 0}, "config.json: num_attention_heads is 0, outside 1 to 4294967295"),
        ({"hidden_size": 1 << 40}, "config.json: hidden_size is 1099511627776, outside 1 to 4294967295"),
        ({"rope_theta": 1e308}, "config.json: rope_theta is 1e[+]308, not a finite number a GGUF float32 can hold"),
        ({"rms_norm_eps": 10**400}, "config.json: rms_norm_eps is 1000000.*, not a finite number"),
        ({"max_position_embeddings": 0}, "config.json: max_position_embeddings is 0, outside 1 to 4294967295"),
        # checked against the weights before any work in proportion to them (hangs, 1.3 GB, a bad file)
        ({"num_hidden_layers": 32_000}, "config.json: num_hidden_layers is 32000, but the weights hold layers 0 to 1"),
        ({"num_hidden_layers": 10**9}, "num_hidden_layers is 1000000000, but the weights hold layers 0 to 1"),
        ({"num_hidden_layers": 1}, "config.json: num_hidden_layers is 1, but the weights hold layers 0 to 1"),
        ({"vocab_size": 10**9}, "config.json: vocab_size is 1000000000, but the token embedding has 320 rows"),
        ({"head_dim": 1 << 30}, r"q_proj.weight: 64 rows, but config.json gives 4 heads of 1073741824"),
    ],
)
def test_config_values_of_the_wrong_type(ckpt: Path, tmp_path: Path, changes: dict, match: str) -> None:
    """Strings where numbers belong were struct.error / ValueError tracebacks, some mid-write."""
    _edit_config(ckpt, **changes)
    _refused(ckpt, tmp_path / "out", match)


@pytest.mark.parametrize(
    "case, match",
    [
        ("tokenizer_config-list", "tokenizer_config.json: not a JSON object"),
        ("added-token-id-not-a-number", "tokenizer_config.json: added_tokens_decoder has the id 'x', not a token id"),
        ("generation_config-list", "give general.sampling.top_k the value \\[1\\], which is not a valid int32"),
        ("deeply-nested-config", r"config.json: not valid JSON \(RecursionError\)"),
        ("weights-are-a-folder", r"model.safetensors: cannot read \(Is a directory\)"),
        ("overlapping-tensors", "tensors 'model.norm.weight' and 'model.embed_tokens.weight' overlap"),
        ("bool-in-a-shape", r"malformed safetensors header \(entry 'model.norm.weight'\)"),
        (
            "five-dimensions",
            r"tensor 'model.norm.weight' has 5 dimensions \[64, 1, 1, 1, 1\]; a GGUF tensor has at most 4",
        ),
        ("dtype-a-list", r"malformed safetensors header \(entry 'model.norm.weight'\)$"),  # found by tools/fuzz
        ("a-dimension-of-2^63", r"\(entry 'model.norm.weight'\): a dimension of 9223372036854775808 is too large"),
        ("a-shape-whose-int64-product-wraps", r"\(entry 'model.norm.weight'\): byte range does not match its shape"),
        ("yaml-error-in-the-model-card", r"cannot read the model card .*ParserError: while parsing a flow sequence"),
    ],
)
def test_malformed_checkpoint_files(ckpt: Path, tmp_path: Path, case: str, match: str) -> None:
    """Each was a traceback (or, for overlapping tensors, a model with wrong weights)."""
    if case == "tokenizer_config-list":
        (ckpt / "tokenizer_config.json").write_text("[]", encoding="utf-8")
    elif case == "added-token-id-not-a-number":
        (ckpt / "tokenizer_config.json").write_text(
            json.dumps({"added_tokens_decoder": {"x": {"content": "a"}}}), encoding="utf-8"
        )
    elif case == "generation_config-list":
        (ckpt / "generation_config.json").write_text('{"top_k": [1]}', encoding="utf-8")
    elif case == "deeply-nested-config":
        (ckpt / "config.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    elif case == "weights-are-a-folder":
        (ckpt / "model.safetensors").unlink()
        (ckpt / "model.safetensors").mkdir()
    elif case == "overlapping-tensors":
        header, payload = _header(ckpt)
        header["model.norm.weight"]["data_offsets"] = [0, 128]  # inside the embedding's bytes
        _rewrite(ckpt, header, payload)
    elif case == "bool-in-a-shape":
        header, payload = _header(ckpt)
        header["model.norm.weight"]["shape"] = [True, 64]
        _rewrite(ckpt, header, payload)
    elif case == "dtype-a-list":  # was a TypeError (unhashable type: 'list') traceback
        header, payload = _header(ckpt)
        header["model.norm.weight"]["dtype"] = ["F32"]
        _rewrite(ckpt, header, payload)
    elif case == "five-dimensions":  # the same bytes, trailing 1s appended: was written, and then unreadable
        header, payload = _header(ckpt)
        header["model.norm.weight"]["shape"] = [64, 1, 1, 1, 1]
        _rewrite(ckpt, header, payload)
    elif case == "a-dimension-of-2^63":  # was an OverflowError traceback from numpy's int64 product
        header, payload = _header(ckpt)
        header["model.norm.weight"]["shape"] = [1 << 63, 0]
        _rewrite(ckpt, header, payload)
    elif case == "a-shape-whose-int64-product-wraps":  # 2^62 * 4 values: 0 in int64, so "0 bytes" matched
        header, payload = _header(ckpt)
        header["model.norm.weight"]["shape"] = [1 << 62, 4]
        header["model.norm.weight"]["data_offsets"] = [0, 0]
        _rewrite(ckpt, header, payload)
    elif case == "yaml-error-in-the-model-card":
        (ckpt / "README.md").write_text("---\nlicense: [unclosed\n---\nhello\n", encoding="utf-8")
    _refused(ckpt, tmp_path / "out", match)


@pytest.mark.parametrize("outtype", ["f16", "Q8_0"])
def test_the_output_never_replaces_a_file_of_the_checkpoint(ckpt: Path, tmp_path: Path, outtype: str) -> None:
    """--overwrite with the weights' own name replaced them: the checkpoint was gone."""
    before = {p.name: p.read_bytes() for p in ckpt.iterdir()}
    (tmp_path / "link.json").symlink_to(ckpt / "config.json")
    for target in (ckpt / "model.safetensors", tmp_path / "link.json"):
        with pytest.raises(ConvertError, match="would replace a file of the checkpoint"):
            convert(ConvertRequest(ckpt, target, outtype, overwrite=True))
    assert {p.name: p.read_bytes() for p in ckpt.iterdir()} == before
    with pytest.raises(ConvertError, match="is a folder"):  # found before the work, not when renaming
        convert(ConvertRequest(ckpt, ckpt, outtype, overwrite=True))
    convert(ConvertRequest(ckpt, ckpt / "model.gguf", outtype, overwrite=True))  # a GGUF beside it is fine


def test_a_read_only_output_folder(ckpt: Path, tmp_path: Path) -> None:
    """Was an OSError traceback (EROFS) from opening the output."""
    import os
    import subprocess

    ro = tmp_path / "ro"
    ro.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only bind mount needs Linux and root")
    if subprocess.run(["mount", "--bind", "-o", "ro", str(ro), str(ro)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        for outtype in ("f16", "Q4_0"):
            with pytest.raises(ConvertError, match="no permission to write here"):
                convert(ConvertRequest(ckpt, ro / "out.gguf", outtype))
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_a_full_disk_while_quantizing_is_one_line(ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The F16 intermediate fits, the quantized file does not: was an OSError traceback."""
    import errno

    from quantdesk.core.quantize.writer import AtomicOutput

    real_write = AtomicOutput.write

    def failing_write(self: AtomicOutput, data: object) -> None:
        if self.dest.name == "out.gguf" and self._written > 20_000:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, data)

    monkeypatch.setattr(AtomicOutput, "write", failing_write)
    _refused(ckpt, tmp_path / "out", "writing out.gguf failed: No space left on device", "Q8_0")


@pytest.mark.skipif(sys.platform == "win32", reason="Windows limits the whole path, not each name")
def test_long_output_names(ckpt: Path, tmp_path: Path) -> None:
    """240 bytes fit the file system but not the F16 intermediate's hidden name (a traceback);
    300 bytes do not fit at all (an OSError traceback from checking whether the output exists)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    convert(ConvertRequest(ckpt, out_dir / ("a" * 235 + ".gguf"), "Q8_0"))
    for outtype in ("f16", "Q8_0"):
        with pytest.raises(ConvertError, match="File name too long"):
            convert(ConvertRequest(ckpt, out_dir / ("b" * 300 + ".gguf"), outtype))
    assert {n[:3] for n in (p.name for p in out_dir.iterdir())} == {"aaa"}


@pytest.fixture(scope="module")
def pristine_phi3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pristine") / "tiny-phi3"
    recipes.tiny_phi3_spm(folder)
    return folder


@pytest.fixture(scope="module")
def pristine_gemma3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pristine") / "tiny-gemma3"
    recipes.tiny_gemma3_spm(folder)
    return folder


def _rope_scaling(folder: Path, **changes: object) -> None:
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    cfg["rope_scaling"].update(changes)
    (folder / "config.json").write_text(json.dumps(cfg), encoding="utf-8")


@pytest.mark.parametrize(
    "case, match",
    [
        ("orig-a-list", r"config.json: original_max_position_embeddings is \[4096\], not a whole number"),
        ("orig-0", "config.json: original_max_position_embeddings is 0, outside 1 to"),
        ("orig-1", "config.json: original_max_position_embeddings is 1; LongRoPE needs at least 2"),
        ("short-a-string", "config.json: rope_scaling.short_factor should be a list of numbers, not 'abc'"),
        ("long-nested", r"config.json: rope_scaling.long_factor should be a list of numbers, not \[\[1.0\]"),
        ("long-with-null", "config.json: rope_scaling.long_factor should be a list of numbers"),
        ("long-with-a-bool", "config.json: rope_scaling.long_factor should be a list of numbers"),
        ("max-position-null", r"config.json: max_position_embeddings is missing \(or null\)"),  # found by tools/fuzz
        ("intermediate-null", r"config.json: intermediate_size is missing \(or null\)"),  # found by tools/fuzz
        ("rope-type-escaped", r"^Phi-3 RoPE scaling type longrope\\u202e\\n is not supported$"),  # found by tools/fuzz
    ],
)
def test_phi3_rope_settings(pristine_phi3: Path, tmp_path: Path, case: str, match: str) -> None:
    """0 or 1 was a ZeroDivisionError, a list a TypeError; factors that are not a flat list of
    numbers reached numpy (a ValueError traceback, or a string turned into an array)."""
    folder = tmp_path / "in" / "tiny-phi3"
    shutil.copytree(pristine_phi3, folder)
    half = 64 // 4 // 2
    if case.startswith("orig-"):
        _edit_config(folder, original_max_position_embeddings={"a-list": [4096], "0": 0, "1": 1}[case[5:]])
    elif case == "short-a-string":
        _rope_scaling(folder, short_factor="abc")
    elif case == "long-nested":
        _rope_scaling(folder, long_factor=[[1.0]] * half)
    elif case == "long-with-null":
        _rope_scaling(folder, long_factor=[None] * half)
    elif case == "long-with-a-bool":
        _rope_scaling(folder, long_factor=[True] * half)
    elif case == "max-position-null":  # was a TypeError traceback (None / int) in the attention factor
        _edit_config(folder, max_position_embeddings=None)
    elif case == "intermediate-null":  # gguf's writer took None for an array: a TypeError traceback
        _edit_config(folder, intermediate_size=None)
    elif case == "rope-type-escaped":  # the type from the file went into the message raw
        _rope_scaling(folder, type="longrope\u202e\n")
    _refused(folder, tmp_path / "out", match)


@pytest.mark.parametrize(
    "case, match",
    [
        ("decoder-a-list", r"tokenizer_config.json: added_tokens_decoder should be an object, not \[1\]"),
        ("entry-a-string", "tokenizer_config.json: added token 1 should be an object with a string content"),
        ("entry-without-content", "tokenizer_config.json: added token 1 should be an object with a string content"),
        ("content-a-number", "tokenizer_config.json: added token 1 should be an object with a string content"),
        ("negative-id", "tokenizer_config.json: added_tokens_decoder has the id '-1', not a token id"),
        ("rope_parameters-a-string", "config.json: rope_parameters should be an object, not 'x'"),
        ("rope_scaling-a-list", r"config.json: rope_scaling should be an object, not \[8\]"),
        ("tokenizer.json-model-a-list", r"tokenizer.json: its model should be an object, not \[\]"),
        ("tokenizer.json-model-a-string", "tokenizer.json: its model should be an object, not 'BPE'"),
    ],
)
def test_gemma3_tokenizer_and_rope_files(pristine_gemma3: Path, tmp_path: Path, case: str, match: str) -> None:
    """Each was a traceback, several from Gemma 3's plan() (which reads the vocabulary), outside any handler."""
    folder = tmp_path / "in" / "tiny-gemma3"
    shutil.copytree(pristine_gemma3, folder)
    config_file = folder / "tokenizer_config.json"
    tok_config = json.loads(config_file.read_text(encoding="utf-8"))
    decoder = tok_config["added_tokens_decoder"]
    if case == "decoder-a-list":
        tok_config["added_tokens_decoder"] = [1]
    elif case == "entry-a-string":
        decoder["1"] = "<s>"
    elif case == "entry-without-content":
        del decoder["1"]["content"]
    elif case == "content-a-number":
        decoder["1"]["content"] = 5
    elif case == "negative-id":
        decoder["-1"] = decoder["1"]
    elif case == "rope_parameters-a-string":
        _edit_config(folder, rope_parameters="x")
    elif case == "rope_scaling-a-list":
        _edit_config(folder, rope_scaling=[8])
    elif case.startswith("tokenizer.json-model"):
        (folder / "tokenizer.model").unlink()
        model = [] if case.endswith("list") else "BPE"
        (folder / "tokenizer.json").write_text(json.dumps({"model": model}), encoding="utf-8")
    config_file.write_text(json.dumps(tok_config), encoding="utf-8")
    _refused(folder, tmp_path / "out", match)


@pytest.mark.parametrize("content", ["[1, 2]", '"temperature"', "17"])
def test_a_generation_config_that_is_not_an_object(pristine_gemma3: Path, tmp_path: Path, content: str) -> None:
    """generation_config.json holding a list or a string was an AttributeError traceback (ours, and
    gguf's Metadata, which reads it too); like tokenizer_config.json, it must be an object."""
    folder = tmp_path / "in" / "tiny-gemma3"
    shutil.copytree(pristine_gemma3, folder)
    (folder / "generation_config.json").write_text(content, encoding="utf-8")
    _refused(folder, tmp_path / "out", "^generation_config.json: not a JSON object$")


def test_a_tokenizer_library_error_quoting_the_file_is_escaped(tmp_path: Path, starter_model: Path) -> None:
    """Found by tools/fuzz: the tokenizers library's message quotes the file ("Unknown tokenizer
    version '1.0<ESC>[2J'"), and it went into ours raw."""
    folder = tmp_path / "in" / "tiny-bpe"
    recipes.tiny_llama_bpe(folder, starter_model)
    tok = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    tok["version"] = "1.0\x1b[2J\n"
    (folder / "tokenizer.json").write_text(json.dumps(tok), encoding="utf-8")
    _refused(folder, tmp_path / "out", r"tokenizer.json: cannot be loaded \(Unknown tokenizer version '1.0\\x1b\[2J")
