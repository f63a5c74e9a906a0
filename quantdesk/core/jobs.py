"""The one job abstraction every long task uses.

A job is a plain callable `fn(report, cancel) -> result`: it calls `report(Progress(...))` as it
goes and checks `cancel` often (at least every second of work). The CLI renders progress as a
bar on the terminal (quantdesk.cli.run_job); the UI runs the same job in a worker thread and turns the
reports into Qt signals (quantdesk.ui.workers). Nothing here knows about either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from quantdesk.core.units import human_bytes, human_duration, human_rate

T = TypeVar("T")


class Cancelled(Exception):  # noqa: N818 (a signal to stop, not an error)
    """Raised inside a job when the user cancelled it; the job cleans up and re-raises."""


class CancelToken:
    """A flag shared by the job and whoever may cancel it, safe across threads."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise Cancelled if cancel() was called; jobs call this between units of work."""
        if self._event.is_set():
            raise Cancelled()


@dataclass(frozen=True)
class Progress:
    """One progress report. `total` 0 means unknown; `rate` and `eta_s` are filled by the tracker."""

    done: float = 0.0
    total: float = 0.0
    unit: str = ""  # "B" for bytes, or a noun: "tensors", "tokens", "files"
    message: str = ""  # what is happening, in words: "Quantizing blk.12.ffn_down"
    stage: str = ""  # for multi-stage jobs: "Converting", "Quantizing"
    rate: float | None = None  # units per second
    eta_s: float | None = None

    @property
    def fraction(self) -> float | None:
        if self.total <= 0:
            return None
        return max(0.0, min(1.0, self.done / self.total))


ProgressCallback = Callable[[Progress], None]


def format_progress(p: Progress) -> str:
    """'Quantizing blk.3.ffn_up — 41% — 1.2 GB/s — 8 s left', the line the UI shows too."""
    parts = [p.message or p.stage or "Working"]
    if p.fraction is not None:
        parts.append(f"{p.fraction * 100:.0f}%")
    elif p.done:
        parts.append(human_bytes(p.done) if p.unit == "B" else f"{p.done:g} {p.unit}")
    if p.rate:
        parts.append(human_rate(p.rate, p.unit))
    if p.eta_s is not None:
        parts.append(human_duration(p.eta_s) + " left")
    return " — ".join(parts)


class ProgressTracker:
    """Adds speed and time left to raw reports, smoothing speed so the numbers don't jitter."""

    def __init__(self, sink: ProgressCallback | None, clock: Callable[[], float] = time.monotonic):
        self._sink = sink
        self._clock = clock
        self._t0 = clock()
        self._last_t = self._t0
        self._last_done = 0.0
        self._last_stage = ""
        self._rate: float | None = None

    def __call__(self, p: Progress) -> None:
        now = self._clock()
        if p.stage != self._last_stage or p.done < self._last_done:
            # A new stage (or a restart) has its own pace: start measuring afresh.
            self._last_stage, self._last_done, self._last_t, self._rate = p.stage, p.done, now, None
        dt = now - self._last_t
        if dt >= 0.2:
            inst = (p.done - self._last_done) / dt
            self._rate = inst if self._rate is None else 0.7 * self._rate + 0.3 * inst
            self._last_t, self._last_done = now, p.done
        eta = None
        if self._rate and self._rate > 0 and p.total > 0:
            eta = max(0.0, (p.total - p.done) / self._rate)
        if self._sink is not None:
            self._sink(replace(p, rate=self._rate, eta_s=eta))

    @property
    def elapsed(self) -> float:
        return self._clock() - self._t0


JobFn = Callable[[ProgressCallback, CancelToken], T]


class Job(Generic[T]):
    """A titled long task with its own cancel token."""

    def __init__(self, title: str, fn: JobFn[T]):
        self.title = title
        self.fn = fn
        self.cancel_token = CancelToken()

    def cancel(self) -> None:
        self.cancel_token.cancel()

    def run(self, on_progress: ProgressCallback | None = None) -> T:
        """Run in the calling thread; raises Cancelled if cancelled, or whatever the job raised."""
        tracker = ProgressTracker(on_progress)
        self.cancel_token.check()
        return self.fn(tracker, self.cancel_token)
