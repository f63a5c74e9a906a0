"""The UI side of the one job abstraction: run an quantdesk.core.jobs.Job in a worker thread.

Every long task in the window (download, convert, quantize, evaluate, load a model, generate a
reply) is an `quantdesk.core.jobs.Job` and runs through the JobManager that every page gets as
`ctx.jobs`. Nothing long ever runs in the UI thread.

How to run a job from a page
----------------------------
    from quantdesk.core.jobs import Job

    handle = self.ctx.jobs.start(Job("Quantizing model.gguf", my_fn))
    handle.progress.connect(self._on_progress)     # Progress, at most ~10 per second
    handle.finished.connect(self._on_finished)     # the value my_fn returned
    handle.failed.connect(self._on_failed)         # (exception, traceback text)
    handle.cancelled.connect(self._on_cancelled)   # the user (or the app) cancelled it
    handle.ended.connect(...)                      # after any of the three above
    ...
    handle.cancel()                                # from a Cancel button

All signals arrive in the UI thread, so slots may touch widgets. Connecting right after
`start()` is safe: the worker's reports are relayed through the UI thread's event loop, so
nothing is delivered before control returns to it. `JobProgress` (quantdesk/ui/widgets.py) is a
ready-made progress bar + message + Cancel button bound to a handle, and `ErrorBanner` shows a
failure in plain words with the details behind a toggle.

The manager keeps every running handle (`ctx.jobs.running()`), emits `changed` when that list
changes (the sidebar's jobs indicator listens), and cancels and waits for everything when the
window closes.

Progress is throttled in the worker (`min_interval`, 0.1 s by default) so a chatty job cannot
flood the UI; the last report before the end is always delivered. A job that streams text
(chat) keeps the text in an object the UI reads on each progress signal, so throttling never
loses tokens — it only batches them.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from quantdesk.core.jobs import Cancelled, Job, Progress

log = logging.getLogger(__name__)


class _Relay(QObject):
    """Carries reports from the worker thread to the handle in the UI thread (queued)."""

    progress = Signal(object)
    result = Signal(object)
    error = Signal(object, str)
    cancelled = Signal()


class JobHandle(QObject):
    """One job running (or finished) in the background, seen from the UI thread."""

    progress = Signal(object)  # Progress
    finished = Signal(object)  # the job's result
    failed = Signal(object, str)  # exception, traceback text
    cancelled = Signal()
    ended = Signal()  # after finished / failed / cancelled

    def __init__(self, job: Job, min_interval: float = 0.1, parent: QObject | None = None):
        super().__init__(parent)
        self.job = job
        self.min_interval = min_interval
        self.last_progress: Progress | None = None
        self.state = "pending"  # pending -> running -> finished | failed | cancelled
        self.result: Any = None
        self.error: BaseException | None = None
        self._relay = _Relay()
        self._relay.progress.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        self._relay.result.connect(self._on_result, Qt.ConnectionType.QueuedConnection)
        self._relay.error.connect(self._on_error, Qt.ConnectionType.QueuedConnection)
        self._relay.cancelled.connect(self._on_cancelled, Qt.ConnectionType.QueuedConnection)
        self._thread: threading.Thread | None = None

    @property
    def title(self) -> str:
        return self.job.title

    @property
    def running(self) -> bool:
        return self.state in ("pending", "running")

    def cancel(self) -> None:
        """Ask the job to stop; it ends with `cancelled` once it reaches its next check."""
        self.job.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker thread ends (tests and shutdown only). True if it ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- worker thread --------------------------------------------------------------------
    def _start(self) -> None:
        self.state = "running"
        self._thread = threading.Thread(target=self._work, name=f"job: {self.job.title}", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        last_emit = 0.0
        pending: list[Progress | None] = [None]

        def report(p: Progress) -> None:
            nonlocal last_emit
            now = time.monotonic()
            if now - last_emit >= self.min_interval:
                last_emit = now
                pending[0] = None
                self._relay.progress.emit(p)
            else:
                pending[0] = p

        try:
            result = self.job.run(report)
        except Cancelled:
            self._relay.cancelled.emit()
        except BaseException as e:  # every failure goes to the UI; none may kill the thread silently
            log.exception("job %r failed", self.job.title)
            self._relay.error.emit(e, traceback.format_exc())
        else:
            if pending[0] is not None:
                self._relay.progress.emit(pending[0])
            self._relay.result.emit(result)

    # -- UI thread ------------------------------------------------------------------------
    @Slot(object)
    def _on_progress(self, p: Progress) -> None:
        if self.running:
            self.last_progress = p
            self.progress.emit(p)

    @Slot(object)
    def _on_result(self, result: Any) -> None:
        self.state, self.result = "finished", result
        self.finished.emit(result)
        self.ended.emit()

    @Slot(object, str)
    def _on_error(self, error: BaseException, tb: str) -> None:
        self.state, self.error = "failed", error
        self.failed.emit(error, tb)
        self.ended.emit()

    @Slot()
    def _on_cancelled(self) -> None:
        self.state = "cancelled"
        self.cancelled.emit()
        self.ended.emit()


class JobManager(QObject):
    """Starts jobs in worker threads and keeps the list of those still running."""

    changed = Signal()  # a job started or ended

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._running: list[JobHandle] = []

    def start(self, job: Job, min_interval: float = 0.1) -> JobHandle:
        """Run `job` in a new worker thread; connect to the returned handle's signals."""
        handle = JobHandle(job, min_interval=min_interval)
        handle.ended.connect(lambda h=handle: self._forget(h))
        self._running.append(handle)
        log.info("job started: %s", job.title)
        handle._start()
        self.changed.emit()
        return handle

    def running(self) -> list[JobHandle]:
        return list(self._running)

    def cancel(self, job: Job | JobHandle) -> None:
        job.cancel()

    def cancel_all(self) -> None:
        for handle in self._running:
            handle.cancel()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel everything and wait for the workers (on window close), `timeout` in total."""
        self.cancel_all()
        deadline = time.monotonic() + timeout
        for handle in list(self._running):
            handle.wait(max(0.0, deadline - time.monotonic()))

    def _forget(self, handle: JobHandle) -> None:
        if handle in self._running:
            self._running.remove(handle)
            log.info("job %s: %s", handle.state, handle.title)
            self.changed.emit()
