"""Property tests: every SIMD path (AVX2, NEON) writes exactly the scalar path's bytes.

The scalar kernels are the definition of correct output (they match ggml byte for byte, see
test_kernels_vs_ggml.py); here hypothesis looks for rows where a SIMD kernel disagrees with them:
random shapes, float32 values anywhere in the finite range (subnormals, huge values, signed
zeros, repeated values), with and without an importance matrix. The ISA is switched through the
public API (quantdesk.kquant.set_isa), so this tests the dispatch table the app really uses.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import quantdesk.kquant as kq

SIMD_ISAS = [isa for isa in kq.available_isas() if isa != "scalar"]
pytestmark = pytest.mark.skipif(not SIMD_ISAS, reason="this machine/build has no SIMD kernels")

# Values from every corner of float32, and "ordinary" weights at several scales.
_ANY_FLOAT = st.floats(width=32, allow_nan=False, allow_infinity=False)
_SMALL_SET = st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1e-15, -3e-16, 65504.0, -65520.0, 1e-39, 7.0])


@st.composite
def rows_case(draw, block: int):
    nblocks = draw(st.integers(1, 6))
    nrows = draw(st.integers(1, 3))
    n = nblocks * block
    style = draw(st.sampled_from(["any", "gauss", "small-set", "mixed"]))
    if style == "gauss":
        seed = draw(st.integers(0, 2**32 - 1))
        scale = draw(st.sampled_from([1e-30, 1e-6, 0.02, 1.0, 300.0, 1e20]))
        x = (np.random.default_rng(seed).standard_normal((nrows, n)) * scale).astype(np.float32)
    else:
        elements = {
            "any": _ANY_FLOAT,
            "small-set": _SMALL_SET,
            "mixed": st.one_of(_SMALL_SET, st.floats(-4.0, 4.0, width=32)),
        }[style]
        x = draw(hnp.arrays(np.float32, (nrows, n), elements=elements))
    imatrix = None
    if draw(st.booleans()):
        imatrix = draw(
            hnp.arrays(
                np.float32,
                (n,),
                elements=st.one_of(
                    st.just(0.0), st.floats(0.0, 1e6, width=32), st.floats(0.0009765625, 10.0, width=32)
                ),
            )
        )
    return x, imatrix


@pytest.fixture
def restore_isa():
    before = kq.active_isa()
    yield
    kq.set_isa(before)


@pytest.mark.parametrize("isa", SIMD_ISAS)
@pytest.mark.parametrize("qtype", list(kq.TYPES))
def test_simd_equals_scalar(qtype: str, isa: str, restore_isa) -> None:
    block = kq.TYPES[qtype].block_size

    @settings(
        max_examples=50,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(rows_case(block))
    def check(case) -> None:
        x, imatrix = case
        kq.set_isa("scalar")
        want = kq.quantize(x, qtype, imatrix, threads=1)
        kq.set_isa(isa)
        got = kq.quantize(x, qtype, imatrix, threads=1)
        if not np.array_equal(got, want):
            first = int(np.flatnonzero(got != want)[0])
            raise AssertionError(
                f"{qtype} {isa} differs from scalar at byte {first} "
                f"(rows {x.shape}, imatrix {'yes' if imatrix is not None else 'no'})"
            )

    check()
