"""`python -m tools.fuzz` (`make fuzz`): the project's seeded fuzzer over every reader of untrusted data.

Input kinds: GGUF headers and tensor tables (info, the level list, quantize), imatrix GGUF and
.dat (load, quantize with it), safetensors headers, config.json and tokenizer JSON (describe,
convert), chat templates (rendered as the engine renders them), Hub API answers (a model's page,
a search) and the server's request bodies (OpenAI chat/responses, Anthropic messages). Each case
is a seed (tools/fuzz/seeds.py: real small inputs) plus a few mutations (tools/fuzz/mutate.py),
run in a forked child with a time and a memory limit and classified (tools/fuzz/engine.py). A
finding of a new class is shrunk to the fewest mutations that still show it and saved under
tests/data/fuzz/<kind>/; tests/test_fuzz_reproducers.py replays every saved one (they must come
out "clean" or "ok", unless marked "known" with the owner who has it).

    python -m tools.fuzz --minutes 3 --seed 1        # a pass; exit 1 on any finding not known
    python -m tools.fuzz --replay                    # the saved reproducers only

The figures (cases per input kind, count per class) are printed and written to --report.
"""

from __future__ import annotations

import os

# Before numpy is imported anywhere: one thread per case (the parent forks, and the machine is shared).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REPRODUCERS = ROOT / "tests" / "data" / "fuzz"


def preload() -> None:
    """Everything a child needs, imported once in the parent (a fork then starts in milliseconds)."""
    import huggingface_hub.hf_api  # noqa: F401
    import jinja2  # noqa: F401
    import tokenizers  # noqa: F401

    import quantdesk.cli  # noqa: F401
    import quantdesk.core.chat.templates  # noqa: F401
    import quantdesk.core.convert  # noqa: F401
    import quantdesk.core.hub.client  # noqa: F401
    import quantdesk.core.quantize.run  # noqa: F401
    import quantdesk.server.anthropic_api  # noqa: F401
    import quantdesk.server.openai_api  # noqa: F401
    import tools.fuzz.targets  # noqa: F401


def table(counts: dict[str, collections.Counter[str]]) -> str:
    from tools.fuzz.engine import CLASSES

    used = [c for c in (*CLASSES, "fuzzer error") if any(cnt[c] for cnt in counts.values())]
    rows = [["kind", "cases", *used]]
    for kind, cnt in counts.items():
        rows.append([kind, str(sum(cnt.values())), *(str(cnt[c]) for c in used)])
    total: collections.Counter[str] = sum(counts.values(), collections.Counter())
    rows.append(["all", str(sum(total.values())), *(str(total[c]) for c in used)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.fuzz", description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=3.0, help="how long to fuzz (default 3)")
    p.add_argument("--seed", type=int, default=1, help="the same seed makes the same cases (default 1)")
    p.add_argument("--kinds", default="", help="comma-separated input kinds (default: all)")
    p.add_argument("--max-cases", type=int, default=0, help="stop after this many cases (0: no limit)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a case may take (default 30)")
    p.add_argument("--memory-mb", type=int, default=1536, help="memory a case may add, in MiB (default 1536)")
    p.add_argument("--reproducers", type=Path, default=REPRODUCERS, help="where reproducers are kept")
    p.add_argument("--no-save", action="store_true", help="do not save reproducers of new findings")
    p.add_argument("--replay", action="store_true", help="only replay the saved reproducers")
    p.add_argument("--report", type=Path, default=ROOT / "build" / "fuzz" / "report.json")
    args = p.parse_args(argv)

    from tools.fuzz import engine, seeds

    started = time.monotonic()
    preload()
    work = tempfile.TemporaryDirectory(prefix="quantdesk-fuzz-")  # seeds and cases: this run's own
    all_seeds = seeds.build(Path(work.name) / "seeds")
    kinds = [k for k in (args.kinds.split(",") if args.kinds else seeds.KINDS) if k]
    unknown = set(kinds) - set(seeds.KINDS)
    if unknown:
        p.error(f"unknown kinds {sorted(unknown)}; choose from {', '.join(seeds.KINDS)}")
    saved = engine.load_reproducers(args.reproducers)
    known = {r["found"]["signature"]: r for _, _, r in saved}
    with work:
        fuzzer = engine.Fuzzer(all_seeds, Path(work.name) / "cases", args.timeout, args.memory_mb)
        if args.replay:
            return replay(fuzzer, saved)
        setup = time.monotonic() - started
        print(f"fuzz: seed {args.seed}, {args.minutes:g} min, kinds {', '.join(kinds)} (setup {setup:.0f} s)")
        counts: dict[str, collections.Counter[str]] = {k: collections.Counter() for k in kinds}
        failing: list[tuple[engine.Case, engine.Result]] = []
        deadline = started + 60 * args.minutes
        i = internal = 0
        while time.monotonic() < deadline and (not args.max_cases or i < args.max_cases):
            kind = kinds[i % len(kinds)]
            i += 1
            try:
                case = fuzzer.generate(random.Random(f"{args.seed}:{i - 1}"), kind)
                result = fuzzer.run(case)
            except Exception as e:  # noqa: BLE001 - the fuzzer's own bug: said, counted, and the run goes on
                print(f"fuzz: internal error in case {i - 1} ({kind}): {type(e).__name__}: {e}", flush=True)
                counts[kind]["fuzzer error"] += 1
                internal += 1
                continue
            counts[kind][result.cls] += 1
            if result.cls in engine.GOOD:
                continue
            record = known.get(result.signature)
            if record is not None and record.get("known"):
                continue  # reported to its owner, replayed as an expected failure
            failing.append((case, result))
            if record is None:
                print(f"fuzz: new {result.cls} in {kind}: {result.signature}: {result.detail[:200]}", flush=True)
                known[result.signature] = {"found": {"signature": result.signature}}
                if not args.no_save:
                    small = fuzzer.minimize(case, result)
                    path = engine.save_reproducer(args.reproducers, small, result)
                    print(f"fuzz:   reproducer ({len(small.ops())} of {len(case.ops())} mutations): {path}")
    print(table(counts))
    report = {
        "seed": args.seed,
        "minutes": args.minutes,
        "cases": {k: dict(v) for k, v in counts.items()},
        "findings": [{"class": r.cls, "signature": r.signature, "detail": r.detail} for _, r in failing],
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    n_sig = len({r.signature for _, r in failing})
    print(f"fuzz: {i} cases in {(time.monotonic() - started) / 60:.1f} min; {len(failing)} findings of {n_sig} kinds")
    return 1 if failing or internal else 0


def replay(fuzzer: object, saved: list) -> int:
    from tools.fuzz import engine

    assert isinstance(fuzzer, engine.Fuzzer)
    bad = 0
    for path, case, record in saved:
        result = fuzzer.run(case)
        known = record.get("known")
        if result.cls in engine.GOOD:
            state = "fixed (remove its 'known' mark)" if known else "ok"
        else:
            state = f"known ({known})" if known else f"FAILS: {result.cls}: {result.detail[:200]}"
            bad += not known
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {result.cls}: {state}")
    print(f"fuzz: {len(saved)} reproducers replayed, {bad} failing")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
