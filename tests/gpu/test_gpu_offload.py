"""GPU offload on a real GPU (skipped unless this llama.cpp was built with a GPU backend: `make gpu`).

On the starter model: 0, half and all layers on the GPU read the same text close to the CPU
(GPU arithmetic is not bit-identical, so closeness is KL and top-token agreement), "auto" is the
largest count the fit model says fits the free VRAM, and the memory the device reports while the
model is loaded is near the fit model's prediction."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantdesk.core import fit, hardware
from quantdesk.core.chat.engine import ChatEngine, ChatSettings
from quantdesk.core.lab.offload import ALL, AUTO, HALF, gpu_available, offload_ladder

pytestmark = pytest.mark.skipif(not gpu_available(), reason="this llama.cpp has no GPU backend (make gpu)")

# GPU kernels round differently; a Q4_1 135M model read on CUDA stays this close to the CPU.
MAX_KL = 0.01
MIN_TOP1 = 0.95


def test_offload_levels_stay_close_to_the_cpu(starter_model: Path) -> None:
    rows = {r.level: r for r in offload_ladder(starter_model, [HALF, ALL, AUTO], tokens=512, context=256)}
    for level in (HALF, ALL, AUTO):
        r = rows[level]
        assert r.kl_mean < MAX_KL and r.top1_agreement >= MIN_TOP1, r
        assert r.measured_gpu_bytes is not None and r.measured_gpu_bytes > 0
        # The device's own figure against the fit model's: within a quarter, plus the driver's buffers.
        assert abs(r.measured_gpu_bytes - r.predicted_gpu_bytes) <= 0.25 * r.predicted_gpu_bytes + 300_000_000, r
    size = fit.size_of_gguf(starter_model)
    assert rows[AUTO].gpu_layers == fit.gpu_layers_that_fit(size, 256, hardware.vram_free_bytes())


def test_chat_auto_offload_loads_and_replies(starter_model: Path) -> None:
    engine = ChatEngine()
    settings = ChatSettings(gpu_layers=fit.AUTO_LAYERS, temperature=0.0, max_tokens=8, seed=1)
    engine.load(starter_model, settings)
    try:
        from quantdesk.core.chat.engine import ReplyStream

        reply = engine.generate([{"role": "user", "content": "Say hi."}], settings, ReplyStream())
        assert reply.text.strip()
    finally:
        engine.unload()
