"""The offload comparison's machinery, on the CPU: reading with "0 layers on the GPU" twice must
agree exactly, so whatever a GPU machine reports (tests/gpu/) is the GPU's difference alone."""

from __future__ import annotations

from pathlib import Path

from quantdesk.core import fit
from quantdesk.core.lab.offload import ALL, AUTO, HALF, gpu_available, layer_count, offload_ladder


def test_the_cpu_against_itself_agrees_exactly(starter_model: Path) -> None:
    rows = offload_ladder(starter_model, [0], tokens=256, context=128)
    assert [r.level for r in rows] == ["0", "0"]
    again = rows[1]
    assert again.kl_mean < 1e-6 and again.top1_agreement == 1.0
    assert again.prompt_tps > 0 and again.generate_tps > 0
    assert (again.gpu_layers, again.predicted_gpu_bytes, again.measured_gpu_bytes) == (0, 0, 0)


def test_offload_levels_in_layers(starter_model: Path) -> None:
    size = fit.size_of_gguf(starter_model)
    assert layer_count(HALF, size) == 15 and layer_count(ALL, size) == fit.ALL_LAYERS
    assert layer_count("7", size) == 7
    if not gpu_available():  # a CPU-only llama.cpp: "auto" has nothing to fill
        assert layer_count(AUTO, size) == 0
