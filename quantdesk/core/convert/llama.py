"""Llama-family checkpoints: Llama 2/3.x, SmolLM2, TinyLlama, Mistral (LlamaModel in llama.cpp).

What differs from the shared Family: q_proj/k_proj rows are permuted back from Hugging Face's
rotate-half RoPE layout to the interleaved one llama.cpp uses; Llama 3.1+ RoPE scaling becomes
a rope_freqs tensor; vocab_size and the RoPE dimension are written; SentencePiece is preferred
when tokenizer.model exists; a 49152-token vocabulary (SmolLM2, Granite small) gets add_bos false.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gguf
import numpy as np

from quantdesk.core.convert import vocab
from quantdesk.core.convert.errors import ConvertError
from quantdesk.core.convert.family import Family, PlannedTensor, Transform, llama3_rope_factors
from quantdesk.core.convert.safetensors_file import LazyTensor


def unpermute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Hugging Face stores each head's rotary pairs as two halves; llama.cpp wants them interleaved."""
    shape = w.shape
    return w.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


class LlamaFamily(Family):
    hf_architectures: ClassVar[tuple[str, ...]] = ("LlamaForCausalLM", "LLaMAForCausalLM")
    gguf_arch = gguf.MODEL_ARCH.LLAMA
    # transformers' LlamaConfig defaults (head_dim: hidden_size / heads, filled in hyperparameters)
    config_defaults = {
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "vocab_size": 32000,
    }

    def hyperparameters(self, config: dict[str, Any]) -> dict[str, Any]:
        hp = super().hyperparameters(config)
        if hp.get("head_dim") is None:
            hp["head_dim"] = hp["hidden_size"] // hp["num_attention_heads"]
        return hp

    def set_parameters(self, w: gguf.GGUFWriter, ftype: gguf.LlamaFileType) -> None:
        super().set_parameters(w, ftype)
        w.add_vocab_size(self.hp["vocab_size"])
        w.add_rope_dimension_count(self.hp.get("head_dim") or self.hp["hidden_size"] // self.hp["num_attention_heads"])

    def set_vocab(self, w: gguf.GGUFWriter) -> None:
        config_file = self.folder / "tokenizer_config.json"
        if config_file.is_file():
            tok_config = vocab.read_json(config_file)
            if (add_prefix_space := tok_config.get("add_prefix_space")) is not None:
                w.add_add_space_prefix(add_prefix_space)
        super().set_vocab(w)
        if self.hp.get("vocab_size", 32000) == 49152:
            # the reference does this for Granite small / SmolLM2 vocabularies, replacing the value
            # in place when the tokenizer already set one (without gguf's "duplicated key" warning)
            key = gguf.Keys.Tokenizer.ADD_BOS
            w.kv_data[0][key] = gguf.gguf_writer.GGUFValue(False, gguf.GGUFValueType.BOOL)

    def keep(self, name: str) -> str | None:
        kept = super().keep(name)
        return kept.replace("text_model.", "") if kept is not None else None

    row_local_transforms = False  # the q/k permutation moves rows within each head

    def transform(self, hf_name: str, gguf_name: str, t: LazyTensor) -> Transform | None:
        n_head = self.hp["num_attention_heads"]
        n_kv = self.hp.get("num_key_value_heads") or n_head
        if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            heads, key = n_head, "num_attention_heads"
        elif hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            heads, key = n_kv, "num_key_value_heads"
        else:
            return None
        if not isinstance(heads, int) or heads <= 0 or not t.shape or t.shape[0] % (2 * heads):
            rows = t.shape[0] if t.shape else 1
            raise ConvertError(f"{hf_name}: {rows} rows cannot be split into {heads!r} heads ({key} in config.json)")
        return lambda a: unpermute_rows(a, heads)

    def extra_tensors(self) -> list[PlannedTensor]:
        rope = self.rope.get("full_attention", self.rope)
        if str(rope.get("rope_type", "")).lower() != "llama3":
            return []
        head_dim = self.hp.get("head_dim") or self.hp["hidden_size"] // self.hp["num_attention_heads"]
        try:
            factors = llama3_rope_factors(rope, head_dim)
        except (TypeError, ValueError, ZeroDivisionError):
            raise ConvertError(
                "config.json: rope_scaling of type llama3 needs numbers for factor, low_freq_factor, "
                "high_freq_factor and original_max_position_embeddings, and a whole head_dim"
            ) from None
        name = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight"
        return [PlannedTensor(name, factors.shape, None, generated=factors)]


class MistralFamily(LlamaFamily):
    """MistralForCausalLM converts exactly like Llama; only transformers' defaults differ."""

    hf_architectures = ("MistralForCausalLM",)
    config_defaults = {
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "vocab_size": 32000,
        "num_key_value_heads": 8,
    }
