"""Hugging Face safetensors checkpoints to GGUF, without torch: the file convert_hf_to_gguf.py writes.

Public face (for the CLI and the app's pages):
    convert_job(ConvertRequest(source=folder, output=path, outtype="f16" | "bf16" | "f32" | "Q4_K_M" ...))
        -> Job[ConvertResult], stages "Converting" then (for quant levels) "Quantizing".
    is_checkpoint(folder) -> bool (cheap: config.json + safetensors present);
    describe_checkpoint(folder) -> CheckpointInfo (architecture, parameters, dtypes, size, and
        `problem`: the one-line reason it cannot be converted, or None);
    supported_architectures() -> list[str]; ConvertError.
Modules: safetensors_file (lazy reading, validation), vocab (tokenizers), family (shared
architecture logic), llama / qwen (families), converter (the job), bpe_pre (llama.cpp's hash table).
"""

from quantdesk.core.convert.converter import (
    CheckpointInfo,
    ConvertRequest,
    ConvertResult,
    convert,
    convert_job,
    describe_checkpoint,
    is_checkpoint,
    supported_architectures,
)
from quantdesk.core.convert.errors import ConvertError

__all__ = [
    "CheckpointInfo",
    "describe_checkpoint",
    "ConvertError",
    "ConvertRequest",
    "ConvertResult",
    "convert",
    "convert_job",
    "is_checkpoint",
    "supported_architectures",
]
