"""`quantdesk quantize IN.gguf OUT.gguf --type Q4_K_M`: the same bytes llama-quantize writes, faster."""

from __future__ import annotations

import argparse
import sys

from quantdesk.core.errors import QuantdeskError, UsageError, describe_os_error
from quantdesk.core.jobs import Cancelled
from quantdesk.core.quantize.plan import FILE_TYPES
from quantdesk.core.quantize.run import QuantizeRequest, quantize_job
from quantdesk.core.units import human_bytes, human_duration


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quantize",
        help="quantize a GGUF model to a level such as Q4_K_M",
        description="Quantize a GGUF model file (F32/F16/BF16 weights) to a k-quant level. "
        "The output is byte-identical to llama.cpp's llama-quantize.",
    )
    p.add_argument("source", help="input .gguf (F32, F16 or BF16 weights)")
    p.add_argument("output", help="output .gguf (must not exist unless --overwrite)")
    p.add_argument("--type", "-t", dest="level", required=True, metavar="LEVEL", help="level: " + ", ".join(FILE_TYPES))
    p.add_argument("--threads", type=int, default=None, help="kernel threads (default: all cores)")
    p.add_argument("--imatrix", metavar="FILE", help="importance matrix (.imatrix.gguf or legacy .dat)")
    p.add_argument(
        "--allow-requantize",
        action="store_true",
        help="accept an already quantized source (dequantized first; loses quality)",
    )
    p.add_argument("--output-tensor-type", metavar="T", help="type for output.weight (e.g. q8_0)")
    p.add_argument("--token-embedding-type", metavar="T", help="type for token_embd.weight")
    p.add_argument(
        "--tensor-type",
        action="append",
        default=[],
        metavar="REGEX=T",
        help="type for tensors whose name matches REGEX; repeatable, first match wins",
    )
    p.add_argument("--pure", action="store_true", help="no mixes: every quantized tensor gets the level's type")
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from quantdesk.cli.progress import run_job

    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be at least 1")
    request = QuantizeRequest(
        source=args.source,
        output=args.output,
        level=args.level,
        threads=args.threads,
        imatrix=args.imatrix,
        allow_requantize=args.allow_requantize,
        output_tensor_type=args.output_tensor_type,
        token_embedding_type=args.token_embedding_type,
        tensor_types=args.tensor_type,
        pure=args.pure,
        overwrite=args.overwrite,
    )
    try:
        result = run_job(quantize_job(request))
    except OSError as e:  # a full disk, a file size limit, a failing drive: nothing was left behind
        raise QuantdeskError(f"{describe_os_error(e)}; nothing was written") from None
    except Cancelled:
        print("quantdesk: cancelled; nothing was written", file=sys.stderr)
        return 130
    print(
        f"{result.output}: {result.level}, {human_bytes(result.output_bytes)} "
        f"from {human_bytes(result.source_bytes)} of weights in {human_duration(result.seconds)}"
    )
    return 0
