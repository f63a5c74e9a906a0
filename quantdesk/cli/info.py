"""`quantdesk info FILE.gguf`: what a model file is, or one line saying what is wrong with it."""

from __future__ import annotations

import argparse
import json

from quantdesk.core.errors import printable
from quantdesk.core.gguf.reader import read_info
from quantdesk.core.units import human_bytes, human_params


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a GGUF model file")
    p.add_argument("file", help="path to a .gguf file")
    p.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    info = read_info(args.file)
    if args.json:
        print(json.dumps(info.as_dict(), indent=2))
        return 0
    types = ", ".join(f"{k} {v}" for k, v in info.tensor_types.items())
    rows = [
        ("File", str(info.path)),
        ("Name", info.name),
        ("Architecture", info.architecture),
        ("Parameters", f"{human_params(info.parameters)} ({info.parameters:,})"),
        ("File type", info.file_type),
        ("Tensor types", types),
        ("Context length", str(info.context_length) if info.context_length else "unknown"),
        ("Chat template", "yes" if info.has_chat_template else "no"),
        ("Size", f"{human_bytes(info.size_bytes)} ({info.size_bytes:,} bytes)"),
    ]
    for key, value in rows:
        print(f"{key + ':':16}{printable(value)}")
    return 0
