"""Gemma 2 and Gemma 3 (text) checkpoints (Gemma2Model / Gemma3Model in llama.cpp).

What differs: Gemma's RMSNorm multiplies by (1 + weight), llama.cpp by weight, so every
"*norm.weight" gets +1 on the way (computed in the checkpoint's precision, as the reference
does with torch); Gemma 2 writes its own short list of keys (soft-capping, sliding window);
Gemma 3 writes the shared keys and then overrides some with its own defaults; both say
add_space_prefix false after the SentencePiece vocabulary; Gemma 2 ignores lm_head (tied).
"""

from __future__ import annotations

from typing import Any

import gguf
import numpy as np

from quantdesk.core.convert import vocab
from quantdesk.core.convert.errors import ConvertError
from quantdesk.core.convert.family import Family, PlannedTensor, Transform, rope_object
from quantdesk.core.convert.safetensors_file import LazyTensor


def plus_one(a: np.ndarray) -> np.ndarray:
    return a + a.dtype.type(1)


class Gemma2Family(Family):
    hf_architectures = ("Gemma2ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.GEMMA2
    needed_keys = (
        "max_position_embeddings",
        "intermediate_size",
        "rms_norm_eps",
        "head_dim",
        "attn_logit_softcapping",
        "final_logit_softcapping",
        "sliding_window",
    )
    config_defaults = {
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-6,
        "head_dim": 256,
        "rope_theta": 10000.0,
        "vocab_size": 256000,
        "num_key_value_heads": 4,
        "sliding_window": 4096,
        "final_logit_softcapping": 30.0,
        "attn_logit_softcapping": 50.0,
    }

    def set_parameters(self, w: gguf.GGUFWriter, ftype: gguf.LlamaFileType) -> None:
        hp = self.hp
        w.add_context_length(hp["max_position_embeddings"])
        w.add_embedding_length(hp["hidden_size"])
        w.add_block_count(self.block_count)
        w.add_feed_forward_length(hp["intermediate_size"])
        w.add_head_count(hp["num_attention_heads"])
        w.add_head_count_kv(hp.get("num_key_value_heads") or hp["num_attention_heads"])
        w.add_layer_norm_rms_eps(hp["rms_norm_eps"])
        w.add_key_length(hp["head_dim"])
        w.add_value_length(hp["head_dim"])
        w.add_file_type(ftype)
        w.add_attn_logit_softcapping(hp["attn_logit_softcapping"])
        w.add_final_logit_softcapping(hp["final_logit_softcapping"])
        w.add_sliding_window(hp["sliding_window"])

    def set_vocab(self, w: gguf.GGUFWriter) -> None:
        vocab.write_sentencepiece(w, self.folder, self.hp.get("vocab_size"))
        w.add_add_space_prefix(False)

    def check_tokenizer(self) -> None:
        if vocab.tokenizer_kind(self.folder) != "spm":
            raise ConvertError("Gemma 2 checkpoints need tokenizer.model (SentencePiece)")

    def keep(self, name: str) -> str | None:
        return None if name == "lm_head.weight" else super().keep(name)

    def transform(self, hf_name: str, gguf_name: str, t: LazyTensor) -> Transform | None:
        return plus_one if hf_name.endswith("norm.weight") else None


class Gemma3Family(Family):
    hf_architectures = ("Gemma3ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.GEMMA3
    config_defaults = {
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-6,
        "head_dim": 256,
        "rope_theta": 1000000.0,
        "vocab_size": 262208,
        "num_key_value_heads": 4,
        "sliding_window": 4096,
    }

    def rope_parameters(self, hp: dict[str, Any]) -> dict[str, Any]:
        """transformers keeps separate RoPE settings for sliding and full attention layers."""
        rope = rope_object(hp, "rope_parameters")  # a list or a string here was a traceback
        if "full_attention" in rope or "sliding_attention" in rope:
            return rope
        full = rope_object(hp, "rope_scaling")
        if "rope_type" not in full:
            full["rope_type"] = full.pop("type", "default")
        full["rope_theta"] = hp.get("rope_theta", 1000000.0)
        local = {"rope_type": "default", "rope_theta": hp.get("rope_local_base_freq", 10000.0)}
        return {"sliding_attention": local, "full_attention": full}

    def set_parameters(self, w: gguf.GGUFWriter, ftype: gguf.LlamaFileType) -> None:
        super().set_parameters(w, ftype)
        hp = self.hp
        w.add_context_length(hp.get("max_position_embeddings", 131072))
        w.add_head_count(hp.get("num_attention_heads", 8))
        w.add_layer_norm_rms_eps(hp.get("rms_norm_eps", 1e-6))
        w.add_key_length(hp.get("head_dim", 256))
        w.add_value_length(hp.get("head_dim", 256))
        w.add_rope_freq_base(self.rope.get("full_attention", self.rope).get("rope_theta", 1_000_000.0))
        if softcap := hp.get("final_logit_softcapping"):
            w.add_final_logit_softcapping(softcap)
        if hp.get("sliding_window_pattern") != 1:
            w.add_sliding_window(hp["sliding_window"])
        w.add_head_count_kv(hp.get("num_key_value_heads", 4))

    def set_vocab(self, w: gguf.GGUFWriter) -> None:
        if vocab.tokenizer_kind(self.folder) == "spm":
            vocab.write_sentencepiece(w, self.folder, self.hp.get("vocab_size"))
            w.add_add_space_prefix(False)
        else:
            vocab.write_bpe(w, self.folder, self.hp.get("vocab_size"))

    def n_vocab_real(self) -> int:
        """Rows of token_embd kept: the reference drops rows past the tokenizer's vocabulary."""
        if vocab.tokenizer_kind(self.folder) == "spm":
            return len(vocab.sentencepiece_vocab(self.folder, self.hp.get("vocab_size"))[0])
        tok = vocab.read_json(self.folder / "tokenizer.json")
        model, added = tok.get("model"), tok.get("added_tokens") or []
        if not isinstance(model, dict) or not isinstance(model.get("vocab"), dict) or not isinstance(added, list):
            raise ConvertError("tokenizer.json: malformed (model.vocab should be an object, added_tokens a list)")
        return len(model["vocab"]) + len(added)

    def plan_tensor(self, name: str, t: LazyTensor) -> list[PlannedTensor]:
        planned = super().plan_tensor(name, t)
        if "embed_tokens.weight" in name:
            rows = min(self.n_vocab_real(), t.shape[0])
            planned[0].shape = (rows, *t.shape[1:])
            planned[0].rows = rows
        return planned

    def transform(self, hf_name: str, gguf_name: str, t: LazyTensor) -> Transform | None:
        return plus_one if hf_name.endswith("norm.weight") else None
