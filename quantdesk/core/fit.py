"""The one memory-fit model: will this model, at this context, fit this machine?

Discover (a file on the Hub), the Library (a file on disk), Chat (before loading) and the Lab all
ask here, so the same file and context get the same verdict and the same figures on every page.

A model needs
- its weights (the file: llama.cpp maps it, and every byte is read for each token),
- the KV cache: K and V for every layer and position of the context, at the cache's type,
- llama.cpp's work buffers: RUNTIME_FIXED_BYTES + RUNTIME_SHARE of the weights (they grow with the
  model's width; measured on the starter model and 1-8B models, this bounds them).
The layers offloaded to a GPU take their share of the weights and KV cache to its memory; the
rest stays in RAM. The verdict:
- FITS: the RAM part leaves a fifth of the free RAM for everything else, and the GPU part is
  within the usable VRAM (90% of the free VRAM less a reserve for the device's own buffers);
- TIGHT: the RAM part fits in 90% of the machine's RAM: other programs must give way (or it swaps);
- WONT_FIT: otherwise, or when the GPU part is over the usable VRAM.
Free RAM and free VRAM are read fresh for every question (`Machine.now()`): both change while the
app runs, as other programs start and models load.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantdesk.core import hardware
from quantdesk.core.gguf.index import metadata_count, read_metadata
from quantdesk.core.units import human_bytes

RUNTIME_FIXED_BYTES = 64_000_000
RUNTIME_SHARE = 0.05
FITS_SHARE_OF_FREE_RAM = 0.8  # a fifth of the free RAM stays for everything else
TIGHT_SHARE_OF_TOTAL_RAM = 0.9  # beyond this even closing other programs will not do
VRAM_USABLE_SHARE = 0.9
VRAM_RESERVE_BYTES = 256_000_000  # the device's compute buffers and the driver's own

# Bytes per element of the KV cache for the cache types llama.cpp offers the user.
KV_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}

DEFAULT_CONTEXT = 4096  # a model's trained context can be 128k; the KV cache for that rarely fits
ALL_LAYERS = -1  # llama.cpp's n_gpu_layers for "every layer and the output"
AUTO_LAYERS = -1  # a gpu_layers setting of -1 means "as many as fit" (resolved by gpu_layers_that_fit)


class Verdict(enum.Enum):
    FITS = "fits"
    TIGHT = "tight"
    WONT_FIT = "won't fit"

    @property
    def words(self) -> str:
        """ "fits", "tight", "won't fit": what the pages show."""
        return self.value


@dataclass(frozen=True)
class ModelSize:
    """What sets the memory a model needs. `estimated`: the shape was guessed, not read."""

    weights_bytes: int
    n_layers: int  # repeating layers (llama.cpp's block_count)
    kv_dims: int  # K and V elements per layer and position: n_kv_heads * (key_length + value_length)
    max_context: int | None = None
    estimated: bool = False

    def kv_bytes(self, context: int, kv_cache_type: str = "f16") -> int:
        per_element = KV_BYTES_PER_ELEMENT.get(kv_cache_type, 2.0)
        return int(self.n_layers * context * self.kv_dims * per_element)

    def with_weights(self, weights_bytes: int) -> ModelSize:
        """The same model at another size (another quantization level of it)."""
        return ModelSize(weights_bytes, self.n_layers, self.kv_dims, self.max_context, self.estimated)


def default_context(size: ModelSize) -> int:
    """The context every page assesses with unless the user picks one: 4096, or the model's own if
    it was trained on less (Chat's default for a new model, too)."""
    return min(DEFAULT_CONTEXT, size.max_context or DEFAULT_CONTEXT)


@dataclass(frozen=True)
class Machine:
    """The memory a model can use now. vram_free_bytes None: this llama.cpp build cannot offload."""

    ram_available_bytes: int
    ram_total_bytes: int
    vram_free_bytes: int | None = None

    @classmethod
    def now(cls) -> Machine:
        mem = hardware.memory()
        return cls(mem.available_bytes, mem.total_bytes, hardware.vram_free_bytes())


@dataclass(frozen=True)
class FitEstimate:
    """A verdict with the figures behind it."""

    verdict: Verdict
    weights_bytes: int
    kv_bytes: int
    overhead_bytes: int
    context: int
    gpu_layers: int  # as resolved: 0 none, ALL_LAYERS every layer, else that many
    gpu_bytes: int  # the part on the GPU (weights and KV cache of the offloaded layers)
    machine: Machine
    estimated: bool = False

    @property
    def need_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.overhead_bytes

    @property
    def ram_bytes(self) -> int:
        return self.need_bytes - self.gpu_bytes

    def explain(self) -> str:
        """'needs 1.2 GB (weights 0.9 GB + KV cache 0.2 GB for 4,096 tokens + runtime 0.1 GB); ...'"""
        approx = "≈ " if self.estimated else ""
        m = self.machine
        text = (
            f"needs {approx}{human_bytes(self.need_bytes)} (weights {human_bytes(self.weights_bytes)} + "
            f"KV cache {human_bytes(self.kv_bytes)} for {self.context:,} tokens + runtime "
            f"{human_bytes(self.overhead_bytes)}); {human_bytes(m.ram_available_bytes)} of "
            f"{human_bytes(m.ram_total_bytes)} RAM free"
        )
        if m.vram_free_bytes is not None:
            text += f", {human_bytes(m.vram_free_bytes)} VRAM free"
            if self.gpu_bytes:
                where = "all layers" if self.gpu_layers == ALL_LAYERS else f"{self.gpu_layers} layers"
                text += f" ({where} on the GPU: {human_bytes(self.gpu_bytes)})"
        return text


def usable_vram(vram_free_bytes: int | None) -> int:
    if not vram_free_bytes:
        return 0
    return max(0, int(VRAM_USABLE_SHARE * vram_free_bytes) - VRAM_RESERVE_BYTES)


def gpu_layers_that_fit(size: ModelSize, context: int, vram_free_bytes: int | None, kv_cache_type: str = "f16") -> int:
    """What "auto" GPU layers means: as many repeating layers as fit the usable VRAM.

    Each layer costs its share of the weights (the output layer counts as one more) plus its slice
    of the KV cache. No GPU (None) means 0; when every layer and the output fit, ALL_LAYERS.
    """
    budget = usable_vram(vram_free_bytes)
    if budget <= 0 or size.n_layers <= 0:
        return 0
    weights_per_layer = size.weights_bytes / (size.n_layers + 1)
    kv_per_layer = size.kv_bytes(context, kv_cache_type) / size.n_layers
    if budget >= (size.n_layers + 1) * weights_per_layer + size.n_layers * kv_per_layer:
        return ALL_LAYERS
    return max(0, min(size.n_layers, int(budget // (weights_per_layer + kv_per_layer))))


def _gpu_bytes(size: ModelSize, layers: int, kv: int) -> int:
    if layers == 0 or size.n_layers <= 0:
        return 0
    if layers == ALL_LAYERS or layers > size.n_layers:
        return size.weights_bytes + kv
    return int(layers * (size.weights_bytes / (size.n_layers + 1) + kv / size.n_layers))


def estimate(
    size: ModelSize,
    context: int,
    machine: Machine | None = None,
    gpu_layers: int = 0,
    kv_cache_type: str = "f16",
) -> FitEstimate:
    """The verdict for `size` at `context` with `gpu_layers` offloaded (AUTO_LAYERS: as many as fit)."""
    machine = machine or Machine.now()
    kv = size.kv_bytes(context, kv_cache_type)
    overhead = RUNTIME_FIXED_BYTES + int(RUNTIME_SHARE * size.weights_bytes)
    layers = gpu_layers
    if machine.vram_free_bytes is None:
        layers = 0  # nothing to offload to: llama.cpp keeps every layer on the CPU
    elif gpu_layers == AUTO_LAYERS:
        layers = gpu_layers_that_fit(size, context, machine.vram_free_bytes, kv_cache_type)
    gpu = _gpu_bytes(size, layers, kv)
    ram = size.weights_bytes + kv + overhead - gpu
    if gpu > usable_vram(machine.vram_free_bytes):
        verdict = Verdict.WONT_FIT
    elif ram <= FITS_SHARE_OF_FREE_RAM * machine.ram_available_bytes:
        verdict = Verdict.FITS
    elif ram <= TIGHT_SHARE_OF_TOTAL_RAM * machine.ram_total_bytes:
        verdict = Verdict.TIGHT
    else:
        verdict = Verdict.WONT_FIT
    return FitEstimate(verdict, size.weights_bytes, kv, overhead, context, layers, gpu, machine, size.estimated)


def default_gpu_layers(machine: Machine) -> int:
    """The offload every page assumes unless the user chose one: as many layers as fit where a
    GPU is there to take them (Chat's default for a new model), none otherwise."""
    return AUTO_LAYERS if machine.vram_free_bytes is not None else 0


def size_from_metadata(meta: dict[str, Any], weights_bytes: int) -> ModelSize:
    """A GGUF header's key/values (quantdesk.core.gguf.index.read_metadata) -> its ModelSize.
    A count a damaged file gets wrong reads as 0, unknown: llama.cpp says what is wrong on load."""
    arch = str(meta.get("general.architecture", ""))

    def count(key: str, default: int = 0) -> int:
        return metadata_count(meta.get(f"{arch}.{key}", default))

    heads = count("attention.head_count", 1) or 1
    kv_heads = count("attention.head_count_kv", heads) or heads
    head_dim = count("embedding_length") // heads
    key_length = count("attention.key_length", head_dim) or head_dim
    value_length = count("attention.value_length", head_dim) or head_dim
    return ModelSize(
        weights_bytes,
        n_layers=count("block_count"),
        kv_dims=kv_heads * (key_length + value_length),
        max_context=count("context_length") or None,
    )


def size_of_gguf(path: str | Path) -> ModelSize:
    """A GGUF file's ModelSize, from its header (fast: the vocabulary is not parsed).
    Raises GGUFError for a file that is not a readable GGUF."""
    path = Path(path)
    return size_from_metadata(read_metadata(path), path.stat().st_size)


def fit_at_default(path: str | Path, machine: Machine | None = None) -> FitEstimate:
    """A GGUF file as the Library shows it: at the default context and offload (Chat's defaults)."""
    size = size_of_gguf(path)
    machine = machine or Machine.now()
    return estimate(size, default_context(size), machine, default_gpu_layers(machine))
