"""`quantdesk models`: the models on this disk, as the Library page lists them."""

from __future__ import annotations

import argparse
import json

from quantdesk.core.errors import QuantdeskError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the models on this disk (the Library)")
    p.add_argument("--json", action="store_true", help="print the entries as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from quantdesk.core import library
    from quantdesk.core.units import human_bytes

    try:
        entries = library.list_models()
    except OSError as e:  # the data folder cannot be made: read-only, or a file of that name
        raise QuantdeskError(
            f"cannot use the data folder {e.filename or ''} ({e.strerror or e}); "
            "set QUANTDESK_HOME to a folder you can write"
        ) from None
    if args.json:
        print(json.dumps([e.as_dict() for e in entries], indent=2))
        return 0
    if not entries:
        print("No models yet. Find one with `quantdesk search`, then `quantdesk download`.")
        return 0
    width = max(len(e.name) for e in entries)
    print(f"{'NAME':{width}}  {'TYPE':10}  {'SIZE':>9}  {'SOURCE':18}  PATH")
    for entry in entries:  # not `e`: that name is the except clause's above
        kind = entry.file_type or ("checkpoint" if entry.kind == "checkpoint" else "GGUF")
        print(f"{entry.name:{width}}  {kind:10}  {human_bytes(entry.size):>9}  {entry.source:18}  {entry.path}")
    return 0
