"""Fixtures for the quantize tests: the starter model in F16, and llama-quantize's outputs to compare with.

The F16 model is made once per session by llama.cpp itself (llama_model_quantize with
--allow-requantize to F16 dequantizes the starter's Q4_1/Q8_0 tensors), so our code is
compared against inputs it did not make. Reference outputs are made on demand and shared
between the tests of one session (plan tests and byte tests look at the same files).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bench.llama_quantize_ref import llama_quantize

F16_FTYPE = 1


@pytest.fixture(scope="session")
def quant_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("quantize")


@pytest.fixture(scope="session")
def f16_model(starter_model: Path, quant_workdir: Path) -> Path:
    """SmolLM2-135M with every weight dequantized to F16 (norms stay F32), by llama.cpp."""
    path = quant_workdir / "smollm2-135m-f16.gguf"
    llama_quantize(str(starter_model), str(path), F16_FTYPE, nthread=2, allow_requantize=True)
    return path


@pytest.fixture(scope="session")
def f16_small(starter_model: Path, quant_workdir: Path) -> Path:
    """The same, cut to its first 2 layers (llama-quantize --prune-layers) so that the slow
    levels (llama.cpp's IQ4_NL takes 30 s on the whole model) fit the test budget. The full
    model is still used for the plans of every level and for Q4_K_M bytes."""
    path = quant_workdir / "smollm2-135m-2layers-f16.gguf"
    llama_quantize(
        str(starter_model), str(path), F16_FTYPE, nthread=2, allow_requantize=True, prune_layers=list(range(2, 30))
    )
    return path


@pytest.fixture(scope="session")
def llama_reference(quant_workdir: Path) -> Callable[..., Path]:
    """reference(src, key, ftype, **options) -> llama.cpp's output, made once per key per session."""
    made: dict[tuple[Path, str], Path] = {}

    def reference(src: Path, key: str, ftype: int, **options: object) -> Path:
        if (src, key) not in made:
            out = quant_workdir / f"ref-{src.stem}-{key}.gguf"
            llama_quantize(str(src), str(out), ftype, nthread=2, **options)  # type: ignore[arg-type]
            made[(src, key)] = out
        return made[(src, key)]

    return reference
