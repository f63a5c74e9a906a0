"""Deterministic recipes for the small checkpoints the convert tests use.

Each recipe builds a Hugging Face style checkpoint folder: config.json, safetensors (random
weights from a fixed seed, in the dtype a Hub upload would have), a real tokenizer and its
tokenizer_config.json. The same recipe feeds llama.cpp's convert_hf_to_gguf.py (in
tools/regen_convert_refs.py, which writes the reference GGUFs checked in under refs/) and our
converter (in tests/core/test_convert.py), so both see byte-identical input.

Tokenizers: spm/tokenizer.model is a SentencePiece model trained (by the regen script) on
SPM_TRAINING_TEXT; the BPE one is SmolLM2's, rebuilt from the starter GGUF's tokens and merges
(its pre-tokenizer hash is llama.cpp's "smollm"). This file imports only numpy and json.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SPM_MODEL = HERE / "spm" / "tokenizer.model"
REFS = HERE / "refs"

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


def spm_training_text() -> str:
    """Text the SentencePiece model is trained on (deterministic, no files needed)."""
    import codecs
    import this  # noqa: F401  (prints nothing when imported a second time)

    zen = codecs.decode(this.s, "rot13")
    words = ["model", "token", "quantize", "layer", "weight", "tensor", "convert", "bits", "cache", "prompt"]
    lines = [
        f"The {a} and the {b} make {n} {c}s."
        for n, (a, b, c) in enumerate(zip(words, reversed(words), words[3:] + words[:3], strict=True))
    ]
    return zen + "\n" + "\n".join(lines * 3) + "\n"


# ---- safetensors writing (bf16 included: numpy has no bf16, so we round and write raw bytes) --------


def to_bf16_bytes(a: np.ndarray) -> bytes:
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return rounded.tobytes()


def write_safetensors(path: Path, tensors: dict[str, tuple[np.ndarray, str]]) -> None:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name, (arr, dtype) in tensors.items():
        if dtype == "BF16":
            raw = to_bf16_bytes(arr)
        else:
            raw = np.ascontiguousarray(
                arr, dtype={"F32": "<f4", "F16": "<f2", "F64": "<f8", "I32": "<i4"}[dtype]
            ).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


# ---- weights ---------------------------------------------------------------------------------


def llama_like_weights(
    cfg: dict[str, Any],
    seed: int,
    qk_norm: bool = False,
    qkv_bias: bool = False,
    sandwich_norms: bool = False,
    n_kv: int | None = None,
    head_dim: int | None = None,
) -> dict[str, np.ndarray]:
    """n_kv / head_dim: the values transformers fills in when config.json leaves them out."""
    rng = np.random.default_rng(seed)
    h, ff, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    nh, nkv = cfg["num_attention_heads"], n_kv or cfg["num_key_value_heads"]
    hd = head_dim or cfg.get("head_dim") or h // nh

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    out = {"model.embed_tokens.weight": w(v, h), "model.norm.weight": 1 + w(h)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out[p + "input_layernorm.weight"] = 1 + w(h)
        out[p + "post_attention_layernorm.weight"] = 1 + w(h)
        out[p + "self_attn.q_proj.weight"] = w(nh * hd, h)
        out[p + "self_attn.k_proj.weight"] = w(nkv * hd, h)
        out[p + "self_attn.v_proj.weight"] = w(nkv * hd, h)
        out[p + "self_attn.o_proj.weight"] = w(h, nh * hd)
        if qkv_bias:
            out[p + "self_attn.q_proj.bias"] = w(nh * hd)
            out[p + "self_attn.k_proj.bias"] = w(nkv * hd)
            out[p + "self_attn.v_proj.bias"] = w(nkv * hd)
        if qk_norm:
            out[p + "self_attn.q_norm.weight"] = 1 + w(hd)
            out[p + "self_attn.k_norm.weight"] = 1 + w(hd)
        if sandwich_norms:  # Gemma 2/3: norms before and after the feed-forward block too
            out[p + "pre_feedforward_layernorm.weight"] = w(h)
            out[p + "post_feedforward_layernorm.weight"] = w(h)
        out[p + "mlp.gate_proj.weight"] = w(ff, h)
        out[p + "mlp.up_proj.weight"] = w(ff, h)
        out[p + "mlp.down_proj.weight"] = w(h, ff)
        out[p + "self_attn.rotary_emb.inv_freq"] = w(hd // 2)  # a buffer old checkpoints carry: dropped
    if not cfg.get("tie_word_embeddings", False):
        out["lm_head.weight"] = w(v, h)
    return out


# ---- tokenizers ------------------------------------------------------------------------------


def spm_tokenizer_files(folder: Path, add_bos: bool = True) -> None:
    folder.joinpath("tokenizer.model").write_bytes(SPM_MODEL.read_bytes())
    special = {
        str(i): {
            "content": c,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for i, c in enumerate(["<unk>", "<s>", "</s>"])
    }
    folder.joinpath("tokenizer_config.json").write_text(
        json.dumps(
            {
                "add_bos_token": add_bos,
                "add_eos_token": False,
                "added_tokens_decoder": special,
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "pad_token": None,
                "chat_template": CHAT_TEMPLATE,
                "legacy": False,
                "model_max_length": 2048,
                "tokenizer_class": "LlamaTokenizer",
                "clean_up_tokenization_spaces": False,
            },
            indent=2,
        ),
        encoding="utf-8",
    )


def _gguf_string_array(path: Path, key: str) -> list[str]:
    """A string-array key of a GGUF, decoded straight from its bytes (GGUFReader takes seconds)."""
    from quantdesk.core.gguf.index import read_index

    kv = read_index(path).fields[key]
    with path.open("rb") as f:
        f.seek(kv.start)
        buf = f.read(kv.end - kv.start)
    pos = 8 + len(key.encode()) + 4 + 4 + 8  # key length, key, value type, item type, count
    out = []
    for _ in range(kv.count):
        n = int.from_bytes(buf[pos : pos + 8], "little")
        out.append(buf[pos + 8 : pos + 8 + n].decode("utf-8"))
        pos += 8 + n
    return out


_SMOLLM2_FILES: dict[Path, tuple[str, str]] = {}


def smollm2_tokenizer_files(folder: Path, starter_gguf: Path) -> None:
    """SmolLM2's tokenizer.json + tokenizer_config.json, rebuilt from the starter GGUF."""
    if starter_gguf not in _SMOLLM2_FILES:
        _SMOLLM2_FILES[starter_gguf] = _smollm2_tokenizer_texts(starter_gguf)
    tokenizer_json, config_json = _SMOLLM2_FILES[starter_gguf]
    folder.joinpath("tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    folder.joinpath("tokenizer_config.json").write_text(config_json, encoding="utf-8")


def _smollm2_tokenizer_texts(starter_gguf: Path) -> tuple[str, str]:
    from quantdesk.core.gguf.index import read_index

    idx = read_index(starter_gguf)
    tokens = _gguf_string_array(starter_gguf, "tokenizer.ggml.tokens")
    merges = _gguf_string_array(starter_gguf, "tokenizer.ggml.merges")
    template = idx.get("tokenizer.chat_template")
    n_special = 17  # <|endoftext|> ... <empty_output>: SmolLM2's control tokens, ids 0-16
    added = [
        {
            "id": i,
            "content": tokens[i],
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i in range(n_special)
    ]
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            ],
        },
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [m.split(" ") for m in merges],
        },
    }
    config = {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added},
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "chat_template": template,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 8192,
        "tokenizer_class": "GPT2Tokenizer",
        "vocab_size": 49152,
    }
    return json.dumps(tokenizer, ensure_ascii=False), json.dumps(config, indent=2)


# ---- the checkpoints -------------------------------------------------------------------------


def _base_cfg(arch: str, model_type: str, **kw: Any) -> dict[str, Any]:
    cfg = {
        "architectures": [arch],
        "model_type": model_type,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        "vocab_size": 320,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "bfloat16",
    }
    cfg.update(kw)
    return cfg


def _dtypes(weights: dict[str, np.ndarray], dtype: str) -> dict[str, tuple[np.ndarray, str]]:
    return {k: (v, dtype) for k, v in weights.items()}


def _write(
    folder: Path,
    cfg: dict[str, Any],
    tensors: dict[str, tuple[np.ndarray, str]],
    shards: int = 1,
    generation: dict[str, Any] | None = None,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    folder.joinpath("config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    if generation is not None:
        folder.joinpath("generation_config.json").write_text(json.dumps(generation, indent=2), encoding="utf-8")
    if shards == 1:
        write_safetensors(folder / "model.safetensors", tensors)
        return
    names = list(tensors)
    weight_map = {}
    for s in range(shards):
        part = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        chunk = names[s::shards]
        write_safetensors(folder / part, {n: tensors[n] for n in chunk})
        weight_map.update({n: part for n in chunk})
    folder.joinpath("model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": dict(sorted(weight_map.items()))}, indent=2),
        encoding="utf-8",
    )


def tiny_llama_spm(folder: Path, starter: Path | None = None) -> None:
    """Llama 2 / TinyLlama style: SentencePiece, bf16, untied head, a generation config."""
    cfg = _base_cfg("LlamaForCausalLM", "llama")
    _write(
        folder,
        cfg,
        _dtypes(llama_like_weights(cfg, 1), "BF16"),
        generation={
            "bos_token_id": 1,
            "eos_token_id": 2,
            "temperature": 0.6,
            "top_p": 0.9,
            "repetition_penalty": 1.1,
            "do_sample": True,
        },
    )
    spm_tokenizer_files(folder)


def tiny_llama_bpe(folder: Path, starter: Path | None = None) -> None:
    """Llama 3.x / SmolLM2 style: SmolLM2's BPE tokenizer, tied embeddings, llama3 RoPE scaling."""
    assert starter is not None
    cfg = _base_cfg(
        "LlamaForCausalLM",
        "llama",
        hidden_size=16,
        intermediate_size=32,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=49152,
        tie_word_embeddings=True,
        rope_theta=500000.0,
        max_position_embeddings=131072,
        bos_token_id=1,
        eos_token_id=2,
        rope_scaling={
            "factor": 32.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
    )
    _write(folder, cfg, _dtypes(llama_like_weights(cfg, 2), "BF16"))
    smollm2_tokenizer_files(folder, starter)


def tiny_mistral_spm(folder: Path, starter: Path | None = None) -> None:
    """Mistral style: SentencePiece, f16, two shards with an index, sliding_window null."""
    cfg = _base_cfg(
        "MistralForCausalLM",
        "mistral",
        sliding_window=None,
        rope_theta=1000000.0,
        max_position_embeddings=32768,
        torch_dtype="float16",
    )
    _write(folder, cfg, _dtypes(llama_like_weights(cfg, 3), "F16"), shards=2)
    spm_tokenizer_files(folder)


def tiny_qwen2_spm(folder: Path, starter: Path | None = None) -> None:
    """Qwen2.5 style: q/k/v biases, tied embeddings, bf16. Tokenizer: SentencePiece, because a
    BPE tokenizer.json inside a qwen2 checkpoint is re-read by transformers as Qwen's own and we
    cannot build one whose llama.cpp hash is known (the real one has 151k tokens)."""
    cfg = _base_cfg(
        "Qwen2ForCausalLM",
        "qwen2",
        tie_word_embeddings=True,
        rope_theta=1000000.0,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        use_sliding_window=False,
        sliding_window=32768,
        max_window_layers=2,
    )
    _write(folder, cfg, _dtypes(llama_like_weights(cfg, 4, qkv_bias=True), "BF16"))
    spm_tokenizer_files(folder)


MODEL_CARD = """---
license: apache-2.0
language:
- en
- fr
pipeline_tag: text-generation
tags:
- chat
- tiny
base_model: Qwen/Qwen3-0.6B-Base
datasets:
- example/tiny-corpus
---

# Tiny Qwen3

A model card as the Hub has them: YAML front matter feeds general.* keys.
"""


def tiny_qwen3_spm(folder: Path, starter: Path | None = None) -> None:
    """Qwen3 style: q/k norms, explicit head_dim, f32 weights, SentencePiece tokenizer."""
    cfg = _base_cfg(
        "Qwen3ForCausalLM",
        "qwen3",
        head_dim=32,
        rope_theta=1000000.0,
        max_position_embeddings=40960,
        rms_norm_eps=1e-6,
        attention_bias=False,
        torch_dtype="float32",
    )
    _write(folder, cfg, _dtypes(llama_like_weights(cfg, 5, qk_norm=True), "F32"))
    spm_tokenizer_files(folder, add_bos=False)
    folder.joinpath("README.md").write_text(MODEL_CARD, encoding="utf-8")


def tiny_gemma2_spm(folder: Path, starter: Path | None = None) -> None:
    """Gemma 2 style: sandwich norms (stored as weight-1), soft-capping, tied head, bf16."""
    cfg = _base_cfg(
        "Gemma2ForCausalLM",
        "gemma2",
        head_dim=32,
        tie_word_embeddings=True,
        hidden_act=None,
        hidden_activation="gelu_pytorch_tanh",
        max_position_embeddings=8192,
        rms_norm_eps=1e-6,
        attn_logit_softcapping=50.0,
        final_logit_softcapping=30.0,
        sliding_window=4096,
        query_pre_attn_scalar=32,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    _write(folder, cfg, _dtypes(llama_like_weights(cfg, 6, sandwich_norms=True), "BF16"))
    spm_tokenizer_files(folder)


def tiny_gemma3_spm(folder: Path, starter: Path | None = None) -> None:
    """Gemma 3 (text) style: q/k norms, local/global RoPE bases, linear RoPE scaling, bf16."""
    cfg = _base_cfg(
        "Gemma3ForCausalLM",
        "gemma3_text",
        head_dim=32,
        tie_word_embeddings=True,
        hidden_act=None,
        hidden_activation="gelu_pytorch_tanh",
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        rope_local_base_freq=10000.0,
        rope_scaling={"factor": 8.0, "rope_type": "linear"},
        sliding_window=512,
        sliding_window_pattern=6,
        final_logit_softcapping=None,
        attn_logit_softcapping=None,
        query_pre_attn_scalar=32,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    _write(folder, cfg, _dtypes(llama_like_weights(cfg, 7, qk_norm=True, sandwich_norms=True), "BF16"))
    spm_tokenizer_files(folder)


def phi3_weights(cfg: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, ff, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = h // nh

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    out = {"model.embed_tokens.weight": w(v, h), "model.norm.weight": 1 + w(h), "lm_head.weight": w(v, h)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out[p + "input_layernorm.weight"] = 1 + w(h)
        out[p + "post_attention_layernorm.weight"] = 1 + w(h)
        out[p + "self_attn.qkv_proj.weight"] = w((nh + 2 * nkv) * hd, h)
        out[p + "self_attn.o_proj.weight"] = w(h, nh * hd)
        out[p + "mlp.gate_up_proj.weight"] = w(2 * ff, h)
        out[p + "mlp.down_proj.weight"] = w(h, ff)
    return out


PHI3_ADDED = [
    "<|endoftext|>",
    "<|assistant|>",
    "<|placeholder1|>",
    "<|placeholder2|>",
    "<|placeholder3|>",
    "<|placeholder4|>",
    "<|system|>",
    "<|end|>",
    "<|placeholder5|>",
    "<|placeholder6|>",
    "<|user|>",
]


def tiny_phi3_spm(folder: Path, starter: Path | None = None) -> None:
    """Phi-3 mini style: fused qkv and gate_up, LongRoPE factors (128k), no sliding window, bf16,
    Phi-3's added tokens after the SentencePiece pieces (in tokenizer_config.json and tokenizer.json)
    and a vocab_size padded past them, as microsoft/Phi-3-mini-128k-instruct has."""
    half = 64 // 4 // 2
    cfg = _base_cfg(
        "Phi3ForCausalLM",
        "phi3",
        num_key_value_heads=4,
        max_position_embeddings=131072,
        original_max_position_embeddings=4096,
        sliding_window=None,
        rope_theta=10000.0,
        vocab_size=352,
        rope_scaling={
            "type": "longrope",
            "long_factor": [1.0 + i / 4 for i in range(half)],
            "short_factor": [1.0 + i / 16 for i in range(half)],
        },
        pad_token_id=320,
        eos_token_id=320,
    )
    _write(folder, cfg, _dtypes(phi3_weights(cfg, 8), "BF16"))
    spm_tokenizer_files(folder)
    added = [
        {
            "id": 320 + i,
            "content": t,
            "special": i in (0, 7) or t.startswith("<|placeholder"),
            "lstrip": False,
            "rstrip": i != 0,
            "normalized": False,
            "single_word": False,
        }
        for i, t in enumerate(PHI3_ADDED)
    ]
    config = json.loads(folder.joinpath("tokenizer_config.json").read_text(encoding="utf-8"))
    config["added_tokens_decoder"].update({str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added})
    config.update(eos_token="<|endoftext|>", pad_token="<|endoftext|>", tokenizer_class="LlamaTokenizer")
    folder.joinpath("tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    folder.joinpath("tokenizer.json").write_text(
        json.dumps(
            {
                "version": "1.0",
                "added_tokens": added,
                "normalizer": None,
                "pre_tokenizer": None,
                "post_processor": None,
                "decoder": None,
                "model": {"type": "BPE", "vocab": {}, "merges": [], "byte_fallback": True},
            },
            indent=2,
        ),
        encoding="utf-8",
    )


MINIMAL_KEYS = (
    "architectures",
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_hidden_layers",
    "vocab_size",
)


def tiny_llama_minimal(folder: Path, starter: Path | None = None) -> None:
    """A config.json with only the structural keys: exercises the defaults transformers fills in."""
    full = _base_cfg("LlamaForCausalLM", "llama", num_key_value_heads=4)
    cfg = {k: full[k] for k in MINIMAL_KEYS}
    _write(folder, cfg, _dtypes(llama_like_weights(full, 9), "F16"))
    spm_tokenizer_files(folder)


def tiny_gemma3_minimal(folder: Path, starter: Path | None = None) -> None:
    """Gemma 3 with a structural-only config: head_dim 256, 4 kv heads, RoPE bases from defaults."""
    full = _base_cfg("Gemma3ForCausalLM", "gemma3_text", tie_word_embeddings=True, num_hidden_layers=1)
    cfg = {k: full[k] for k in MINIMAL_KEYS}
    _write(
        folder,
        cfg,
        _dtypes(llama_like_weights(full, 10, qk_norm=True, sandwich_norms=True, n_kv=4, head_dim=256), "BF16"),
    )
    spm_tokenizer_files(folder)


# name -> (recipe, outtypes to compare)
RECIPES: dict[str, tuple[Callable[..., None], tuple[str, ...]]] = {
    "tiny-llama-spm": (tiny_llama_spm, ("f16", "bf16", "f32")),
    "tiny-llama-bpe": (tiny_llama_bpe, ("f16",)),
    "tiny-mistral-spm": (tiny_mistral_spm, ("f16",)),
    "tiny-qwen2-spm": (tiny_qwen2_spm, ("bf16",)),
    "tiny-qwen3-spm": (tiny_qwen3_spm, ("f16",)),
    "tiny-gemma2-spm": (tiny_gemma2_spm, ("f16",)),
    "tiny-gemma3-spm": (tiny_gemma3_spm, ("bf16",)),
    "tiny-phi3-spm": (tiny_phi3_spm, ("f16",)),
    "tiny-llama-minimal": (tiny_llama_minimal, ("f16",)),
    "tiny-gemma3-minimal": (tiny_gemma3_minimal, ("f16",)),
}


def ref_path(name: str, outtype: str) -> Path:
    return REFS / f"{name}.{outtype}.gguf"


# ---- a checkpoint made from the starter model ---------------------------------------------------

_HF_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def permute_to_hf(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's interleaved RoPE row order (the inverse of what the converter does)."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def starter_checkpoint(folder: Path, starter: Path) -> dict[str, np.ndarray]:
    """SmolLM2-135M-Instruct as a Hugging Face checkpoint: the starter GGUF's tensors dequantized
    to float32 and stored as F16 (norms F32), q/k rows put back in Hugging Face order.
    Returns the GGUF-named float32 arrays the converted file must hold (as F16, norms F32)."""
    import gguf

    from quantdesk import kquant  # the app's native dequantizer: fast, and any fixed weights will do
    from quantdesk.core.gguf.index import read_index

    idx = read_index(starter)
    meta = {k: kv.value for k, kv in idx.fields.items()}
    n_head, n_kv = meta["llama.attention.head_count"], meta["llama.attention.head_count_kv"]
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "hidden_size": meta["llama.embedding_length"],
        "intermediate_size": meta["llama.feed_forward_length"],
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "num_hidden_layers": meta["llama.block_count"],
        "vocab_size": meta["llama.vocab_size"],
        "max_position_embeddings": meta["llama.context_length"],
        "rms_norm_eps": 1e-5,
        "rope_theta": meta["llama.rope.freq_base"],
        "tie_word_embeddings": True,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 2,
        "torch_dtype": "float16",
    }
    expected: dict[str, np.ndarray] = {}
    tensors: dict[str, tuple[np.ndarray, str]] = {}
    raw = np.memmap(starter, dtype=np.uint8, mode="r")
    for t in idx.tensors:
        shape = [int(d) for d in reversed(t.shape)]
        blob = raw[t.offset : t.offset + t.nbytes]
        if t.type == gguf.GGMLQuantizationType.F32:
            data = np.frombuffer(blob, dtype="<f4").reshape(shape).copy()
        else:
            data = kquant.dequantize(blob, t.type.name, (shape[0], shape[1]))
        is_norm = t.name.endswith("norm.weight")
        stored = data if is_norm else data.astype(np.float16)
        expected[t.name] = stored.astype(np.float32)
        if t.name == "token_embd.weight":
            hf = "model.embed_tokens.weight"
        elif t.name == "output_norm.weight":
            hf = "model.norm.weight"
        else:
            _, bid, kind, _ = t.name.split(".")
            hf = f"model.layers.{bid}.{_HF_NAMES[kind]}.weight"
            if kind == "attn_q":
                stored = permute_to_hf(stored, n_head)
            elif kind == "attn_k":
                stored = permute_to_hf(stored, n_kv)
        tensors[hf] = (stored, "F32" if is_norm else "F16")
    _write(folder, cfg, tensors)
    smollm2_tokenizer_files(folder, starter)
    return expected


# ---- tokenizer configurations for SpecialVocab (compared with llama.cpp's gguf-py) -------------


def _tok_json(
    added: list[str],
    post: dict[str, Any] | None,
    normalizer: dict[str, Any] | None = None,
    merges: list[Any] | None = None,
) -> dict[str, Any]:
    vocab = {t: i for i, t in enumerate(added + ["a", "b", "ab", "c d", "x"])}
    return {
        "version": "1.0",
        "normalizer": normalizer,
        "post_processor": post,
        "added_tokens": [
            {
                "id": i,
                "content": t,
                "special": True,
                "normalized": False,
                "lstrip": False,
                "rstrip": False,
                "single_word": False,
            }
            for i, t in enumerate(added)
        ],
        "model": {"type": "BPE", "vocab": vocab, "merges": merges if merges is not None else ["a b"]},
    }


def _template(single: list[str], pair: list[str]) -> dict[str, Any]:
    def items(seq: list[str]) -> list[dict[str, Any]]:
        return [
            {"Sequence": {"id": x, "type_id": 0}} if x in ("A", "B") else {"SpecialToken": {"id": x, "type_id": 0}}
            for x in seq
        ]

    return {"type": "TemplateProcessing", "single": items(single), "pair": items(pair), "special_tokens": {}}


_L3 = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
SPECIAL_VOCAB_CASES: dict[str, dict[str, Any]] = {
    "llama3": {
        "tokenizer.json": _tok_json(
            _L3,
            {
                "type": "Sequence",
                "processors": [
                    {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
                    _template(["<|begin_of_text|>", "A"], ["<|begin_of_text|>", "A", "<|begin_of_text|>", "B"]),
                ],
            },
        ),
        "tokenizer_config.json": {
            "bos_token": "<|begin_of_text|>",
            "eos_token": "<|eot_id|>",
            "chat_template": "{{ x }}",
        },
        "config.json": {"bos_token_id": 0, "eos_token_id": [1, 2]},
    },
    "bos-eos-template": {
        "tokenizer.json": _tok_json(
            _L3,
            _template(
                ["<|begin_of_text|>", "A", "<|end_of_text|>"],
                ["<|begin_of_text|>", "A", "<|end_of_text|>", "B", "<|end_of_text|>"],
            ),
        ),
        "tokenizer_config.json": {
            "bos_token": "<|begin_of_text|>",
            "eos_token": "<|end_of_text|>",
            "add_bos_token": False,
        },
    },
    "eos-differs-from-template": {
        "tokenizer.json": _tok_json(_L3, _template(["<|begin_of_text|>", "A", "<|end_of_text|>"], [])),
        "tokenizer_config.json": {"bos_token": {"content": "<|begin_of_text|>"}, "eos_token": "<|eot_id|>"},
    },
    "sep-pair": {
        "tokenizer.json": _tok_json(
            ["[CLS]", "[SEP]", "[PAD]"], _template(["[CLS]", "A", "[SEP]"], ["[CLS]", "A", "[SEP]", "B", "[SEP]"])
        ),
        "tokenizer_config.json": {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]"},
    },
    "roberta": {
        "tokenizer.json": _tok_json(
            ["<s>", "</s>", "<pad>"], {"type": "RobertaProcessing", "sep": ["</s>", 1], "cls": ["<s>", 0]}
        ),
        "tokenizer_config.json": {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"},
    },
    "jinja-templates-normalizer-pair-merges": {
        "tokenizer.json": _tok_json(
            ["<|im_start|>", "<|im_end|>"],
            None,
            normalizer={"type": "Sequence", "normalizers": [{"type": "Lowercase"}, {"type": "StripAccents"}]},
            merges=[["a", "b"], ["c d", "x"]],
        ),
        "tokenizer_config.json": {"eos_token": "<|im_end|>", "add_eos_token": True},
        "chat_template.jinja": "{{ main }}",
        "additional_chat_templates/tool_use.jinja": "{{ tools }}",
    },
    "sentencepiece-only": {
        "tokenizer_config.json": {
            "bos_token": "<s>",
            "add_bos_token": False,
            "add_eos_token": True,
            "chat_template": [{"name": "default", "template": "{{ a }}"}],
        },
        "config.json": {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0},
    },
}


def special_vocab_case(folder: Path, name: str) -> None:
    for rel, content in SPECIAL_VOCAB_CASES[name].items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")


SPECIAL_VOCAB_EXPECTED = HERE / "special_vocab_expected.json"


# ---- real BPE tokenizers (Llama 3, Qwen2), rebuilt from llama.cpp's vocab-only GGUFs --------------
# Those GGUFs (vendor/llama.cpp/models/ggml-vocab-*.gguf in the llama-cpp-python sdist) are too big
# to check in, so these recipes run only where the sdist is unpacked (QUANTDESK_LLAMA_CPP), and the
# reference output is checked in as a fingerprint (sha256 of every key and tensor) instead of a file.
# Rebuilt this way, both give llama.cpp's own pre-tokenizer hash ("llama-bpe", "qwen2").

_LLAMA3_REGEX = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)
_QWEN2_REGEX = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)


def _bpe_from_vocab_gguf(
    folder: Path,
    vocab_gguf: Path,
    regex: str,
    normalizer: dict[str, Any] | None,
    post: dict[str, Any],
    ignore_merges: bool,
    config: dict[str, Any],
) -> None:
    from quantdesk.core.gguf.index import read_index

    idx = read_index(vocab_gguf)
    tokens = _gguf_string_array(vocab_gguf, "tokenizer.ggml.tokens")
    merges = _gguf_string_array(vocab_gguf, "tokenizer.ggml.merges")
    kv = idx.fields["tokenizer.ggml.token_type"]
    with vocab_gguf.open("rb") as f:
        f.seek(kv.end - 4 * kv.count)
        types = np.frombuffer(f.read(4 * kv.count), dtype="<i4")
    added = [
        {
            "id": i,
            "content": t,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": int(types[i]) == 3,
        }
        for i, t in enumerate(tokens)
        if types[i] in (3, 4)
    ]
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": ignore_merges,
            "vocab": {t: i for i, t in enumerate(tokens) if types[i] in (1, 6)},
            "merges": [m.split(" ") for m in merges],
        },
    }
    folder.mkdir(parents=True, exist_ok=True)
    folder.joinpath("tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    config = {
        **config,
        "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added},
    }
    folder.joinpath("tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def tiny_llama3_real_bpe(folder: Path, llama_cpp: Path) -> None:
    """Llama 3.2 style: Llama 3's 128k tokenizer (BOS added by a TemplateProcessing), llama3 RoPE."""
    bos = {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}
    post = {
        "type": "Sequence",
        "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {
                "type": "TemplateProcessing",
                "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [
                    bos,
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                    {"Sequence": {"id": "B", "type_id": 1}},
                ],
                "special_tokens": {
                    "<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000], "tokens": ["<|begin_of_text|>"]}
                },
            },
        ],
    }
    cfg = _base_cfg(
        "LlamaForCausalLM",
        "llama",
        hidden_size=16,
        intermediate_size=32,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=128256,
        tie_word_embeddings=True,
        rope_theta=500000.0,
        max_position_embeddings=131072,
        bos_token_id=128000,
        eos_token_id=[128001, 128008, 128009],
        head_dim=8,
        rope_scaling={
            "factor": 32.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
    )
    _write(
        folder,
        cfg,
        _dtypes(llama_like_weights(cfg, 11), "BF16"),
        generation={"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "temperature": 0.6, "top_p": 0.9},
    )
    _bpe_from_vocab_gguf(
        folder,
        llama_cpp / "models" / "ggml-vocab-llama-bpe.gguf",
        _LLAMA3_REGEX,
        None,
        post,
        True,
        {
            "bos_token": "<|begin_of_text|>",
            "eos_token": "<|eot_id|>",
            "chat_template": CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": True,
            "model_max_length": 131072,
            "tokenizer_class": "PreTrainedTokenizerFast",
        },
    )


def tiny_qwen2_real_bpe(folder: Path, llama_cpp: Path) -> None:
    """Qwen2.5 style with Qwen2's real 152k tokenizer (NFC normalizer, Qwen regex), q/k/v biases."""
    cfg = _base_cfg(
        "Qwen2ForCausalLM",
        "qwen2",
        hidden_size=16,
        intermediate_size=32,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=151936,
        tie_word_embeddings=True,
        rope_theta=1000000.0,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        use_sliding_window=False,
        sliding_window=32768,
        max_window_layers=2,
        bos_token_id=151643,
        eos_token_id=151645,
    )
    _write(
        folder,
        cfg,
        _dtypes(llama_like_weights(cfg, 12, qkv_bias=True), "BF16"),
        generation={
            "bos_token_id": 151643,
            "eos_token_id": [151645, 151643],
            "repetition_penalty": 1.05,
            "temperature": 0.7,
            "top_p": 0.8,
            "top_k": 20,
        },
    )
    post = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    _bpe_from_vocab_gguf(
        folder,
        llama_cpp / "models" / "ggml-vocab-qwen2.gguf",
        _QWEN2_REGEX,
        {"type": "NFC"},
        post,
        False,
        {
            "bos_token": None,
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "chat_template": CHAT_TEMPLATE,
            "errors": "replace",
            "model_max_length": 131072,
            "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer",
        },
    )


# name -> (recipe(folder, llama_cpp_dir), outtype); compared by fingerprint
SDIST_RECIPES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "tiny-llama3-real-bpe": (tiny_llama3_real_bpe, "bf16"),
    "tiny-qwen2-real-bpe": (tiny_qwen2_real_bpe, "f16"),
}
FINGERPRINTS = HERE / "fingerprints"


def fingerprint(path: Path) -> dict[str, Any]:
    """sha256 of every key (raw bytes, in order) and every tensor (name, type, shape, bytes) of a GGUF."""
    import hashlib

    from quantdesk.core.gguf.index import read_index

    idx = read_index(path)
    raw = path.read_bytes()
    return {
        "size": len(raw),
        "kv": [[k, int(kv.type), hashlib.sha256(raw[kv.start : kv.end]).hexdigest()] for k, kv in idx.fields.items()],
        "tensors": [
            [t.name, int(t.type), list(t.shape), hashlib.sha256(raw[t.offset : t.offset + t.nbytes]).hexdigest()]
            for t in idx.tensors
        ],
    }
