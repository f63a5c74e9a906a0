"""llama-quantize itself (`llama_cpp.llama_model_quantize` from the llama-cpp-python wheel), driven by ctypes.

The yardstick for whole files: tests compare our output with it byte for byte, and
bench/quantize_file.py times it. Options mirror the llama-quantize command line:

- imatrix: passed as the C API's array of {name, data, size} (llama_model_imatrix_data), the
  per-column values llama-quantize computes from an imatrix file (sum / count). The
  quantize.imatrix.* keys the llama-quantize tool adds around that call are passed the way it
  does, as kv_overrides (integers are written as u32 by llama.cpp).
- tensor_types: (regex, ggml type number) pairs, as llama_model_tensor_override.

Runnable as a script, so the bench can measure its time and memory in a child process:
    python -m bench.llama_quantize_ref IN OUT FTYPE NTHREAD
"""

from __future__ import annotations

import ctypes
import re
import sys
from collections.abc import Sequence

import numpy as np

_log_callback = None
_capture: list[list[str]] = []  # while a list is here, llama.cpp's log text is appended to it


def _install_logger() -> None:
    """Route llama.cpp's log through us: dropped (it logs every tensor), or captured for llama_plan."""
    global _log_callback
    if _log_callback is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback
    def _log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if _capture:
            _capture[-1].append(text.decode("utf-8", "replace"))

    llama_cpp.llama_log_set(_log, ctypes.c_void_p())
    _log_callback = _log  # keep it alive as long as the library may call it


def llama_quantize(
    src: str,
    dst: str,
    ftype: int,
    nthread: int = 2,
    *,
    allow_requantize: bool = False,
    pure: bool = False,
    output_tensor_type: int | None = None,
    token_embedding_type: int | None = None,
    tensor_types: Sequence[tuple[str, int]] = (),
    imatrix: dict[str, np.ndarray] | None = None,
    imatrix_kv: Sequence[tuple[str, object]] = (),
    prune_layers: Sequence[int] = (),
    dry_run: bool = False,
) -> None:
    """Quantize src to dst with llama.cpp. Raises RuntimeError when llama.cpp reports failure.

    imatrix_kv: (key, value) pairs, str or int, set as llama-quantize sets quantize.imatrix.*."""
    import llama_cpp

    _install_logger()
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = nthread
    p.allow_requantize = allow_requantize
    p.pure = pure
    if output_tensor_type is not None:
        p.output_tensor_type = output_tensor_type
    if token_embedding_type is not None:
        p.token_embedding_type = token_embedding_type
    keep: list[object] = []  # ctypes buffers must outlive the call
    if tensor_types:
        arr = (llama_cpp.llama_model_tensor_override * (len(tensor_types) + 1))()
        for i, (rx, t) in enumerate(tensor_types):
            b = rx.encode()
            keep.append(b)
            arr[i].pattern, arr[i].type = b, t
        arr[len(tensor_types)].pattern = None
        p.tt_overrides = arr
        keep.append(arr)
    if imatrix:
        arr = (llama_cpp.llama_model_imatrix_data * (len(imatrix) + 1))()
        for i, (name, values) in enumerate(imatrix.items()):
            v = np.ascontiguousarray(values, dtype=np.float32)
            keep += [v, name.encode()]
            arr[i].name = keep[-1]
            arr[i].data = v.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            arr[i].size = v.size
        arr[len(imatrix)].name = None
        p.imatrix = arr
        keep.append(arr)
    if imatrix_kv:
        arr = (llama_cpp.llama_model_kv_override * (len(imatrix_kv) + 1))()
        for i, (key, value) in enumerate(imatrix_kv):
            arr[i].key = key.encode()
            if isinstance(value, str):
                arr[i].tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR
                arr[i].value.val_str = value.encode()[:127]
            else:
                arr[i].tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT
                arr[i].value.val_i64 = int(value)
        arr[len(imatrix_kv)].key = b""
        p.kv_overrides = arr
        keep.append(arr)
    if prune_layers:
        arr = (ctypes.c_int32 * (len(prune_layers) + 1))(*prune_layers, -1)
        p.prune_layers = arr
        keep.append(arr)
    p.dry_run = dry_run
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize failed ({rc}) for {src} -> {dst}")


_PLAN_LINE = re.compile(r"\[\s*\d+/\s*\d+\]\s+(\S+)\s+-\s+\[[^\]]*\],\s+type =\s+(\w+),\s+size =[^\n(]*(?:\((\w+)\))?")


def llama_plan(src: str, ftype: int, **options: object) -> list[tuple[str, str]]:
    """(tensor name, type name) as llama_model_quantize would write them, from a --dry-run.

    llama.cpp only logs its dry-run decisions, so they are read from its log lines
    ("[  12/ 272] blk.0.attn_v.weight - [...], type = f16, size = ... -> ... (q8_0)")."""
    _install_logger()
    _capture.append([])
    try:
        llama_quantize(src, "", ftype, dry_run=True, **options)  # type: ignore[arg-type]
        text = "".join(_capture[-1])
    finally:
        _capture.pop()
    return [(m.group(1), (m.group(3) or m.group(2)).upper()) for m in _PLAN_LINE.finditer(text)]


if __name__ == "__main__":
    inp, out, ft, nt = sys.argv[1:5]
    llama_quantize(inp, out, int(ft), int(nt))
