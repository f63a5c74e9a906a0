"""`quantdesk lab MODEL.gguf --levels Q8_0,Q4_K_M`: what each level costs, measured on this machine."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from quantdesk.core.errors import UsageError
from quantdesk.core.jobs import Cancelled
from quantdesk.core.lab import ladder
from quantdesk.core.units import human_bytes


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lab",
        help="compare quantization levels of a model: size, perplexity, KL divergence, speed",
        description="Quantize the source to each level (kept in the Lab's cache), read the same text "
        "through the source and every level with llama.cpp, and compare: perplexity, KL divergence "
        "from the source, top-token agreement, and tokens per second on this machine. "
        "The run is saved and shown in the app's Lab.",
    )
    p.add_argument("source", nargs="?", help="the model to start from: a .gguf, ideally F16 or BF16")
    p.add_argument(
        "--levels", default=",".join(ladder.DEFAULT_LEVELS), help="comma-separated levels (default: %(default)s)"
    )
    p.add_argument(
        "--tokens",
        type=int,
        default=ladder.DEFAULT_TOKENS,
        help="evaluation tokens, in whole chunks of --context (default: %(default)s)",
    )
    p.add_argument(
        "--context",
        type=int,
        default=ladder.DEFAULT_CONTEXT,
        help="chunk length; the second half of each chunk is scored (default: %(default)s)",
    )
    p.add_argument("--threads", type=int, default=None, help="threads (default: llama.cpp's choice)")
    p.add_argument("--gpu-layers", type=int, default=0, help="layers to offload to a GPU while measuring")
    p.add_argument("--imatrix", metavar="FILE", help="importance matrix used to quantize the levels")
    p.add_argument("--text", metavar="FILE", help="evaluation text (UTF-8); default: the built-in one")
    p.add_argument("--list", action="store_true", help="list the saved runs instead")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from quantdesk.cli.progress import run_job

    if args.list:
        return _list(args.json)
    if not args.source:
        raise UsageError("name the model to start from, e.g. `quantdesk lab model-f16.gguf`")
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be at least 1")
    text = None
    if args.text:
        try:
            text = Path(args.text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"{args.text}: cannot read it as UTF-8 text ({e})") from None
    request = ladder.LadderRequest(
        source=Path(args.source),
        levels=[x.strip() for x in args.levels.split(",") if x.strip()],
        tokens=args.tokens,
        context=args.context,
        threads=args.threads,
        gpu_layers=args.gpu_layers,
        imatrix=Path(args.imatrix) if args.imatrix else None,
        text=text,
    )
    try:
        result = run_job(ladder.ladder_job(request))
    except Cancelled:
        print("quantdesk: cancelled; no result was saved", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_table(result)
        print(f"\nsaved: {result.path}")
    return 0


def print_table(result: ladder.LadderResult) -> None:
    print(f"{result.model}: {result.tokens_scored} tokens scored in {result.chunks} chunks of {result.context}")
    source = result.levels[0]
    print(
        f"{'LEVEL':16}  {'SIZE':>9}  {'BPW':>6}  {'PPL':>8}  {'PPL+%':>7}  {'KL':>7}  {'KL p99':>7}  "
        f"{'TOP-1':>6}  {'READ t/s':>8}  {'GEN t/s':>7}  QUALITY"
    )
    for r in result.levels:
        name = f"{r.level} (source)" if r.is_source else r.level
        delta = 100 * (r.perplexity / source.perplexity - 1) if source.perplexity else 0.0
        print(
            f"{name:16}  {human_bytes(r.file_bytes):>9}  {r.bits_per_weight:6.2f}  {r.perplexity:8.3f}  "
            f"{delta:+6.1f}%  {r.kl_mean:7.4f}  {r.kl_p99:7.4f}  {100 * r.top1_agreement:5.1f}%  "
            f"{r.prompt_tps:8.1f}  {r.generate_tps:7.1f}  {ladder.quality_words(r)}"
        )


def _list(as_json: bool) -> int:
    results = ladder.list_results()
    if as_json:
        print(json.dumps([{**r.to_dict(), "path": r.path} for r in results], indent=2))
        return 0
    if not results:
        print("No Lab runs yet. Start one with `quantdesk lab MODEL.gguf`.")
        return 0
    for r in results:
        levels = ", ".join(x.level for x in r.levels if not x.is_source)
        print(f"{r.created}  {r.model}  [{levels}]  {r.path}")
    return 0
