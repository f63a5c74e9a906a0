"""Test data shared by the native tests: real starter-model rows and adversarial rows.

Not a test module (no test_ prefix); imported by tests/native/test_*.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Sample:
    """A few real rows of one starter-model tensor, dequantized to float32."""

    name: str
    rows: np.ndarray  # (r, n) float32

    def for_block(self, block: int) -> np.ndarray:
        """The same weights as rows whose length is a multiple of `block` (K-quants need 256;
        the model's 576-wide rows are regrouped into one row of 4 * 576 = 9 * 256)."""
        if self.rows.shape[1] % block == 0:
            return self.rows
        flat = self.rows.reshape(-1)
        usable = flat.size - flat.size % block
        return flat[:usable].reshape(1, usable)


@lru_cache(maxsize=1)
def model_samples(path: Path, rows_per_tensor: int = 4) -> tuple[Sample, ...]:
    """Every 2-D tensor of the model: rows_per_tensor consecutive rows from a seeded offset."""
    import gguf

    reader = gguf.GGUFReader(path)
    rng = np.random.default_rng(1234)
    out = []
    for t in reader.tensors:
        if len(t.shape) != 2:
            continue
        data = t.data  # (nrows, row bytes) for quantized, (nrows, n) for float types
        start = int(rng.integers(0, data.shape[0] - rows_per_tensor + 1))
        part = np.asarray(data[start : start + rows_per_tensor])
        qtype = gguf.GGMLQuantizationType(int(t.tensor_type))
        rows = gguf.quants.dequantize(part, qtype).astype(np.float32)
        out.append(Sample(t.name, np.ascontiguousarray(rows)))
    return tuple(out)


def adversarial_rows(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Rows that stress the edge cases of the scale searches; returns (labels, (rows, n) float32)."""
    rng = np.random.default_rng(seed + n)
    rows: list[tuple[str, np.ndarray]] = []

    def add(label: str, v) -> None:
        rows.append((label, np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()))

    add("zeros", 0.0)
    add("negative zeros", -0.0)
    add("constant", 0.7)
    add("negative constant", -3.0)
    outlier = rng.standard_normal(n) * 0.01
    outlier[n // 3] = 1e4
    add("one huge outlier", outlier)
    neg_outlier = rng.standard_normal(n) * 0.01
    neg_outlier[n - 1] = -1e4
    add("one huge negative outlier", neg_outlier)
    add("subnormals", rng.standard_normal(n) * 1e-40)
    add("fp16 limits", rng.choice([65504.0, -65504.0, 0.0, 1.0], n))
    add("beyond fp16", rng.choice([65520.0, -7e4, 1e5, 3.0], n))
    add("large 1e6", rng.standard_normal(n) * 1e6)
    add("large 1e15", rng.standard_normal(n) * 1e15)
    for s in (1e-16, 9.9e-16, 1e-15, 1.01e-15, 1e-14):
        add(f"gaussian*{s:g}", rng.standard_normal(n) * s)
        add(f"constant {s:g}", s)
    sparse = np.zeros(n)
    sparse[::37] = 1e-15
    add("sparse 1e-15", sparse)
    add("cauchy clipped", np.clip(rng.standard_cauchy(n), -1e3, 1e3))
    add("student-t 2", rng.standard_t(2, n))
    add("student-t 1 clipped", np.clip(rng.standard_t(1, n), -1e4, 1e4))
    add("gaussian", rng.standard_normal(n))
    add("positive", np.abs(rng.standard_normal(n)))
    add("negative", -np.abs(rng.standard_normal(n)))
    add("quarter grid", np.round(rng.standard_normal(n) * 4) / 4)
    add("small integers", rng.integers(-8, 8, n).astype(float))
    add("int8 range", rng.integers(-127, 128, n).astype(float))
    half = rng.standard_normal(n)
    half[: n // 2] = 0
    add("half zero", half)
    alternating = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    add("alternating +-1", alternating)
    return [label for label, _ in rows], np.array([v for _, v in rows], dtype=np.float32)


def imatrices(n: int, seed: int = 0) -> dict[str, np.ndarray | None]:
    """Importance matrices to test with: none, realistic, flat, some zero columns, all zero."""
    rng = np.random.default_rng(seed + 7 * n)
    realistic = (rng.standard_normal(n) ** 2 * rng.gamma(2.0, 1.0, n) + 1e-3).astype(np.float32)
    some_zero = realistic.copy()
    some_zero[rng.random(n) < 0.3] = 0.0
    return {
        "none": None,
        "realistic": realistic,
        "ones": np.ones(n, dtype=np.float32),
        "some zero": some_zero,
        "all zero": np.zeros(n, dtype=np.float32),
    }
