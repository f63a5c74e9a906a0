"""GPU offload: what 0, half, all and "auto" layers on the GPU buy, on this machine's GPU.

    python -m bench.gpu [--tokens 1024] [--context 512] [--no-1b]

On the starter model and on the synthetic ~1.1B Llama-shaped F16 model (bench/quantize_file.py
makes it once in bench/cache/), each offload level reads the same text as the CPU: KL divergence
and top-token agreement against the CPU's reading (GPU arithmetic is not bit-identical), tokens/s
reading and generating, and the VRAM the device reports while loaded beside the fit model's
prediction. Needs a llama.cpp built with a GPU backend (`make gpu`); on a CPU-only build it says
so and exits 0. Results are printed and written to bench/out/gpu.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from quantdesk.core.units import human_bytes

OUT_DIR = Path(__file__).resolve().parent / "out"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu")
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--no-1b", action="store_true", help="only the starter model")
    args, _ = parser.parse_known_args(argv)

    from quantdesk.core import hardware
    from quantdesk.core.lab.offload import ALL, AUTO, HALF, gpu_available, offload_ladder
    from quantdesk.core.starter import starter_model_path

    backend = hardware.llama_backend()
    print(hardware.describe_backend(backend))
    if not gpu_available():
        print("no GPU backend in this llama.cpp build: nothing to measure (`make gpu` builds one)")
        return 0
    models = [("starter (SmolLM2-135M Q4_1)", starter_model_path())]
    if not args.no_1b:
        from bench.quantize_file import synthetic_1b

        models.append(("synthetic-llama-1.1B-f16", synthetic_1b()))
    report: dict[str, object] = {"backend": hardware.describe_backend(backend), "models": {}}
    columns = [("offload", 8), ("layers", 6), ("KL mean", 9), ("top-1", 7), ("read t/s", 9), ("gen t/s", 8)]
    columns += [("VRAM fit", 9), ("VRAM seen", 9)]
    header = " ".join(f"{name:>{width}}" for name, width in columns)
    for name, path in models:
        if path is None:
            continue
        rows = offload_ladder(path, [HALF, ALL, AUTO], tokens=args.tokens, context=args.context)
        print(f"\n{name}\n{header}")
        for r in rows:
            seen = "—" if r.measured_gpu_bytes is None else human_bytes(r.measured_gpu_bytes)
            print(
                f"{r.level:>8} {r.gpu_layers:>6} {r.kl_mean:>9.5f} {r.top1_agreement:>7.1%} {r.prompt_tps:>9.0f} "
                f"{r.generate_tps:>8.1f} {human_bytes(r.predicted_gpu_bytes):>9} {seen:>9}"
            )
        report["models"][name] = [r.as_dict() for r in rows]  # type: ignore[index]
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "gpu.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"written: {OUT_DIR / 'gpu.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
