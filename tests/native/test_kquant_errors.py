"""Bad input to quantdesk.kquant gets a clear Python exception naming the problem (and the row),
never a crash, and the C library never writes outside the buffer it was given."""

from __future__ import annotations

import numpy as np
import pytest
from quantdesk.kquant._kquant import ffi, lib

from quantdesk import kquant

TYPE_NAMES = list(kquant.TYPES)


def rows(n: int = 256, r: int = 6) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((r, n)).astype(np.float32)


@pytest.mark.parametrize("qtype", TYPE_NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_nonfinite_row_is_named(qtype, bad):
    x = rows()
    x[3, 100] = bad
    with pytest.raises(ValueError, match=r"row 3 .*NaN or Inf"):
        kquant.quantize(x, qtype, threads=1)


def test_nonfinite_row_is_named_with_threads():
    x = rows(r=200)
    x[150, 0] = np.nan
    x[170, 5] = np.inf
    with pytest.raises(ValueError, match=r"row 150 "):
        kquant.quantize(x, "Q4_K", threads=4)


def test_nonfinite_half_precision_rows():
    x = rows().astype(np.float16)
    x[2, 7] = np.inf
    with pytest.raises(ValueError, match=r"row 2 "):
        kquant.quantize(x, "Q8_0")
    bits = (rows().view(np.uint32) >> 16).astype(np.uint16)
    bits[4, 9] = 0x7FC0  # bfloat16 NaN
    with pytest.raises(ValueError, match=r"row 4 "):
        kquant.quantize(bits, "Q6_K", src_dtype="bf16")


@pytest.mark.parametrize("qtype,n", [("Q4_0", 100), ("Q8_0", 48), ("Q4_K", 576), ("IQ4_XS", 32), ("Q6_K", 0)])
def test_row_length_not_multiple_of_block(qtype, n):
    x = np.zeros((2, n), dtype=np.float32)
    with pytest.raises(ValueError, match=rf"{qtype} needs rows whose length is a multiple of"):
        kquant.quantize(x, qtype)
    if n:
        with pytest.raises(ValueError, match="multiple of"):
            kquant.row_size(qtype, n)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.uint8, np.uint16])
def test_wrong_dtype(dtype):
    with pytest.raises(TypeError, match="float32, float16, or bfloat16"):
        kquant.quantize(np.zeros((2, 256), dtype=dtype), "Q4_K")


def test_bf16_needs_uint16_bits():
    with pytest.raises(TypeError, match="uint16"):
        kquant.quantize(np.zeros((2, 256), dtype=np.float32), "Q4_K", src_dtype="bf16")
    with pytest.raises(ValueError, match="src_dtype"):
        kquant.quantize(np.zeros((2, 256), dtype=np.uint16), "Q4_K", src_dtype="fp8")


@pytest.mark.parametrize("shape", [(256,), (2, 2, 256), ()])
def test_wrong_ndim(shape):
    with pytest.raises(ValueError, match="2-D"):
        kquant.quantize(np.zeros(shape, dtype=np.float32), "Q4_K")


def test_not_an_array():
    with pytest.raises(TypeError, match="numpy array"):
        kquant.quantize([[0.0] * 256], "Q4_K")


@pytest.mark.parametrize("qtype", ["Q4_0", "Q4_K", "IQ4_NL"])
def test_imatrix_wrong_length_or_values(qtype):
    x = rows()
    with pytest.raises(ValueError, match=r"imatrix must have one value per column \(256\)"):
        kquant.quantize(x, qtype, imatrix=np.ones(255, dtype=np.float32))
    with pytest.raises(ValueError, match="imatrix must have one value per column"):
        kquant.quantize(x, qtype, imatrix=np.ones((2, 256), dtype=np.float32))
    bad = np.ones(256, dtype=np.float32)
    bad[5] = np.nan
    with pytest.raises(ValueError, match="imatrix holds NaN or Inf"):
        kquant.quantize(x, qtype, imatrix=bad)


def test_unknown_types():
    with pytest.raises(ValueError, match="unsupported quant type 'Q7_K'"):
        kquant.quantize(rows(), "Q7_K")
    with pytest.raises(ValueError, match="unsupported quant type"):
        kquant.quantize(rows(), 1)  # F16 is not a quant type here
    with pytest.raises(TypeError):
        kquant.quantize(rows(), 2.5j)


def test_gguf_enum_and_lowercase_names_accepted():
    import gguf

    x = rows()
    a = kquant.quantize(x, gguf.GGMLQuantizationType.Q4_K)
    assert np.array_equal(a, kquant.quantize(x, "q4_k"))


def test_dequantize_checks_sizes():
    q = kquant.quantize(rows(), "Q4_K")
    with pytest.raises(ValueError, match="take 864 bytes"):
        kquant.dequantize(q[:-1], "Q4_K", (6, 256))
    with pytest.raises(ValueError, match="multiple of 256"):
        kquant.dequantize(q, "Q4_K", (3, 288))
    assert kquant.dequantize(q.tobytes(), "Q4_K", (6, 256)).shape == (6, 256)


def test_empty_input():
    assert kquant.quantize(np.zeros((0, 256), dtype=np.float32), "Q4_K").size == 0


def test_set_isa_rejects_unknown_and_unavailable():
    with pytest.raises(ValueError, match="unknown ISA"):
        kquant.set_isa("sse9")
    for name in ("avx2", "neon"):
        if name not in kquant.available_isas():
            with pytest.raises(ValueError, match="cannot run"):
                kquant.set_isa(name)
    assert kquant.active_isa() in kquant.available_isas()


# ---- the C entry points directly: status codes and no writes out of bounds ----


def c_quantize(qtype: str, x: np.ndarray, dst: np.ndarray, dst_size: int, fmt: int = 0, imatrix=None):
    bad = ffi.new("int64_t *")
    qw = ffi.NULL if imatrix is None else ffi.cast("const float *", imatrix.ctypes.data)
    got = lib.kq_quantize(
        kquant.TYPES[qtype].ggml_type,
        fmt,
        ffi.cast("const void *", x.ctypes.data),
        x.shape[0],
        x.shape[1],
        qw,
        ffi.cast("void *", dst.ctypes.data),
        dst_size,
        bad,
    )
    return got, bad[0]


@pytest.mark.parametrize("qtype", TYPE_NAMES)
def test_c_never_writes_past_dst(qtype):
    x = rows(512, 3)
    size = 3 * kquant.row_size(qtype, 512)
    dst = np.full(size + 64, 0xA5, dtype=np.uint8)
    assert c_quantize(qtype, x, dst, size - 1) == (-5, -1)  # KQ_ERR_DST_SIZE, nothing written
    assert (dst == 0xA5).all()
    got, _ = c_quantize(qtype, x, dst, size)
    assert got == size
    assert (dst[size:] == 0xA5).all()
    # a NaN in row 1: row 0 written, nothing past row 0, status names row 1
    x[1, 3] = np.nan
    dst[:] = 0xA5
    got, bad = c_quantize(qtype, x, dst, size)
    assert (got, bad) == (-3, 1)
    assert (dst[size // 3 :] == 0xA5).all()


def test_c_status_codes():
    x = rows(256, 2)
    dst = np.zeros(4096, dtype=np.uint8)
    assert c_quantize("Q4_K", np.zeros((2, 100), np.float32), dst, 4096)[0] == -2  # row length
    assert (
        lib.kq_quantize(
            99,
            0,
            ffi.cast("void *", x.ctypes.data),
            2,
            256,
            ffi.NULL,
            ffi.cast("void *", dst.ctypes.data),
            4096,
            ffi.NULL,
        )
        == -1
    )  # type
    assert c_quantize("Q4_K", x, dst, 4096, fmt=7)[0] == -4  # source format
    qw = np.ones(256, np.float32)
    qw[0] = np.inf
    assert c_quantize("Q4_K", x, dst, 4096, imatrix=qw)[0] == -7
    assert lib.kq_row_size(12, 512) == 288 and lib.kq_row_size(12, 100) == -2 and lib.kq_row_size(5, 32) == -1
    out = np.zeros(512, np.float32)
    assert (
        lib.kq_dequantize(12, ffi.cast("void *", dst.ctypes.data), 143, ffi.cast("float *", out.ctypes.data), 1, 256)
        == -5
    )


def test_env_override_picks_scalar():
    """QUANTDESK_ISA=scalar wins over the CPU's best ISA (a fresh process: the choice is made once)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, QUANTDESK_ISA="scalar")
    out = subprocess.run(
        [sys.executable, "-c", "from quantdesk import kquant; print(kquant.active_isa())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=os.getcwd(),
    )
    assert out.stdout.strip() == "scalar"


def test_big_endian_input_is_accepted():
    x = rows()
    assert np.array_equal(kquant.quantize(x.astype(">f4"), "Q4_K"), kquant.quantize(x, "Q4_K"))
