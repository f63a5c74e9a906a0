"""The one fit model: its thresholds, the GPU split, fresh readings, and that every caller (Discover,
Library, Chat, Lab) gets the same verdict and figures for the same file and context."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantdesk.core import fit, hardware
from quantdesk.core.chat.engine import ChatSettings, default_settings, estimate_memory, read_facts
from quantdesk.core.fit import Machine, ModelSize, Verdict
from quantdesk.core.hub import client as hub
from quantdesk.core.hub.client import FileGroup, RemoteFile

GB = 10**9
MODEL = ModelSize(4 * GB, n_layers=32, kv_dims=2048, max_context=8192)


def test_the_thresholds() -> None:
    est = fit.estimate(MODEL, 4096, Machine(100 * GB, 128 * GB))
    assert est.kv_bytes == 32 * 4096 * 2048 * 2  # f16 K and V for every layer and position
    assert est.overhead_bytes == fit.RUNTIME_FIXED_BYTES + int(fit.RUNTIME_SHARE * 4 * GB)
    need = est.need_bytes
    assert fit.estimate(MODEL, 4096, Machine(int(need / 0.8) + 1, 64 * GB)).verdict is Verdict.FITS
    assert fit.estimate(MODEL, 4096, Machine(int(need / 0.8) - 10, 64 * GB)).verdict is Verdict.TIGHT
    assert fit.estimate(MODEL, 4096, Machine(GB, int(need / 0.9) + 1)).verdict is Verdict.TIGHT
    assert fit.estimate(MODEL, 4096, Machine(GB, int(need / 0.9) - 10)).verdict is Verdict.WONT_FIT
    # The KV cache type and the context change the cache only.
    q8 = fit.estimate(MODEL, 4096, Machine(100 * GB, 128 * GB), kv_cache_type="q8_0")
    assert q8.kv_bytes == int(32 * 4096 * 2048 * 34 / 32) and q8.weights_bytes == est.weights_bytes


def test_the_gpu_part_and_auto_layers() -> None:
    card = Machine(2 * GB, 8 * GB, vram_free_bytes=3 * GB)
    auto = fit.estimate(MODEL, 4096, card, gpu_layers=fit.AUTO_LAYERS)
    assert 0 < auto.gpu_layers < 32 and auto.gpu_bytes <= fit.usable_vram(3 * GB)
    assert auto.gpu_layers == fit.gpu_layers_that_fit(MODEL, 4096, 3 * GB)
    assert fit.estimate(MODEL, 4096, card, gpu_layers=999).verdict is Verdict.WONT_FIT  # more than the card
    big = Machine(2 * GB, 8 * GB, vram_free_bytes=80 * GB)
    everything = fit.estimate(MODEL, 4096, big, gpu_layers=fit.AUTO_LAYERS)
    assert everything.gpu_layers == fit.ALL_LAYERS and everything.ram_bytes == everything.overhead_bytes
    assert everything.verdict is Verdict.FITS and "all layers on the GPU" in everything.explain()
    # No GPU backend: a layer count means nothing, everything is in RAM.
    cpu = fit.estimate(MODEL, 4096, Machine(100 * GB, 128 * GB), gpu_layers=20)
    assert (cpu.gpu_layers, cpu.gpu_bytes) == (0, 0)
    assert fit.default_gpu_layers(card) == fit.AUTO_LAYERS and fit.default_gpu_layers(Machine(1, 1)) == 0


def test_free_memory_is_read_fresh_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter([hardware.Memory(16 * GB, 8 * GB), hardware.Memory(16 * GB, 2 * GB)])
    monkeypatch.setattr(hardware, "memory", lambda: next(readings))
    assert Machine.now().ram_available_bytes == 8 * GB
    assert Machine.now().ram_available_bytes == 2 * GB
    # On this CPU-only build there is no VRAM to read, each time.
    assert hardware.vram_free_bytes() is None and hardware.llama_backend().vram_free_bytes is None


def test_a_gguf_header_gives_the_size(starter_model: Path) -> None:
    size = fit.size_of_gguf(starter_model)
    assert size == read_facts(starter_model).size
    assert (size.weights_bytes, size.n_layers, size.kv_dims, size.max_context) == (
        starter_model.stat().st_size,
        30,
        3 * (64 + 64),
        8192,
    )
    assert fit.default_context(size) == 4096 and fit.default_context(ModelSize(1, 1, 1, 2048)) == 2048


def test_the_same_file_and_context_get_the_same_verdict_everywhere(starter_model: Path) -> None:
    machine = Machine(GB // 2, 2 * GB)  # small enough that the verdict is not trivially "fits"
    size = fit.size_of_gguf(starter_model)
    library = fit.fit_at_default(starter_model, machine)  # the Library's details pane
    facts = read_facts(starter_model)
    chat = estimate_memory(facts, default_settings(facts), machine)  # the Chat panel, default settings
    group = FileGroup("Q4_1", "gguf", (RemoteFile(starter_model.name, size.weights_bytes),), quant="Q4_1")
    (discover,) = hub.assess([group], size.with_weights(0), fit.default_context(size), machine)  # Discover
    lab = fit.estimate(size, 4096, machine)  # the Lab, at the same context
    assert library == chat == discover.fit == lab
    assert library.explain() == chat.explain() == discover.fit.explain()
    # Another context is another answer, the same on every page again.
    short = ChatSettings(context_length=512)
    assert estimate_memory(facts, short, machine) == fit.estimate(size, 512, machine)
