"""Our kernels write exactly ggml's bytes (ggml_quantize_chunk from the llama-cpp-python wheel).

For every type, with and without an importance matrix, on every ISA this machine can run:
real weights (rows of every 2-D tensor of the starter model) and adversarial rows of many
lengths. Dequantize must equal gguf-py's reference dequantizer.
"""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from bench.ggml_ref import ggml_quantize
from quantdesk import kquant
from tests.native.kq_data import adversarial_rows, imatrices, model_samples

TYPE_NAMES = list(kquant.TYPES)


@pytest.fixture(params=kquant.available_isas())
def isa(request: pytest.FixtureRequest):
    """Runs a test once per ISA this machine can run; restores the dispatcher's choice after."""
    before = kquant.active_isa()
    kquant.set_isa(request.param)
    yield request.param
    kquant.set_isa(before)


def first_diff(ours: np.ndarray, ref: np.ndarray, row_bytes: int) -> str:
    """Where two outputs first differ, as 'row r, byte b (ours x, ggml y)'."""
    i = int(np.flatnonzero(ours != ref)[0])
    n_diff = np.count_nonzero(ours != ref)
    return f"row {i // row_bytes}, byte {i % row_bytes} (ours {ours[i]}, ggml {ref[i]}), {n_diff} bytes differ"


def realistic_imatrix(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) ** 2 * rng.gamma(2.0, 1.0, n) + 1e-3).astype(np.float32)


@pytest.mark.parametrize("use_imatrix", [False, True], ids=["plain", "imatrix"])
@pytest.mark.parametrize("qtype", TYPE_NAMES)
def test_starter_model_tensors_match_ggml(starter_model, qtype, use_imatrix, isa):
    t = kquant.TYPES[qtype]
    samples = model_samples(starter_model)
    assert len(samples) == 211  # every 2-D tensor of SmolLM2-135M (1 + 30 blocks x 7)
    for k, sample in enumerate(samples):
        x = sample.for_block(t.block_size)
        qw = realistic_imatrix(x.shape[1], k) if use_imatrix else None
        ours = kquant.quantize(x, qtype, imatrix=qw, threads=1)
        ref = ggml_quantize(x, qtype, qw)
        if not np.array_equal(ours, ref):
            pytest.fail(
                f"{qtype} on {sample.name} [{isa}]: {first_diff(ours, ref, kquant.row_size(qtype, x.shape[1]))}"
            )


LENGTHS_32 = [32, 64, 96, 160, 576, 4096]
LENGTHS_256 = [256, 512, 768, 1536, 2304, 4352]


@pytest.mark.parametrize("qtype", TYPE_NAMES)
def test_adversarial_rows_match_ggml(qtype, isa):
    t = kquant.TYPES[qtype]
    for n in LENGTHS_32 if t.block_size == 32 else LENGTHS_256:
        labels, x = adversarial_rows(n)
        for im_name, qw in imatrices(n).items():
            ours = kquant.quantize(x, qtype, imatrix=qw, threads=1)
            ref = ggml_quantize(x, qtype, qw)
            if not np.array_equal(ours, ref):
                rb = kquant.row_size(qtype, n)
                row = int(np.flatnonzero(ours != ref)[0]) // rb
                pytest.fail(f"{qtype} n={n} imatrix={im_name} row '{labels[row]}' [{isa}]: {first_diff(ours, ref, rb)}")


@pytest.mark.parametrize("qtype", TYPE_NAMES)
def test_half_precision_inputs_match_float32_path(qtype, isa):
    """float16 and bfloat16 rows are converted inside the kernel path: same bytes as ggml on
    the same values given as float32."""
    rng = np.random.default_rng(3)
    x32 = (rng.standard_normal((6, 1024)) * 0.05).astype(np.float32)
    x16 = x32.astype(np.float16)
    ref = ggml_quantize(x16.astype(np.float32), qtype)
    assert np.array_equal(kquant.quantize(x16, qtype, threads=1), ref)

    bf16_bits = (x32.view(np.uint32) >> 16).astype(np.uint16)  # truncation is fine: any bf16 will do
    as_f32 = (bf16_bits.astype(np.uint32) << 16).view(np.float32)
    qw = realistic_imatrix(1024, 9)
    assert np.array_equal(
        kquant.quantize(bf16_bits, qtype, imatrix=qw, src_dtype="bf16", threads=1), ggml_quantize(as_f32, qtype, qw)
    )


def _every_finite_half(fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """Every finite float16 (or bfloat16) bit pattern, as 64 rows of 1024 in a shuffled order
    (non-finite patterns become zero), with the same values as float32."""
    bits = np.arange(65536, dtype=np.uint32)
    expo = 0x7C00 if fmt == "f16" else 0x7F80
    bits[(bits & expo) == expo] = 0
    bits = np.random.default_rng(11).permutation(bits).astype(np.uint16).reshape(64, 1024)
    if fmt == "f16":
        return bits.view(np.float16), bits.view(np.float16).astype(np.float32)
    return bits, (bits.astype(np.uint32) << 16).view(np.float32)


@pytest.mark.parametrize("fmt", ["f16", "bf16"])
def test_every_half_precision_value_gives_the_float32_bytes(fmt, isa):
    """The row loaders (F16C / NEON / bit shift) convert exactly: every finite 16-bit value,
    subnormals and the format's limits included, quantizes to the bytes of the same float32."""
    half, as_f32 = _every_finite_half(fmt)
    src_dtype = "bf16" if fmt == "bf16" else None
    with np.errstate(all="ignore"):
        for qtype in TYPE_NAMES:
            ours = kquant.quantize(half, qtype, src_dtype=src_dtype, threads=1)
            ref = kquant.quantize(as_f32, qtype, threads=1)
            assert np.array_equal(ours, ref), (
                f"{qtype} [{isa}] {fmt}: {first_diff(ours, ref, kquant.row_size(qtype, 1024))}"
            )


@pytest.mark.parametrize("fmt", ["f16", "bf16"])
@pytest.mark.parametrize("threads", [1, 2])
def test_nonfinite_half_precision_value_names_its_row(fmt, threads, isa):
    """Inf, -Inf and NaN (quiet and signalling) anywhere in a half-precision row: the error names
    that row, on every ISA (the check is fused into each ISA's conversion loop)."""
    poison = [0x7C00, 0xFC00, 0x7E00, 0x7C01] if fmt == "f16" else [0x7F80, 0xFF80, 0x7FC0, 0x7F81]
    src_dtype = "bf16" if fmt == "bf16" else None
    half, _ = _every_finite_half(fmt)
    for value in poison:
        for row, col in [(0, 0), (5, 7), (17, 8), (40, 31), (63, 1023)]:
            x = half.copy()
            x.view(np.uint16)[row, col] = value
            with pytest.raises(ValueError, match=rf"row {row} holds NaN or Inf"):
                kquant.quantize(x, "Q8_0", src_dtype=src_dtype, threads=threads)


@pytest.mark.parametrize("qtype", ["Q4_K", "Q8_0", "IQ4_XS"])
def test_threads_do_not_change_the_bytes(qtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((97, 512)).astype(np.float32)
    one = kquant.quantize(x, qtype, threads=1)
    assert np.array_equal(kquant.quantize(x, qtype, threads=4), one)
    assert np.array_equal(one, ggml_quantize(x, qtype))


@pytest.mark.parametrize("qtype", TYPE_NAMES)
def test_dequantize_matches_gguf_py(starter_model, qtype):
    t = kquant.TYPES[qtype]
    samples = model_samples(starter_model)
    x = np.concatenate([s.for_block(256).reshape(-1, 768) for s in samples[:40]])
    labels, adv = adversarial_rows(768)
    x = np.concatenate([x, adv])
    q = ggml_quantize(x, qtype, realistic_imatrix(768, 1))
    ours = kquant.dequantize(q, qtype, x.shape)
    with np.errstate(all="ignore"):  # adversarial rows give inf scales: gguf-py warns, we don't care
        ref = gguf.quants.dequantize(q.reshape(x.shape[0], -1), gguf.GGMLQuantizationType(t.ggml_type))
    np.testing.assert_array_equal(ours, ref.astype(np.float32))
    # a single row by length
    np.testing.assert_array_equal(kquant.dequantize(q[: kquant.row_size(qtype, 768)], qtype, 768), ref[0])


def test_type_table_matches_gguf():
    for name, t in kquant.TYPES.items():
        g = gguf.GGMLQuantizationType[name]
        assert t.ggml_type == int(g)
        assert (t.block_size, t.block_bytes) == gguf.GGML_QUANT_SIZES[g]
        assert kquant.row_size(name, 4 * t.block_size) == 4 * t.block_bytes
        assert kquant.qtype_info(g) is t
    assert kquant.TYPES["Q4_K"].bits_per_weight == 4.5
    assert kquant.TYPES["Q6_K"].bits_per_weight == 6.5625
