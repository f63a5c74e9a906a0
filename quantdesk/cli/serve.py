"""`quantdesk serve`: the OpenAI- and Anthropic-compatible API server, headless.

    quantdesk serve [--host 127.0.0.1] [--port 8765] [--api-key KEY] [--cors ORIGIN ...]
                    [--max-loaded N] [--ttl SECONDS] [--model NAME ...]

Serves the Library's models (or only those named with --model, Library ids or .gguf files,
which are loaded before it starts listening) until Ctrl+C. Each request is one line on stderr.
Any address but this machine's own needs --api-key; QUANTDESK_API_KEY can hold it instead, so
it stays out of the shell history and the process list.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from quantdesk.server import runner


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the Library's models over the OpenAI and Anthropic APIs")
    p.add_argument("--host", default=runner.DEFAULT_HOST, help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=runner.DEFAULT_PORT, help=f"port (default {runner.DEFAULT_PORT})")
    p.add_argument(
        "--api-key",
        default=os.environ.get("QUANTDESK_API_KEY", ""),
        help="key clients must send (Bearer or x-api-key); required off 127.0.0.1 (default: $QUANTDESK_API_KEY)",
    )
    p.add_argument("--cors", nargs="+", default=[], metavar="ORIGIN", help="web origins allowed to call it (or *)")
    p.add_argument(
        "--max-loaded", type=int, default=runner.DEFAULT_MAX_LOADED, help="models loaded at once (least recent goes)"
    )
    p.add_argument(
        "--ttl", type=float, default=runner.DEFAULT_TTL_S, help="unload a model idle this many seconds (0: never)"
    )
    p.add_argument("--queue", type=int, default=runner.DEFAULT_MAX_QUEUE, help="requests that may wait per model")
    p.add_argument("--model", nargs="+", default=[], metavar="NAME", help="serve only these (ids or .gguf files)")
    p.set_defaults(func=run)


def _show_log() -> None:
    """The server's lines (requests, loads, unloads) on stderr, as they happen."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("quantdesk.server")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def run(args: argparse.Namespace) -> int:
    config = runner.ServerConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        cors_origins=list(args.cors),
        max_loaded=args.max_loaded,
        ttl_s=args.ttl,
        max_queue=args.queue,
        models=list(args.model),
    )
    server = runner.Server(config, preload=True)  # a bad option or --model is a UsageError, said in one line
    _show_log()

    def ready() -> None:
        print(
            f"Serving on {server.address}/v1 (OpenAI) and {server.address} (Anthropic); Ctrl+C stops.", file=sys.stderr
        )
        if not config.api_key:
            print("No API key: only programs on this machine can reach it, and any may use it.", file=sys.stderr)

    server.serve_forever(ready)
    print("Stopped.", file=sys.stderr)
    return 0
