"""What GPU offload buys: the same model read with 0, half and all of its layers on the GPU.

GPU arithmetic is not bit-identical to the CPU's, so "the same reply" is measured the way the Lab
measures a quant level: every offload level reads the same text, and its next-token distributions
are compared with the CPU's (KL divergence, top-token agreement), with tokens per second for
reading and generating. The memory the device reports after loading is set beside what the fit
model predicted, and "auto" is checked to be the largest count the fit model says fits.

Used by tests/gpu/ and bench/gpu.py on a machine whose llama.cpp was built with a GPU backend
(`make gpu`); on a CPU-only build every offload level is the CPU and `gpu_available()` is False.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quantdesk.core import fit, hardware
from quantdesk.core.jobs import CancelToken, Progress, ProgressCallback
from quantdesk.core.lab.ladder import LadderRequest, chunks_of, evaluation_tokens, measure

HALF = "half"
ALL = "all"
AUTO = "auto"


def gpu_available() -> bool:
    """True when this llama.cpp can offload and sees a GPU device."""
    backend = hardware.llama_backend()
    return backend.gpu_offload and bool(backend.gpus)


def layer_count(level: int | str, size: fit.ModelSize) -> int:
    """An offload level ("half", "all", "auto" or a count) as llama.cpp's n_gpu_layers."""
    if level == HALF:
        return size.n_layers // 2
    if level == ALL:
        return fit.ALL_LAYERS
    if level == AUTO:
        return fit.gpu_layers_that_fit(size, LadderRequest(Path()).context, hardware.vram_free_bytes())
    return int(level)


@dataclass
class OffloadRow:
    level: str  # "0", "half", "all", "auto" or a count
    gpu_layers: int  # as given to llama.cpp
    kl_mean: float
    kl_p99: float
    top1_agreement: float
    perplexity: float
    prompt_tps: float
    generate_tps: float
    predicted_gpu_bytes: int  # the fit model's figure for this offload
    measured_gpu_bytes: int | None  # free VRAM before loading less free VRAM while loaded (None: no GPU)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _vram_used_while_loaded(path: Path, request: LadderRequest) -> int | None:
    """What the device's free memory drops by while the model is loaded with this offload."""
    import llama_cpp

    before = hardware.vram_free_bytes()
    if before is None:
        return None
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=request.context, n_gpu_layers=request.gpu_layers, verbose=False)
    try:
        llm.eval(llm.tokenize(b"Hello", add_bos=True))  # the compute buffers are allocated on first use
        during = hardware.vram_free_bytes()
    finally:
        llm.close()
    return None if during is None else max(0, before - during)


def offload_ladder(
    path: str | Path,
    levels: list[int | str],
    tokens: int = 1024,
    context: int = 512,
    report: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> list[OffloadRow]:
    """The CPU reading (offload 0) first, as the reference, then each offload level."""
    path = Path(path)
    report = report or (lambda p: None)
    cancel = cancel or CancelToken()
    size = fit.size_of_gguf(path)
    base = LadderRequest(path, levels=[], tokens=tokens, context=context, generate_tokens=32)
    text_tokens, bos, n_vocab = evaluation_tokens(base)
    chunks = chunks_of(text_tokens, context, tokens, bos)
    reference = np.zeros((len(chunks), context - context // 2 - 1, n_vocab), dtype=np.float32)
    rows: list[OffloadRow] = []
    for i, level in enumerate(["0", *[str(x) for x in levels]]):
        layers = layer_count(level if level in (HALF, ALL, AUTO) else int(level), size)
        request = LadderRequest(path, levels=[], tokens=tokens, context=context, gpu_layers=layers)
        report(Progress(i, len(levels) + 1, "", f"Offload {level}: {layers} layers", "Measuring"))
        m = measure(
            path,
            chunks,
            request,
            None if i == 0 else reference,
            reference if i == 0 else None,
            report,
            cancel,
            f"offload {level}",
        )
        predicted = fit.estimate(size, context, fit.Machine.now(), layers).gpu_bytes
        rows.append(
            OffloadRow(
                level=level,
                gpu_layers=layers,
                kl_mean=m.kl_mean,
                kl_p99=m.kl_p99,
                top1_agreement=m.top1_agreement,
                perplexity=m.perplexity,
                prompt_tps=m.prompt_tps,
                generate_tps=m.generate_tps,
                predicted_gpu_bytes=predicted,
                measured_gpu_bytes=_vram_used_while_loaded(path, request) if layers else 0,
            )
        )
    return rows
