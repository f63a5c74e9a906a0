"""Kernel benchmark: millions of weights per second, ours (each ISA) against ggml_quantize_chunk.

    .venv/bin/python -m bench.kernels [--quick] [--imatrix] [--types Q4_K,Q6_K] [--seconds 0.2] [--src f16]

For every type and two real row lengths (1536 and 4096), times quantdesk.kquant.quantize on each ISA
this machine can run (scalar, avx2 or neon) and ggml's own quantizer from the llama-cpp-python
wheel (bench/ggml_ref.py), single-threaded and with all cores: the implementations take turns for 5 rounds of ~0.15 s
each and the best round counts, so a change in machine load hits them alike.
ggml gets the same threading we get: rows split into chunks, one ctypes call per chunk (ctypes
releases the GIL). Every measurement also checks that our bytes equal ggml's.

The weights are real: the starter model's 2-D tensors, dequantized to float32 and regrouped
into rows of the benchmarked length (seeded Gaussian rows if the model is not installed).
Prints a table and writes bench/out/kernels.json. --imatrix adds runs with an importance matrix.
--src f16 / bf16 feeds our quantizer half-precision rows (the same weights rounded), as whole-file
quantization of an F16/BF16 model does; ggml, which only quantizes float32, is then timed
including numpy's conversion of those rows to float32 (llama-quantize converts first, too).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.ggml_ref import GGML_TYPES, ggml_quantize

OUT_DIR = Path(__file__).resolve().parent / "out"
ROW_LENGTHS = (1536, 4096)
# The order people care about (Q4_K_M = Q4_K + Q6_K), as in the priorities.
TYPE_ORDER = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q6_K", "Q5_K", "Q3_K", "Q2_K", "IQ4_NL", "IQ4_XS"]
POOL_WEIGHTS = 8 * 1024 * 1024  # 32 MiB of float32: larger than the L3 cache of most desktops


def _real_weights(count: int) -> tuple[np.ndarray, str]:
    """count float32 weights from the starter model's 2-D tensors, or seeded Gaussian ones."""
    try:
        import gguf

        from quantdesk.core.starter import starter_model_path

        path = starter_model_path()
        if path is not None:
            reader = gguf.GGUFReader(path)
            parts, have = [], 0
            for t in sorted(reader.tensors, key=lambda t: t.name):
                if len(t.shape) != 2 or have >= count:
                    continue
                qtype = gguf.GGMLQuantizationType(int(t.tensor_type))
                rows = gguf.quants.dequantize(np.asarray(t.data), qtype).astype(np.float32).reshape(-1)
                parts.append(rows[: count - have])
                have += parts[-1].size
            if have >= count:
                return np.concatenate(parts), f"starter model {path.name}"
    except Exception as e:  # the bench still runs without the model
        print(f"(starter model unavailable: {e}; using Gaussian weights)", file=sys.stderr)
    rng = np.random.default_rng(7)
    return (rng.standard_normal(count) * 0.02).astype(np.float32), "seeded Gaussian N(0, 0.02)"


def _calibrate(fn, rows: np.ndarray, seconds: float) -> tuple[int, int]:
    """(rows per call, calls) so that one run of fn takes about `seconds`."""
    nrows = rows.shape[0]
    take = max(1, min(nrows, 8))
    while True:
        t0 = time.perf_counter()
        fn(rows[:take])
        dt = time.perf_counter() - t0
        if dt >= seconds / 8 or take == nrows:
            break
        take = min(nrows, take * 4)
    return take, max(1, int(seconds / max(dt, 1e-6)))


def _time_round_robin(fns: dict, rows: np.ndarray, seconds: float, repeats: int) -> dict[str, float]:
    """Best weights/s of each function. The functions take turns (one run each per round), so on
    a machine whose load changes they all see the same conditions; the best round counts."""
    nrows, n = rows.shape
    plans = {name: _calibrate(fn, rows, seconds) for name, fn in fns.items()}
    best = dict.fromkeys(fns, 0.0)
    for _ in range(repeats):
        for name, fn in fns.items():
            take, calls = plans[name]
            t0 = time.perf_counter()
            for c in range(calls):
                start = (c * take) % max(1, nrows - take + 1)
                fn(rows[start : start + take])
            dt = time.perf_counter() - t0
            best[name] = max(best[name], calls * take * n / dt)
    return best


def _ggml_threaded(threads: int, qtype: str, imatrix):
    def run(x: np.ndarray) -> None:
        if threads == 1 or x.shape[0] < 2 * threads:
            ggml_quantize(x, qtype, imatrix)
            return
        bounds = np.linspace(0, x.shape[0], threads * 4 + 1).astype(int)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(
                pool.map(
                    lambda ab: ggml_quantize(x[ab[0] : ab[1]], qtype, imatrix),
                    [(a, b) for a, b in itertools.pairwise(bounds) if b > a],
                )
            )

    return run


def _ours(kq, isa: str, qtype: str, imatrix, threads: int, src_dtype: str | None = None):
    def run(x: np.ndarray) -> None:
        kq.set_isa(isa)
        kq.quantize(x, qtype, imatrix, threads=threads, src_dtype=src_dtype)

    return run


def _as_source(rows: np.ndarray, src: str) -> np.ndarray:
    """The float32 rows in the benchmarked source format (bf16 as raw uint16 bits, truncated)."""
    if src == "f16":
        return rows.astype(np.float16)
    if src == "bf16":
        return (rows.view(np.uint32) >> 16).astype(np.uint16)
    return rows


def _to_f32(x: np.ndarray, src: str) -> np.ndarray:
    """What ggml quantizes for rows given in format src: the same values as float32."""
    if src == "bf16":
        return (x.astype(np.uint32) << 16).view(np.float32)
    return x.astype(np.float32, copy=False)


def _peak_rss_mib() -> float:
    """Peak resident memory of this process: ru_maxrss is KiB on Linux and bytes on macOS; Windows
    has no `resource` module, psutil gives the peak working set there."""
    try:
        import resource
    except ImportError:
        import psutil

        return psutil.Process().memory_info().peak_wset / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.kernels", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="rows of 4096 only, one repeat, short runs")
    ap.add_argument("--imatrix", action="store_true", help="also time quantization with an importance matrix")
    ap.add_argument("--types", default="", help="comma-separated subset, e.g. Q4_K,Q6_K")
    ap.add_argument("--seconds", type=float, default=None, help="target seconds per measurement (0.2)")
    ap.add_argument(
        "--src", choices=("f32", "f16", "bf16"), default="f32", help="format of the rows we quantize (default f32)"
    )
    args = ap.parse_args(argv)

    import quantdesk.kquant as kq

    seconds = args.seconds or (0.05 if args.quick else 0.15)
    repeats = 2 if args.quick else 5
    lengths = (4096,) if args.quick else ROW_LENGTHS
    types = [t.strip().upper() for t in args.types.split(",") if t.strip()] or TYPE_ORDER
    cores = os.cpu_count() or 1
    thread_modes = [1] if cores == 1 else [1, cores]
    isas = kq.available_isas()
    original_isa = kq.active_isa()

    pool, source = _real_weights(POOL_WEIGHTS)
    results = []
    # Yardstick for Q8_0: how fast one core can merely read the 32 MiB pool (numpy sum).
    read = _time_round_robin({"read": lambda x: np.add.reduce(x, axis=None)}, pool.reshape(-1, 4096), seconds, repeats)[
        "read"
    ]
    src = args.src
    src_dtype = "bf16" if src == "bf16" else None
    print(f"source rows: {src}")
    print(f"weights: {source}; ISAs: {', '.join(isas)}; cores: {cores}; best of {repeats} x ~{seconds:g} s")
    print(f"memory read, one core (numpy sum over 32 MiB): {read / 1e6:.0f} Mw/s = {read * 4 / 1e9:.1f} GB/s")
    header = f"{'type':7} {'row':>5} {'imat':>4} {'thr':>3} {'ggml':>9}" + "".join(f" {i:>9}" for i in isas)
    header += "".join(f" {i + '/ggml':>11}" for i in isas) + "  same"
    print("Mw/s = million weights per second")
    print(header)
    print("-" * len(header))
    try:
        for qtype in types:
            if qtype not in GGML_TYPES:
                print(f"unknown type {qtype}", file=sys.stderr)
                return 2
            for n in lengths:
                rows = _as_source(pool[: pool.size - pool.size % n].reshape(-1, n), src)
                for with_imatrix in [False, True] if args.imatrix else [False]:
                    imatrix = None
                    if with_imatrix:
                        imatrix = np.random.default_rng(n).random(n, dtype=np.float32) + 0.1
                    # bytes check on a small slice, once per ISA
                    check = rows[:16]
                    ref = ggml_quantize(_to_f32(check, src), qtype, imatrix)
                    same = {}
                    for isa in isas:
                        kq.set_isa(isa)
                        got = kq.quantize(check, qtype, imatrix, threads=1, src_dtype=src_dtype)
                        same[isa] = bool(np.array_equal(got, ref))
                    for threads in thread_modes:
                        ggml_fn = _ggml_threaded(threads, qtype, imatrix)
                        fns = {"ggml": ggml_fn if src == "f32" else (lambda x, f=ggml_fn: f(_to_f32(x, src)))}
                        for isa in isas:
                            fns[isa] = _ours(kq, isa, qtype, imatrix, threads, src_dtype)
                        rates = _time_round_robin(fns, rows, seconds, repeats)
                        entry = {
                            "type": qtype,
                            "row": n,
                            "imatrix": with_imatrix,
                            "threads": threads,
                            "ggml_mws": rates["ggml"] / 1e6,
                        }
                        for isa in isas:
                            entry[f"{isa}_mws"] = rates[isa] / 1e6
                            entry[f"{isa}_ratio"] = rates[isa] / rates["ggml"]
                            entry[f"{isa}_bytes_equal_ggml"] = same[isa]
                        results.append(entry)
                        line = (
                            f"{qtype:7} {n:>5} {'yes' if with_imatrix else 'no':>4} {threads:>3} "
                            f"{entry['ggml_mws']:>9.1f}"
                        )
                        line += "".join(f" {entry[f'{i}_mws']:>9.1f}" for i in isas)
                        line += "".join(f" {entry[f'{i}_ratio']:>10.1f}x" for i in isas)
                        line += "  " + (
                            "yes" if all(same.values()) else "NO: " + ",".join(i for i, ok in same.items() if not ok)
                        )
                        print(line, flush=True)
    finally:
        kq.set_isa(original_isa)

    peak_rss_mib = _peak_rss_mib()
    print(f"peak RSS: {peak_rss_mib:.0f} MiB")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cores": cores,
            "isas": isas,
        },
        "weights": source,
        "source_format": src,
        "seconds_per_measurement": seconds,
        "repeats": repeats,
        "peak_rss_mib": round(peak_rss_mib, 1),
        "memory_read_mws_one_core": round(read / 1e6, 1),
        "results": results,
    }
    (OUT_DIR / "kernels.json").write_text(json.dumps(report, indent=2))
    print(f"written: {OUT_DIR / 'kernels.json'}")
    bad = [r for r in results if not all(r[f"{i}_bytes_equal_ggml"] for i in isas)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
