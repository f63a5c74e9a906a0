"""Chat speed: our engine and our UI path against raw llama-cpp-python, same model, same settings.

    python -m bench.chat [--model FILE] [--tokens 128] [--runs 3] [--threads N]

Three paths generate the same greedy reply:
  raw     llama_cpp.Llama.create_chat_completion(stream=True), consumed in a plain loop
  engine  quantdesk.core.chat.engine.ChatEngine.generate (stream, stats, Stop checks)
  ui      the same engine as a Job in quantdesk.ui.workers' worker thread, the reply saved to a
          conversation store as it streams and re-rendered as Markdown in a MessageWidget on
          every progress signal (10 a second), in a Qt event loop (offscreen)
For each: generation tokens/s ((tokens-1) / time from first to last token) and time to first
token, best and median of --runs interleaved runs; the ratio to raw (target >= 97%). For the ui path also the Qt event
loop's worst latency while tokens stream: a 5 ms timer's largest gap beyond its interval
(target < 50 ms). Every run starts from an empty KV cache so prompt processing is included.
Results are printed and written to bench/out/chat.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

PROMPT = [{"role": "user", "content": "Write a detailed essay about the history of bread, with many paragraphs."}]


def _settings(args):
    from quantdesk.core.chat.engine import ChatSettings

    return ChatSettings(temperature=0.0, seed=0, max_tokens=args.tokens, context_length=2048, threads=args.threads)


def run_raw(llm, settings, kwargs) -> dict:
    llm.reset()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    first = last = 0.0
    n = 0
    text = []
    for chunk in llm.create_chat_completion(messages=PROMPT, stream=True, **kwargs):
        piece = chunk["choices"][0].get("delta", {}).get("content")
        if piece:
            last = time.perf_counter()
            first = first or last
            n += 1
            text.append(piece)
    tokens = len(llm.tokenize("".join(text).encode(), add_bos=False, special=True))
    return {
        "tokens": tokens,
        "tps": (tokens - 1) / (last - first),
        "ttft": first - t0,
        "text": "".join(text),
        "cpu": time.process_time() - cpu0,
    }


def run_engine(engine, settings) -> dict:
    engine.llm.reset()
    cpu0 = time.process_time()
    reply = engine.generate(PROMPT, settings)
    s = reply.stats
    return {
        "tokens": s.tokens,
        "tps": s.tokens_per_second,
        "ttft": s.time_to_first_token_s,
        "text": reply.text,
        "cpu": time.process_time() - cpu0,
    }


def run_ui(engine, settings, app) -> dict:
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    from quantdesk.core.chat.engine import ReplyStream
    from quantdesk.ui.chat.widgets import MessageWidget
    from quantdesk.ui.workers import JobManager

    engine.llm.reset()
    manager = JobManager()
    widget = MessageWidget(1, "assistant", "")
    widget.resize(720, 400)
    widget.show()
    stream = ReplyStream()
    # as in the window: the reply is also saved to the conversation store every few tokens
    import tempfile

    from quantdesk.core.chat.store import Store

    store = Store(Path(tempfile.mkdtemp(prefix="bench-chat-")) / "c.sqlite3")
    cid = store.create_conversation("bench")
    stream.listeners.append(store.streaming_writer(store.add_message(cid, "assistant", "", complete=False)))
    gaps: list[float] = []
    clock = QElapsedTimer()
    ticker = QTimer()
    ticker.setInterval(5)
    ticker.timeout.connect(lambda: gaps.append(clock.restart() - 5))
    loop = QEventLoop()
    result = {}
    handle = manager.start(engine.generate_job(PROMPT, settings, stream), min_interval=0.1)
    handle.progress.connect(lambda _p: widget.set_text(stream.text))
    handle.finished.connect(lambda r: (result.setdefault("reply", r), loop.quit()))
    handle.failed.connect(lambda e, tb: (result.setdefault("error", tb), loop.quit()))
    cpu0 = time.process_time()
    clock.start()
    ticker.start()
    loop.exec()
    cpu = time.process_time() - cpu0
    ticker.stop()
    widget.set_text(stream.text)
    widget.close()
    store.close()
    if "error" in result:
        raise RuntimeError(result["error"])
    s = result["reply"].stats
    return {
        "tokens": s.tokens,
        "tps": s.tokens_per_second,
        "ttft": s.time_to_first_token_s,
        "text": result["reply"].text,
        "worst_gap_ms": max(gaps[1:] or [0]),
        "cpu": cpu,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chat", description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="GGUF file (default: the starter model)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: physical cores)")
    args, _unknown = parser.parse_known_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    import llama_cpp

    from quantdesk.core.chat.engine import ChatEngine
    from quantdesk.core.starter import starter_model_path
    from quantdesk.ui.app import make_application

    model = Path(args.model) if args.model else starter_model_path()
    if model is None:
        print("no model: pass --model or install the starter model", file=sys.stderr)
        return 2
    settings = _settings(args)
    app = make_application([])
    engine = ChatEngine()
    engine.load(model, settings)
    kwargs = engine.completion_kwargs(settings)
    raw = llama_cpp.Llama(
        model_path=str(model),
        n_ctx=settings.context_length,
        n_threads=settings.resolved_threads(),
        n_threads_batch=settings.resolved_threads(),
        verbose=False,
    )
    runs: dict[str, list[dict]] = {"raw": [], "engine": [], "ui": []}
    run_raw(raw, settings, kwargs)  # warm-up: page in the weights for everyone
    for _ in range(args.runs):  # interleaved, so a busy moment on the machine hits every path alike
        runs["raw"].append(run_raw(raw, settings, kwargs))
        runs["engine"].append(run_engine(engine, settings))
        runs["ui"].append(run_ui(engine, settings, app))
    raw.close()
    engine.unload()

    same = len({r["text"] for rs in runs.values() for r in rs}) == 1
    # Best of N is the headline: on a shared machine other processes only ever slow a run down,
    # so the fastest run is the closest to what each path can do; the median is shown beside it.
    best = {name: max(r["tps"] for r in rs) for name, rs in runs.items()}
    best_ttft = {name: min(r["ttft"] for r in rs) for name, rs in runs.items()}
    median = {name: statistics.median(r["tps"] for r in rs) for name, rs in runs.items()}
    gap = max(r["worst_gap_ms"] for r in runs["ui"])
    summary = {
        name: {
            "tokens_per_second_best": best[name],
            "tokens_per_second_median": median[name],
            "ratio_vs_raw_best": best[name] / best["raw"],
            "ratio_vs_raw_median": median[name] / median["raw"],
            "ttft_s_best": best_ttft[name],
            "ttft_ratio_vs_raw": best_ttft[name] / best_ttft["raw"],
        }
        for name in runs
    }
    # CPU seconds per reply (all threads of this process) barely move when other programs compete
    # for the cores, so their ratio is the steadier measure of what our layers add.
    cpu = {name: statistics.median(r["cpu"] for r in rs) for name, rs in runs.items()}
    for name in runs:
        summary[name]["cpu_s_per_reply"] = cpu[name]
        summary[name]["cpu_efficiency_vs_raw"] = cpu["raw"] / cpu[name]
    summary["ui"]["worst_event_loop_gap_ms"] = gap
    print(
        f"model {model.name} · {runs['raw'][0]['tokens']} tokens · {settings.resolved_threads()} threads · "
        f"{args.runs} interleaved runs · identical greedy text on every path: {'yes' if same else 'NO'}"
    )
    print(
        f"{'path':8} {'best tok/s':>11} {'vs raw':>7} {'median':>8} {'vs raw':>7} {'TTFT ms':>8} "
        f"{'CPU s':>6} {'raw/CPU':>8} {'UI worst gap ms':>16}"
    )
    for name in runs:
        m = summary[name]
        gap_text = f"{gap:16.1f}" if name == "ui" else f"{'':16}"
        print(
            f"{name:8} {best[name]:11.1f} {m['ratio_vs_raw_best']:7.1%} {median[name]:8.1f} "
            f"{m['ratio_vs_raw_median']:7.1%} {best_ttft[name] * 1000:8.0f} {cpu[name]:6.2f} "
            f"{cpu['raw'] / cpu[name]:8.1%} {gap_text}"
        )
    ok = min(summary["engine"]["ratio_vs_raw_best"], summary["ui"]["ratio_vs_raw_best"]) >= 0.97 and gap < 50
    print("targets (best tok/s >= 97% of raw, event loop gap < 50 ms):", "met" if ok else "NOT met")
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    (out / "chat.json").write_text(
        json.dumps(
            {
                "model": str(model),
                "tokens": args.tokens,
                "runs": args.runs,
                "threads": settings.resolved_threads(),
                "identical_text": same,
                "summary": summary,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
