"""Qwen2 / Qwen2.5 and Qwen3 checkpoints (Qwen2Model / Qwen3Model in llama.cpp).

No RoPE permutation (Qwen's GGUF architectures use the NEOX rotation), q/k/v biases on Qwen2,
q/k norms on Qwen3; everything else is the shared Family.
"""

from __future__ import annotations

from typing import Any

import gguf

from quantdesk.core.convert.errors import ConvertError
from quantdesk.core.convert.family import Family


class Qwen2Family(Family):
    hf_architectures = ("Qwen2ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.QWEN2
    config_defaults = {
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "vocab_size": 151936,
        "num_key_value_heads": 32,
    }

    def check_tokenizer(self) -> None:
        super().check_tokenizer()
        if (self.folder / "modules.json").is_file():
            raise ConvertError(
                "this is a sentence-transformers (embedding) checkpoint; only chat/text models are supported"
            )


class Qwen3Family(Qwen2Family):
    hf_architectures = ("Qwen3ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.QWEN3
    config_defaults = {**Qwen2Family.config_defaults, "head_dim": 128}

    def hyperparameters(self, config: dict[str, Any]) -> dict[str, Any]:
        hp = super().hyperparameters(config)
        readme = self.folder / "README.md"
        text = readme.read_text(encoding="utf-8", errors="replace").lower() if readme.is_file() else ""
        if (
            "qwen3-reranker" in (self.folder.name.lower() + str(hp.get("_name_or_path", "")).lower())
            or "# qwen3-reranker" in text
        ):
            raise ConvertError("Qwen3 reranker checkpoints are not supported (only chat/text models)")
        return hp
