"""What this machine can do: CPU features, memory, and what the llama.cpp build can offload.

Answers "will it fit" questions for Discover, Chat and Lab with the figures behind them.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass
from functools import lru_cache

import psutil


@dataclass(frozen=True)
class Memory:
    total_bytes: int
    available_bytes: int


def memory() -> Memory:
    vm = psutil.virtual_memory()
    return Memory(total_bytes=int(vm.total), available_bytes=int(vm.available))


def cpu_summary() -> str:
    return f"{platform.machine()} · {psutil.cpu_count(logical=False) or '?'} cores / {psutil.cpu_count() or '?'} threads"


@dataclass(frozen=True)
class LlamaBackend:
    """What the installed llama-cpp-python was built with."""

    version: str
    gpu_offload: bool
    system_info: str
    devices: tuple[str, ...]


@lru_cache(maxsize=1)
def llama_backend() -> LlamaBackend:
    """Ask llama.cpp itself (loading it costs ~100 ms, so the answer is cached)."""
    import llama_cpp

    llama_cpp.llama_backend_init()
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    devices: list[str] = []
    try:  # ggml's device registry: CPU, CUDA0, Metal, Vulkan0, ...
        for i in range(llama_cpp.ggml_backend_dev_count()):
            dev = llama_cpp.ggml_backend_dev_get(i)
            devices.append(llama_cpp.ggml_backend_dev_name(dev).decode())
    except (AttributeError, OSError):
        pass
    return LlamaBackend(
        version=getattr(llama_cpp, "__version__", "?"),
        gpu_offload=bool(llama_cpp.llama_supports_gpu_offload()),
        system_info=info,
        devices=tuple(devices),
    )
