"""What this machine can do: CPU features, memory, and what the llama.cpp build can offload.

The figures the one fit model (quantdesk.core.fit) weighs a model against.
"""

from __future__ import annotations

import ctypes
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Memory:
    total_bytes: int
    available_bytes: int


def memory() -> Memory:
    vm = psutil.virtual_memory()
    return Memory(total_bytes=int(vm.total), available_bytes=int(vm.available))


def cpu_summary() -> str:
    return (
        f"{platform.machine()} · {psutil.cpu_count(logical=False) or '?'} cores / {psutil.cpu_count() or '?'} threads"
    )


@dataclass(frozen=True)
class Device:
    """One ggml compute device (the CPU, a CUDA card, Metal, a Vulkan device...)."""

    name: str
    description: str
    is_gpu: bool
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class LlamaBackend:
    """What the installed llama-cpp-python was built with."""

    version: str
    gpu_offload: bool
    system_info: str
    devices: tuple[str, ...]
    gpus: tuple[Device, ...] = ()

    @property
    def vram_free_bytes(self) -> int | None:
        """Free memory on the GPUs, read now (not when the backend was first asked), or None on a
        CPU-only build (nothing to offload to)."""
        return vram_free_bytes() if self.gpus else None


@lru_cache(maxsize=1)
def _ggml() -> ctypes.CDLL | None:
    """ggml's device registry, through ctypes: llama-cpp-python 0.3.36 has no binding for it."""
    import llama_cpp

    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    candidates = sorted(lib_dir.glob("libggml.*")) + sorted(lib_dir.glob("ggml.dll"))
    if not candidates:
        return None
    ggml = ctypes.CDLL(str(candidates[0]))
    ggml.ggml_backend_dev_count.restype = ctypes.c_size_t
    ggml.ggml_backend_dev_get.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    for fn in (ggml.ggml_backend_dev_name, ggml.ggml_backend_dev_description):
        fn.restype, fn.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
    ggml.ggml_backend_dev_type.restype, ggml.ggml_backend_dev_type.argtypes = ctypes.c_int, [ctypes.c_void_p]
    ggml.ggml_backend_dev_memory.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    return ggml


def _ggml_devices() -> list[Device]:
    """Every ggml device with its memory as the driver reports it now (not cached: free VRAM
    changes as models load, here and in other programs)."""
    ggml = _ggml()
    if ggml is None:
        return []
    devices = []
    for i in range(ggml.ggml_backend_dev_count()):
        dev = ggml.ggml_backend_dev_get(i)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        ggml.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        devices.append(
            Device(
                name=(ggml.ggml_backend_dev_name(dev) or b"?").decode("utf-8", "replace"),
                description=(ggml.ggml_backend_dev_description(dev) or b"").decode("utf-8", "replace"),
                is_gpu=ggml.ggml_backend_dev_type(dev) != 0,  # 0 is GGML_BACKEND_DEVICE_TYPE_CPU
                free_bytes=int(free.value),
                total_bytes=int(total.value),
            )
        )
    return devices


def vram_free_bytes() -> int | None:
    """Free memory on the GPUs now, or None when this llama.cpp build cannot offload (CPU only)."""
    if not llama_backend().gpus:
        return None
    try:
        return sum(d.free_bytes for d in _ggml_devices() if d.is_gpu)
    except (AttributeError, OSError):
        return None


@lru_cache(maxsize=1)
def llama_backend() -> LlamaBackend:
    """Ask llama.cpp itself (loading it costs ~100 ms, so the answer is cached; what changes, the
    free VRAM, is read fresh by vram_free_bytes)."""
    import llama_cpp

    llama_cpp.llama_backend_init()
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    try:  # ggml's device registry: CPU, CUDA0, Metal, Vulkan0, ...
        devices = _ggml_devices()
    except (AttributeError, OSError):
        devices = []
    return LlamaBackend(
        version=getattr(llama_cpp, "__version__", "?"),
        gpu_offload=bool(llama_cpp.llama_supports_gpu_offload()),
        system_info=info,
        devices=tuple(d.name for d in devices),
        gpus=tuple(d for d in devices if d.is_gpu),
    )


def describe_backend(backend: LlamaBackend | None = None) -> str:
    """Which llama.cpp backend and which device do the work, in one line for Settings and selftest:
    'llama-cpp-python 0.3.36 · GPU offload: CUDA0 (NVIDIA H200, 140 GB, 139 GB free)' or '... · CPU only'."""
    from quantdesk.core.units import human_bytes

    b = backend or llama_backend()
    head = f"llama-cpp-python {b.version}"
    if not b.gpu_offload or not b.gpus:
        why = "this build has no GPU backend" if not b.gpu_offload else "no GPU device found"
        return f"{head} · CPU only ({why})"
    fresh = {d.name: d for d in _ggml_devices() if d.is_gpu} if b.gpus else {}
    parts = []
    for d in b.gpus:
        now = fresh.get(d.name, d)
        parts.append(f"{d.name} ({d.description}, {human_bytes(d.total_bytes)}, {human_bytes(now.free_bytes)} free)")
    return f"{head} · GPU offload: {'; '.join(parts)}"
