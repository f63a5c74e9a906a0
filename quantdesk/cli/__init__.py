"""The `quantdesk` command: the headless face of the same core the window uses.

With no command it prints its help (quantdesk.main opens the window instead). Each subcommand
lives in its own module in this package and registers itself through `add_parser(subparsers)`; COMMANDS lists them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from quantdesk import __version__
from quantdesk.cli import chat, convert, hub, info, lab, models, quantize, selftest, serve
from quantdesk.core.errors import QuantdeskError, user_message

COMMANDS = [info, selftest, hub, models, quantize, chat, convert, lab, serve]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quantdesk",
        description="Run, quantize and measure local language models. With no command, opens the app.",
    )
    parser.add_argument("--version", action="version", version=f"quantdesk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def _tolerant_output() -> None:
    """Model names and chat replies hold any character; on a stream whose encoding cannot show
    one (Windows writes cp1252 to a pipe or file) print an escape instead of crashing midway."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
        if encoding != "utf8" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _tolerant_output()
    args = build_parser().parse_args(argv)
    if not getattr(args, "func", None):
        build_parser().print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("quantdesk: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `quantdesk models | head`: the reader is gone, which is not an error
        try:  # keep Python from failing again when it flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141  # what a program killed by SIGPIPE reports in a shell
    except (QuantdeskError, OSError) as e:  # the user's problem, said in one line (quantdesk.core.errors)
        print(f"quantdesk: {user_message(e)}", file=sys.stderr)
        return 2
