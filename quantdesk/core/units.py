"""Numbers in the units people think in: GB, MB/s, "8 s left"."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KB'. Decimal units, as file managers and the Hub show sizes."""
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            if unit == "B":
                return f"{int(n)} B"
            return f"{n:.1f} {unit}" if abs(n) < 100 else f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def human_duration(seconds: float | None) -> str:
    """72 -> '1 min 12 s'; None -> ''."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def human_rate(rate: float | None, unit: str) -> str:
    """Speed for a progress line: bytes become '1.2 GB/s', other units '3.4 tensors/s'."""
    if rate is None:
        return ""
    if unit == "B":
        return human_bytes(rate) + "/s"
    return f"{rate:.1f} {unit}/s"


def human_params(n: int | None) -> str:
    """A parameter count as people say it: 135M, 1.7B, 70B ("" when unknown)."""
    if not n:
        return ""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            v = n / div
            return f"{v:.1f}{unit}" if v < 10 else f"{v:.0f}{unit}"
    return str(n)
