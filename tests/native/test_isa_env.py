"""A bad QUANTDESK_ISA is an error with a one-line message, not a silent fallback.

The C library reads the variable on first use and keeps a valid choice, so each case runs in a
fresh process. native/include/kquant.h documents the rules; native/tests/test_simd.c checks the
C side.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from quantdesk import kquant

QUANTIZE = "import numpy as np; from quantdesk import kquant; kquant.quantize(np.ones((1, 32), np.float32), 'Q8_0')"
ACTIVE = "from quantdesk import kquant; print(kquant.active_isa())"


def run_with_isa(value: str, code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QUANTDESK_ISA=value)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=os.getcwd())


def last_error_line(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode != 0, f"expected a failure, got stdout {out.stdout!r}"
    return out.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("code", [QUANTIZE, ACTIVE], ids=["quantize", "active_isa"])
def test_unknown_isa_is_an_error(code):
    assert last_error_line(run_with_isa("bogus", code)) == (
        "ValueError: QUANTDESK_ISA='bogus' is not an instruction set; use one of scalar|avx2|neon, or unset it"
    )


@pytest.mark.parametrize("code", [QUANTIZE, ACTIVE], ids=["quantize", "active_isa"])
def test_unavailable_isa_is_an_error(code):
    missing = next(name for name in ("avx2", "neon") if name not in kquant.available_isas())  # never both
    assert last_error_line(run_with_isa(missing, code)) == (
        f"ValueError: QUANTDESK_ISA='{missing}': this CPU or build cannot run {missing} kernels; "
        f"use one of {'|'.join(kquant.available_isas())}, or unset it"
    )


def test_empty_means_unset():
    out = run_with_isa("", ACTIVE)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == kquant.available_isas()[-1]  # the best one: scalar < avx2 / neon
