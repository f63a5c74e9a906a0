"""The download queue as the window sees it: a thin Qt adapter over quantdesk.core.hub.queue.

The state machine (one download at a time, pause/resume/cancel, restoring an earlier session's
downloads, pausing on close) lives in core and knows nothing of Qt or threads. This adapter gives
it what it lacks: it runs each DownloadJob with ctx.jobs (a worker thread) and feeds the job's
progress and end back into the state machine in the UI thread, and it turns the state machine's
callbacks into DownloadsModel rows and Qt signals for the page.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from quantdesk.core.hub import downloads
from quantdesk.core.hub import queue as core_queue
from quantdesk.core.hub.queue import DownloadItem
from quantdesk.ui.discover.models import DownloadsModel
from quantdesk.ui.widgets import while_alive


class DownloadQueue(QObject):
    """Runs downloads one at a time (they share one connection's bandwidth anyway), and knows the
    ones an earlier session left paused or interrupted (quantdesk.core.hub.downloads.pending)."""

    changed = Signal()  # the list or a state changed: the page updates its summary and buttons
    completed = Signal(object)  # DownloadItem, now in the Library
    failed = Signal(object)  # DownloadItem; its `error` says why

    def __init__(self, ctx: Any, parent: QObject | None = None, job_options: dict[str, Any] | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.model = DownloadsModel(self)
        self.core = core_queue.DownloadQueue(
            self._start,
            job_options=job_options,
            on_added=self.model.add,
            on_change=self.model.refresh,
            on_removed=self.model.remove,
            on_completed=self.completed.emit,
            on_failed=self.failed.emit,
            on_queue_change=self.changed.emit,
        )
        self.core.restore()

    # The page's verbs, handed to the state machine as they are.
    def items(self) -> list[DownloadItem]:
        return self.core.items()

    def find(self, spec: downloads.DownloadSpec) -> DownloadItem | None:
        return self.core.find(spec)

    def running(self) -> DownloadItem | None:
        return self.core.running()

    def add(self, spec: downloads.DownloadSpec) -> DownloadItem:
        return self.core.add(spec)

    def pause(self, item: DownloadItem) -> None:
        self.core.pause(item)

    def resume(self, item: DownloadItem) -> None:
        self.core.resume(item)

    def cancel(self, item: DownloadItem) -> None:
        self.core.cancel(item)

    def shutdown(self) -> None:
        """The window is closing: pause (not cancel) so the download resumes next time."""
        self.core.shutdown()

    def _start(self, item: DownloadItem) -> None:
        """Run the item's job in a worker thread; its signals arrive in the UI thread and go back
        to the state machine (while_alive: not after the page, and so this adapter, is gone)."""
        assert item.job is not None  # the state machine makes the job before it asks to start it
        handle = self.ctx.jobs.start(item.job)
        core = self.core
        handle.progress.connect(while_alive(self, lambda p: core.job_progress(item, p)))
        handle.finished.connect(while_alive(self, lambda _result: core.job_finished(item)))
        handle.failed.connect(while_alive(self, lambda e, _tb: core.job_failed(item, e)))
        handle.cancelled.connect(while_alive(self, lambda: core.job_cancelled(item)))
