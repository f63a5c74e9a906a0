"""API server speed: the same greedy reply through the local server and generated in-process.

    python -m bench.server [--model FILE] [--tokens 128] [--runs 5] [--ttft-runs 20] [--clients 8]

One process holds both: a ChatEngine (in-process: ChatEngine.generate, what Chat does) and a real
server on 127.0.0.1 (uvicorn in a thread, its own copy of the model), called over HTTP with a plain
SSE reader (httpx) so the client's own parsing costs as little as possible. Both read the same
prompt with the same settings; before every run both models' KV caches are emptied, so prompt
processing is included alike. Measured:
  tokens/s     (tokens - 1) / (last token - first token), best and median of --runs interleaved
               runs; the server's as the client sees the chunks arrive (target >= 97% of in-process)
  TTFT         time to the first token, request sent -> first content chunk vs in-process, with
               the prompt already cached so one decode is all the model does; the overhead is the
               median of the paired differences over --ttft-runs (target < 15 ms)
  concurrent   --clients streaming clients at once (--tokens each): total tokens/s over the wall
               time, and the 95th percentile of their request latencies
Results are printed and written to bench/out/server.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

PROMPT = [{"role": "user", "content": "Write a detailed essay about the history of bread, with many paragraphs."}]


def _reset(server, engine) -> None:
    """Empty both KV caches (the server's model is idle between runs)."""
    engine.llm.reset()
    for model in list(server.registry._models.values()):
        if model.engine is not None and model.engine.llm is not None:
            with model.lock:
                model.engine.llm.reset()


def run_engine(engine, settings) -> dict:
    """ChatEngine.generate in a thread of its own, as Chat runs it (a job's worker thread).

    Never in the main thread: llama.cpp's OpenMP keeps a pool of threads for each thread that has
    computed and is still alive; with two pools on a machine with few cores its threads spin less
    and generation slows two to five times. A thread per reply (Chat's jobs, the server's
    workers) frees its pool when it ends."""
    out: list = []
    worker = threading.Thread(target=lambda: out.append(engine.generate(PROMPT, settings)))
    worker.start()
    worker.join()
    reply = out[0]
    s = reply.stats
    return {"tokens": s.tokens, "tps": s.tokens_per_second, "ttft": s.time_to_first_token_s, "text": reply.text}


def run_server(http, url: str, model_id: str, tokens: int) -> dict:
    body = {
        "model": model_id,
        "messages": PROMPT,
        "max_tokens": tokens,
        "temperature": 0,
        "seed": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    first = last = 0.0
    parts: list[str] = []
    usage = {}
    with http.stream("POST", url, json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices", []):
                piece = choice["delta"].get("content")
                if piece:
                    last = time.perf_counter()
                    first = first or last
                    parts.append(piece)
    n = usage.get("completion_tokens", len(parts))
    return {
        "tokens": n,
        "tps": (n - 1) / (last - first) if last > first else 0.0,
        "ttft": first - t0,
        "latency": time.perf_counter() - t0,
        "text": "".join(parts),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server", description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="GGUF file (default: the starter model)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ttft-runs", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: physical cores)")
    args, _unknown = parser.parse_known_args(argv)

    import httpx2 as httpx

    from quantdesk.core.chat.engine import ChatEngine, ChatSettings
    from quantdesk.core.chat.store import Store
    from quantdesk.core.starter import starter_model_path
    from quantdesk.server.runner import Server, ServerConfig

    model = Path(args.model) if args.model else starter_model_path()
    if model is None:
        print("no model: pass --model or install the starter model", file=sys.stderr)
        return 2
    import os
    import tempfile

    os.environ["QUANTDESK_HOME"] = tempfile.mkdtemp(prefix="bench-server-")  # its own saved settings
    settings = ChatSettings(temperature=0.0, seed=0, max_tokens=args.tokens, context_length=2048, threads=args.threads)
    server = Server(ServerConfig(port=0, ttl_s=0, max_loaded=1, max_queue=max(32, args.clients), models=[str(model)]))
    entry = server.registry.catalogue.entries()[0]
    store = Store()
    store.save_model_settings(entry.path, settings.to_dict())  # the server starts from Chat's saved settings
    store.close()

    engine = ChatEngine()
    engine.load(model, settings)
    server.start()
    url = server.address + "/v1/chat/completions"
    http = httpx.Client(timeout=600)
    try:
        run_server(http, url, entry.id, 4)  # load and warm up
        run_engine(engine, settings)
        runs: dict[str, list[dict]] = {"in-process": [], "server": []}
        for _ in range(args.runs):  # interleaved, so a busy moment hits both alike
            _reset(server, engine)
            runs["in-process"].append(run_engine(engine, settings))
            _reset(server, engine)
            runs["server"].append(run_server(http, url, entry.id, args.tokens))
        # Time to first token with the prompt already in each model's KV cache, so the first
        # token costs one decode on both paths and what is left is the server's own overhead
        # (HTTP, JSON, the queue, the thread hand-offs); paired runs in alternating order.
        short = ChatSettings.from_dict({"max_tokens": 2}, settings)
        ttft_pairs = []
        for i in range(args.ttft_runs):
            if i % 2:
                remote = run_server(http, url, entry.id, 2)["ttft"]
                local = run_engine(engine, short)["ttft"]
            else:
                local = run_engine(engine, short)["ttft"]
                remote = run_server(http, url, entry.id, 2)["ttft"]
            ttft_pairs.append((local, remote))

        _reset(server, engine)
        results: list[dict] = []
        errors: list[BaseException] = []

        def client() -> None:
            try:
                with httpx.Client(timeout=600) as own:
                    results.append(run_server(own, url, entry.id, args.tokens))
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        if errors:
            raise errors[0]
    finally:
        http.close()
        server.stop()
        engine.unload()

    best = {k: max(r["tps"] for r in v) for k, v in runs.items()}
    median = {k: statistics.median(r["tps"] for r in v) for k, v in runs.items()}
    same = len({r["text"] for v in runs.values() for r in v}) == 1
    overhead = [remote - local for local, remote in ttft_pairs]
    ttft_overhead_ms = statistics.median(overhead) * 1000
    latencies = sorted(r["latency"] for r in results)
    p95 = latencies[min(len(latencies) - 1, max(0, round(0.95 * len(latencies)) - 1))]
    total_tokens = sum(r["tokens"] for r in results)
    concurrent_ok = all(r["text"] == runs["server"][0]["text"] for r in results)
    summary = {
        "tokens_per_second_best": best,
        "tokens_per_second_median": median,
        "ratio_best": best["server"] / best["in-process"],
        "ratio_median": median["server"] / median["in-process"],
        "ttft_ms_cold_median": {k: statistics.median(r["ttft"] for r in v) * 1000 for k, v in runs.items()},
        "ttft_ms_median": {
            "in-process": statistics.median(p[0] for p in ttft_pairs) * 1000,
            "server": statistics.median(p[1] for p in ttft_pairs) * 1000,
        },
        "ttft_overhead_ms_median": ttft_overhead_ms,
        "concurrent": {
            "clients": args.clients,
            "total_tokens": total_tokens,
            "wall_s": wall,
            "total_tokens_per_second": total_tokens / wall,
            "p95_latency_s": p95,
            "all_texts_right": concurrent_ok,
        },
        "identical_greedy_text": same,
    }
    print(
        f"model {model.name} · {runs['server'][0]['tokens']} tokens · {settings.resolved_threads()} threads · "
        f"{args.runs} interleaved runs · same greedy text in-process and through the server: {'yes' if same else 'NO'}"
    )
    print(f"{'path':11} {'best tok/s':>11} {'median':>8}")
    for name in runs:
        print(f"{name:11} {best[name]:11.1f} {median[name]:8.1f}")
    print(f"server / in-process: best {summary['ratio_best']:.1%}, median {summary['ratio_median']:.1%}")
    t = summary["ttft_ms_median"]
    cold = summary["ttft_ms_cold_median"]
    print(
        f"time to first token, prompt cached (median of {args.ttft_runs}): in-process {t['in-process']:.1f} ms, "
        f"server {t['server']:.1f} ms, overhead {ttft_overhead_ms:.1f} ms "
        f"(prompt not cached: {cold['in-process']:.0f} ms and {cold['server']:.0f} ms)"
    )
    c = summary["concurrent"]
    print(
        f"{args.clients} concurrent clients: {c['total_tokens_per_second']:.1f} tok/s in total, "
        f"p95 latency {c['p95_latency_s']:.2f} s, every text right: {'yes' if concurrent_ok else 'NO'}"
    )
    ok = summary["ratio_best"] >= 0.97 and ttft_overhead_ms < 15
    print("targets (tok/s >= 97% of in-process, TTFT overhead < 15 ms):", "met" if ok else "NOT met")
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    (out / "server.json").write_text(
        json.dumps({"model": str(model), "tokens": args.tokens, "runs": args.runs, "summary": summary}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
