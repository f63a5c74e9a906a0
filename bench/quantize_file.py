"""Whole-file quantization: our `quantize_file` against llama.cpp's llama_model_quantize.

    .venv/bin/python -m bench.quantize_file [--quick] [--threads N] [--types Q4_K_M,Q8_0] [--repeat R]

Two F16 sources, made once and kept in bench/cache/:
  (a) the starter model (SmolLM2-135M, hidden 576: many tensors fall back to legacy types),
      dequantized to F16 by llama.cpp itself;
  (b) a synthetic Llama-shaped model of ~1.1B parameters (TinyLlama's shape: hidden 2048,
      ffn 5632, 22 layers, 32 heads / 4 KV heads, vocab 32000, untied output), every row a
      multiple of 256, Gaussian weights.
For each level (Q4_K_M, Q5_K_M, Q6_K, Q3_K_M, Q2_K, Q8_0) both quantizers run in a fresh child
process with the same thread count; the child times the call itself (imports excluded, file
written and closed) and reports its peak RSS (VmHWM). Ours includes what the app always
does: the card beside the output, the fsync before the rename, the source hash (cached per
file, as in the app after its first quantization of that file; the bench hashes each source
once before timing). Best of --repeat runs. Every output pair is compared byte for byte.
Prints a table and writes bench/out/quantize_file.json. --quick: the starter model only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = BENCH / "cache"
OUT_DIR = BENCH / "out"
LEVELS = ["Q4_K_M", "Q5_K_M", "Q6_K", "Q3_K_M", "Q2_K", "Q8_0"]

# TinyLlama-1.1B's shape: every row length (2048, 5632) divides 256.
SYNTH = dict(hidden=2048, ffn=5632, layers=22, heads=32, kv_heads=4, vocab=32000)


def starter_f16() -> Path:
    path = CACHE / "starter-f16.gguf"
    if not path.exists():
        from bench.llama_quantize_ref import llama_quantize
        from quantdesk.core.starter import starter_model_path

        src = starter_model_path()
        if src is None:
            raise SystemExit("starter model missing: run `make install`")
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        llama_quantize(str(src), str(tmp), 1, nthread=os.cpu_count() or 1, allow_requantize=True)
        tmp.rename(path)
    return path


def synthetic_1b() -> Path:
    """Write the ~1.1B-parameter Llama-shaped F16 model (2.2 GB) once, tensor by tensor."""
    import gguf

    path = CACHE / "synthetic-llama-1.1b-f16.gguf"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    h, f, n, v = SYNTH["hidden"], SYNTH["ffn"], SYNTH["layers"], SYNTH["vocab"]
    kv = h // SYNTH["heads"] * SYNTH["kv_heads"]
    shapes: list[tuple[str, tuple[int, ...]]] = [
        ("token_embd.weight", (v, h)),
        ("output_norm.weight", (h,)),
        ("output.weight", (v, h)),
    ]
    for i in range(n):
        shapes += [
            (f"blk.{i}.attn_norm.weight", (h,)),
            (f"blk.{i}.attn_q.weight", (h, h)),
            (f"blk.{i}.attn_k.weight", (kv, h)),
            (f"blk.{i}.attn_v.weight", (kv, h)),
            (f"blk.{i}.attn_output.weight", (h, h)),
            (f"blk.{i}.ffn_norm.weight", (h,)),
            (f"blk.{i}.ffn_gate.weight", (f, h)),
            (f"blk.{i}.ffn_up.weight", (f, h)),
            (f"blk.{i}.ffn_down.weight", (h, f)),
        ]
    tmp = path.with_suffix(".tmp")
    w = gguf.GGUFWriter(str(tmp), arch="llama")
    w.add_name("synthetic-llama-1.1b")
    w.add_block_count(n)
    w.add_context_length(2048)
    w.add_embedding_length(h)
    w.add_feed_forward_length(f)
    w.add_head_count(SYNTH["heads"])
    w.add_head_count_kv(SYNTH["kv_heads"])
    w.add_rope_dimension_count(h // SYNTH["heads"])
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(v)
    w.add_file_type(1)
    w.add_tokenizer_model("llama")
    w.add_token_list([f"<t{i}>".encode() for i in range(v)])
    w.add_token_scores([0.0] * v)
    w.add_token_types([1] * v)
    for name, shape in shapes:
        dtype = np.float32 if len(shape) == 1 else np.float16
        w.add_tensor_info(name, shape, np.dtype(dtype), int(np.prod(shape)) * np.dtype(dtype).itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(1)
    for _name, shape in shapes:
        if len(shape) == 1:
            w.write_tensor_data(np.ones(shape, dtype=np.float32))
        else:
            w.write_tensor_data((rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16))
    w.close()
    tmp.rename(path)
    return path


# --- children -----------------------------------------------------------------------------------


def _child(which: str, src: str, out: str, level: str, threads: int) -> None:
    """Runs in a fresh process: one quantization, then a JSON line with seconds and peak RSS."""
    if which == "ours":
        from quantdesk.core.quantize.run import QuantizeRequest, quantize_file

        req = QuantizeRequest(Path(src), Path(out), level, threads=threads)
        t0 = time.perf_counter()
        quantize_file(req)
    else:
        from bench.llama_quantize_ref import llama_quantize
        from quantdesk.core.quantize.plan import FILE_TYPES

        ftype = FILE_TYPES[level].ftype
        t0 = time.perf_counter()
        llama_quantize(src, out, ftype, nthread=threads)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "peak_rss_mb": _peak_rss_kb() / 1024}))


def _peak_rss_kb() -> float:
    """This process's peak resident memory. On Linux VmHWM, because getrusage's ru_maxrss keeps
    the high-water mark of the parent's memory image the child was forked from."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows: psutil's peak working set
        import psutil

        return psutil.Process().memory_info().peak_wset / 1024
    rss = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return rss / 1024 if sys.platform == "darwin" else rss  # bytes on macOS, KiB elsewhere


def _run_child(which: str, src: Path, out: Path, level: str, threads: int) -> dict[str, float]:
    out.unlink(missing_ok=True)
    Path(str(out) + ".card.json").unlink(missing_ok=True)
    env = dict(os.environ, QUANTDESK_HOME=str(CACHE / "home"), PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "bench.quantize_file", "--child", which, str(src), str(out), level, str(threads)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{which} {level} failed:\n{r.stderr[-2000:]}")
    result = json.loads(r.stdout.strip().splitlines()[-1])
    result["process_seconds"] = wall
    return result


def _same(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            x, y = fa.read(1 << 24), fb.read(1 << 24)
            if x != y:
                return False
            if not x:
                return True


def bench_source(name: str, src: Path, levels: list[str], threads: int, repeat: int) -> list[dict[str, object]]:
    from quantdesk.core import model_card

    os.environ["QUANTDESK_HOME"] = str(CACHE / "home")
    model_card.file_sha256(src)  # the app remembers a source's hash after its first quantization
    rows = []
    work = CACHE / "out"
    work.mkdir(parents=True, exist_ok=True)
    for level in levels:
        ours_out, ref_out = work / f"ours-{level}.gguf", work / f"llama-{level}.gguf"
        best: dict[str, dict[str, float] | None] = {"ours": None, "llama": None}
        for _ in range(repeat):
            for which, out in (("llama", ref_out), ("ours", ours_out)):
                r = _run_child(which, src, out, level, threads)
                prev = best[which]
                if prev is None or r["seconds"] < prev["seconds"]:
                    best[which] = {**r, "peak_rss_mb": max(r["peak_rss_mb"], prev["peak_rss_mb"] if prev else 0)}
        identical = _same(ours_out, ref_out)
        ours, llama = best["ours"], best["llama"]
        assert ours is not None and llama is not None
        rows.append(
            {
                "model": name,
                "level": level,
                "threads": threads,
                "identical": identical,
                "ours_s": round(ours["seconds"], 3),
                "llama_s": round(llama["seconds"], 3),
                "speedup": round(llama["seconds"] / ours["seconds"], 2),
                "ours_peak_mb": round(ours["peak_rss_mb"], 1),
                "llama_peak_mb": round(llama["peak_rss_mb"], 1),
                "output_mb": round(ours_out.stat().st_size / 1e6, 1),
            }
        )
        r = rows[-1]
        print(
            f"{name:<22} {level:<7} {r['ours_s']:>8.2f} {r['llama_s']:>8.2f} {r['speedup']:>7.2f}x "
            f"{r['ours_peak_mb']:>9.0f} {r['llama_peak_mb']:>9.0f} {'yes' if identical else 'NO':>9}",
            flush=True,
        )
        ours_out.unlink(missing_ok=True)
        ref_out.unlink(missing_ok=True)
        Path(str(ours_out) + ".card.json").unlink(missing_ok=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        _child(argv[1], argv[2], argv[3], argv[4], int(argv[5]))
        return 0
    ap = argparse.ArgumentParser(prog="bench.quantize_file", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the starter model only")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--types", default=",".join(LEVELS))
    ap.add_argument("--repeat", type=int, default=1)
    args, _ = ap.parse_known_args(argv)
    levels = [t.strip().upper() for t in args.types.split(",") if t.strip()]
    from quantdesk import kquant

    print(
        f"whole-file quantization, {args.threads} threads, kernels: {kquant.active_isa()}, "
        f"CPU: {platform.processor() or platform.machine()}"
    )
    print(
        f"{'model':<22} {'level':<7} {'ours s':>8} {'llama s':>8} {'speedup':>8} {'ours MB':>9} {'llama MB':>9} "
        f"{'identical':>9}"
    )
    sources = [("starter-135M-f16", starter_f16())]
    if not args.quick:
        print("(preparing the synthetic 1.1B model in bench/cache/ if needed ...)", flush=True)
        sources.append(("synthetic-llama-1.1B-f16", synthetic_1b()))
    rows = []
    for name, src in sources:
        rows += bench_source(name, src, levels, args.threads, args.repeat)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "quantize_file.json").write_text(
        json.dumps(
            {
                "threads": args.threads,
                "isa": kquant.active_isa(),
                "machine": platform.machine(),
                "cpu_count": os.cpu_count(),
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {OUT_DIR / 'quantize_file.json'}")
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
