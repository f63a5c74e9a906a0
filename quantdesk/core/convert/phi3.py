"""Phi-3 checkpoints (Phi3MiniModel in llama.cpp): fused qkv and gate_up projections, LongRoPE.

What differs: Phi-3 writes its own list of keys (original context length, partial RoPE
dimension, sliding window 0 when none); LongRoPE checkpoints (128k) get rope_factors_long /
rope_factors_short tensors and an attention factor key, which the reference adds while listing
tensors, i.e. before all other metadata; its SentencePiece export treats added tokens its own way.
"""

from __future__ import annotations

import math
from typing import Any

import gguf
import numpy as np

from quantdesk.core.convert import vocab
from quantdesk.core.convert.errors import ConvertError
from quantdesk.core.convert.family import Family, PlannedTensor, is_float32
from quantdesk.core.errors import printable


class Phi3Family(Family):
    hf_architectures = ("Phi3ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.PHI3
    needed_keys = ("intermediate_size", "num_key_value_heads", "rms_norm_eps")
    config_defaults = {
        "max_position_embeddings": 4096,
        "original_max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "vocab_size": 32064,
    }

    def rope_parameters(self, hp: dict[str, Any]) -> dict[str, Any]:
        rope = super().rope_parameters(hp)
        rope.setdefault("partial_rotary_factor", 1.0)
        return rope

    def check_values(self) -> None:
        """LongRoPE's factor lists too: a string, a nested list or a null inside reached numpy."""
        super().check_values()
        # Phi-3 reads both (the second through the RoPE settings, which take it from config.json)
        for key, value in (
            ("max_position_embeddings", self.hp.get("max_position_embeddings")),
            ("original_max_position_embeddings", self.rope.get("original_max_position_embeddings")),
        ):
            if value is None:
                raise ConvertError(f"config.json: {key} is missing (or null)")
        for key in ("long_factor", "short_factor"):
            value = self.rope.get(key)
            if value is not None and (not isinstance(value, list) or not all(map(is_float32, value))):
                raise ConvertError(f"config.json: rope_scaling.{key} should be a list of numbers, not {value!r:.60}")

    def _rope_dims(self) -> int:
        hp = self.hp
        return int(self.rope.get("partial_rotary_factor", 1.0) * hp["hidden_size"]) // hp["num_attention_heads"]

    def set_parameters(self, w: gguf.GGUFWriter, ftype: gguf.LlamaFileType) -> None:
        hp = self.hp
        w.add_context_length(hp["max_position_embeddings"])
        w.add_rope_scaling_orig_ctx_len(self.rope["original_max_position_embeddings"])
        w.add_embedding_length(hp["hidden_size"])
        w.add_feed_forward_length(hp["intermediate_size"])
        w.add_block_count(self.block_count)
        w.add_head_count(hp["num_attention_heads"])
        w.add_head_count_kv(hp["num_key_value_heads"])
        w.add_layer_norm_rms_eps(hp["rms_norm_eps"])
        w.add_rope_dimension_count(self._rope_dims())
        w.add_rope_freq_base(self.rope["rope_theta"])
        w.add_file_type(ftype)
        w.add_sliding_window(hp.get("sliding_window") or 0)

    def set_vocab(self, w: gguf.GGUFWriter) -> None:
        config = self.folder / "tokenizer_config.json"
        if config.is_file() and vocab.read_json(config).get("tokenizer_class") == "GPT2Tokenizer":
            vocab.write_bpe(w, self.folder, self.hp.get("vocab_size"))  # Phi-4
            return
        vocab.write_sentencepiece(w, self.folder, self.hp.get("vocab_size"), phi3=True)

    def check_tokenizer(self) -> None:
        config = self.folder / "tokenizer_config.json"
        if config.is_file() and vocab.read_json(config).get("tokenizer_class") == "GPT2Tokenizer":
            return
        if not (self.folder / "tokenizer.model").is_file():
            raise ConvertError(f"{self.folder.name}: no tokenizer.model (Phi-3 needs its SentencePiece model)")

    def early_keys(self, w: gguf.GGUFWriter) -> None:
        if self.rope.get("long_factor"):
            w.add_rope_scaling_attn_factors(self._attn_factor())

    def _attn_factor(self) -> float:
        orig = self.rope["original_max_position_embeddings"]  # a whole number >= 1 (check_values)
        if orig < 2:  # the factor divides by log(orig)
            raise ConvertError(f"config.json: original_max_position_embeddings is {orig}; LongRoPE needs at least 2")
        scale = self.hp["max_position_embeddings"] / orig
        kind = str(self.rope.get("rope_type", "")).lower()
        if kind in ("su", "longrope"):
            return math.sqrt(1 + math.log(scale) / math.log(orig)) if scale > 1.0 else 1.0
        if kind == "yarn":
            return 0.1 * math.log(scale) + 1.0 if scale > 1.0 else 1.0
        raise ConvertError(f"Phi-3 RoPE scaling type {printable(kind or '(missing)')} is not supported")

    def extra_tensors(self) -> list[PlannedTensor]:
        long, short = self.rope.get("long_factor"), self.rope.get("short_factor")
        if not long:
            return []
        self._attn_factor()  # refuses unknown scaling types before anything is written
        if short is None or len(long) != len(short) or len(long) != self._rope_dims() / 2:
            raise ConvertError(f"config.json: rope long/short factors must both have {self._rope_dims() // 2} values")
        out = []
        for key, values in ((gguf.MODEL_TENSOR.ROPE_FACTORS_LONG, long), (gguf.MODEL_TENSOR.ROPE_FACTORS_SHORT, short)):
            arr = np.array(values, dtype=np.float32)
            out.append(PlannedTensor(gguf.TENSOR_NAMES[key] + ".weight", arr.shape, None, generated=arr))
        return out
