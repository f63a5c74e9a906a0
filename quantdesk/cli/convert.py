"""`quantdesk convert CHECKPOINT_DIR OUT.gguf [--outtype f16]`: a Hugging Face checkpoint to GGUF."""

from __future__ import annotations

import argparse
import sys

from quantdesk.core.jobs import Cancelled
from quantdesk.core.units import human_bytes


def add_parser(sub: argparse._SubParsersAction) -> None:
    from quantdesk.core.convert import supported_architectures

    p = sub.add_parser(
        "convert",
        help="convert a Hugging Face safetensors checkpoint to GGUF",
        description="Convert a Hugging Face checkpoint folder (config.json, safetensors, tokenizer) to "
        "the GGUF file llama.cpp's convert_hf_to_gguf.py would write, optionally quantized. "
        "Supported: " + ", ".join(supported_architectures()) + ".",
    )
    p.add_argument("checkpoint", help="checkpoint folder")
    p.add_argument("output", help="output .gguf (must not exist unless --overwrite)")
    p.add_argument(
        "--outtype",
        default="f16",
        metavar="TYPE",
        help="f16 (default), bf16, f32, or a quantization level such as Q4_K_M or Q8_0",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from quantdesk.cli.progress import run_job
    from quantdesk.core.convert import ConvertRequest, convert_job

    request = ConvertRequest(args.checkpoint, args.output, args.outtype, overwrite=args.overwrite)
    try:
        result = run_job(convert_job(request))
    except Cancelled:
        print("quantdesk: cancelled; nothing was written", file=sys.stderr)
        return 130
    print(
        f"{result.output}: {result.architecture}, {result.outtype}, {result.n_tensors} tensors, "
        f"{human_bytes(result.output_bytes)}"
    )
    return 0
