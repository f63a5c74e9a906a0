"""The download queue's state machine: what the Discover page's queue does, without Qt or threads.

Downloads run one at a time (they share one connection's bandwidth anyway). Each entry is a
DownloadItem whose `state` moves like this:

    queued --start--> running --finished--> done
      |                  |----failed------> failed --resume/retry--> queued
      |                  |----paused------> paused --resume--------> queued
      |                  '----cancelled---> cancelled (leaves the list; the job deleted its partials)
      '--pause--> paused      queued/paused/failed --cancel--> cancelled (partials deleted, leaves the list)
                              done --cancel/remove--> leaves the list (the files stay in the Library)

Pausing or cancelling a running download only asks its job to stop; the item changes state when
the job reports back that it ended. Closing the app pauses (never cancels) the running download,
and the next session's queue `restore()`s every pending one (quantdesk.core.hub.downloads.pending)
as paused, so nothing fetched is lost.

Who runs the job: this module makes the DownloadJob but does not run it. The face passes a
`start(item)` callable that runs `item.job` somewhere (the window: in a worker thread through
ctx.jobs) and reports back, in the thread that owns the queue, with `job_progress`,
`job_finished`, `job_failed` and `job_cancelled`. What changed is told through plain callbacks
(`on_added`, `on_change`, `on_removed`, `on_completed`, `on_failed`, `on_queue_change`), which the
window turns into item-model updates and Qt signals. Not thread-safe: call everything from one thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quantdesk.core.errors import explain
from quantdesk.core.hub import downloads
from quantdesk.core.jobs import Progress

QUEUED, RUNNING, PAUSED, DONE, FAILED, CANCELLED = "queued", "running", "paused", "done", "failed", "cancelled"
STATES = (QUEUED, RUNNING, PAUSED, DONE, FAILED, CANCELLED)

INTERRUPTED = "Interrupted last time; resume to continue where it stopped."

ItemCallback = Callable[["DownloadItem"], None]


def _ignore_item(_item: DownloadItem) -> None:
    """The default for a callback nobody listens to."""


def _ignore() -> None:
    """The default for on_queue_change when nobody listens."""


@dataclass(eq=False)  # an entry is itself, not its field values: found with `in` and list.index
class DownloadItem:
    """One entry of the queue: a spec and where it stands."""

    spec: downloads.DownloadSpec
    state: str = QUEUED  # one of STATES
    job: downloads.DownloadJob | None = None  # while running
    progress: Progress | None = None  # the latest report of the running (or last) run
    error: str = ""  # why it failed or was interrupted, in the user's words
    done_bytes: int = 0  # what is on disk, for an item that has no progress report yet


class DownloadQueue:
    """Downloads, one at a time, with pause, resume, retry, cancel and remove.

    `start(item)` must run `item.job` and later call exactly one of job_finished, job_failed or
    job_cancelled for it (job_progress any number of times before), from the queue's thread.
    `job_options` go to every DownloadJob (tests make stalls short)."""

    def __init__(
        self,
        start: ItemCallback,
        *,
        job_options: dict[str, Any] | None = None,
        on_added: ItemCallback = _ignore_item,
        on_change: ItemCallback = _ignore_item,
        on_removed: ItemCallback = _ignore_item,
        on_completed: ItemCallback = _ignore_item,
        on_failed: ItemCallback = _ignore_item,
        on_queue_change: Callable[[], None] = _ignore,
    ):
        self._start = start
        self.job_options = dict(job_options or {})
        self.on_added = on_added  # an item joined the end of the list
        self.on_change = on_change  # an item's state, progress or error changed
        self.on_removed = on_removed  # an item left the list
        self.on_completed = on_completed  # a download is in the Library
        self.on_failed = on_failed  # a download failed; item.error says why
        self.on_queue_change = on_queue_change  # after any of the above: the list as a whole changed
        self._items: list[DownloadItem] = []

    # -- reading --------------------------------------------------------------------------
    def items(self) -> list[DownloadItem]:
        return list(self._items)

    def find(self, spec: downloads.DownloadSpec) -> DownloadItem | None:
        return next((i for i in self._items if i.spec.id == spec.id), None)

    def running(self) -> DownloadItem | None:
        return next((i for i in self._items if i.state == RUNNING), None)

    # -- what the user does ---------------------------------------------------------------
    def restore(self) -> list[DownloadItem]:
        """Offer again, paused, the downloads an earlier session left pending (paused, failed,
        queued, or interrupted when the app was closed or killed); returns the items added."""
        added = []
        for spec in downloads.pending():
            if self.find(spec) is not None:
                continue
            item = DownloadItem(spec, state=PAUSED, done_bytes=downloads.downloaded_bytes(spec), error=INTERRUPTED)
            self._append(item)
            added.append(item)
        if added:
            self.on_queue_change()
        return added

    def add(self, spec: downloads.DownloadSpec) -> DownloadItem:
        """Queue a download; one already in the list (paused, failed or done) is queued again."""
        item = self.find(spec)
        if item is None:
            item = DownloadItem(spec)
            self._append(item)
            downloads.remember(spec)  # a queued download survives a restart too
        elif item.state in (PAUSED, FAILED, DONE):
            item.state, item.error = QUEUED, ""
            self._changed(item)
        self._pump()
        self.on_queue_change()
        return item

    def pause(self, item: DownloadItem) -> None:
        """A running download stops and keeps its partial files (it becomes paused when its job
        ends); a queued one is simply held back."""
        if item.state == RUNNING and item.job is not None:
            item.job.pause()
        elif item.state == QUEUED:
            item.state = PAUSED
            self._changed(item)
            self.on_queue_change()

    def resume(self, item: DownloadItem) -> None:
        """Queue a paused or failed download again; it continues from what is on disk."""
        if item.state in (PAUSED, FAILED):
            item.state, item.error = QUEUED, ""
            self._changed(item)
            self._pump()
            self.on_queue_change()

    def retry(self, item: DownloadItem) -> None:
        """Try a failed download again (what resume does for it; a paused one is left as is)."""
        if item.state == FAILED:
            self.resume(item)

    def cancel(self, item: DownloadItem) -> None:
        """Stop and delete what was downloaded (a finished one just leaves the list)."""
        if item.state == RUNNING and item.job is not None:
            item.job.cancel()
            return  # the job deletes its partial files; job_cancelled removes the item
        if item.state != DONE:
            downloads.discard(item.spec)
            item.state = CANCELLED
        self._drop(item)
        self.on_queue_change()

    def remove(self, item: DownloadItem) -> None:
        """Take an item off the list. A finished download's files stay in the Library; any other
        is cancelled, so no partial files are left behind that nothing remembers."""
        self.cancel(item)

    def shutdown(self) -> None:
        """The app is closing: pause (not cancel) the running download so it resumes next time."""
        item = self.running()
        if item is not None and item.job is not None:
            item.job.pause()

    # -- what the job runner reports ------------------------------------------------------
    def job_progress(self, item: DownloadItem, p: Progress) -> None:
        item.progress = p
        item.done_bytes = int(p.done)
        if item in self._items:
            self._changed(item)

    def job_finished(self, item: DownloadItem) -> None:
        self._ended(item, DONE)

    def job_failed(self, item: DownloadItem, error: BaseException) -> None:
        self._ended(item, FAILED, error)

    def job_cancelled(self, item: DownloadItem) -> None:
        """The job stopped: paused if pause() (or shutdown) asked, else cancelled and gone."""
        paused = item.job is not None and item.job.paused
        self._ended(item, PAUSED if paused else CANCELLED)

    # -- inside ---------------------------------------------------------------------------
    def _pump(self) -> None:
        """Start the first queued download, unless one is running."""
        if self.running() is not None:
            return
        item = next((i for i in self._items if i.state == QUEUED), None)
        if item is None:
            return
        item.state, item.progress = RUNNING, None
        item.job = downloads.DownloadJob(item.spec, **self.job_options)
        self._start(item)
        self._changed(item)

    def _ended(self, item: DownloadItem, state: str, error: BaseException | None = None) -> None:
        item.job = None
        item.state = state
        if state == CANCELLED:
            if item in self._items:
                self._drop(item)
        else:
            if state == DONE:
                item.done_bytes = item.spec.total_bytes
                item.progress = None
            if error is not None:
                item.error = explain(error)
            self._changed(item)
            if state == DONE:
                self.on_completed(item)
            elif state == FAILED:
                self.on_failed(item)
        self.on_queue_change()
        self._pump()

    def _append(self, item: DownloadItem) -> None:
        self._items.append(item)
        self.on_added(item)

    def _drop(self, item: DownloadItem) -> None:
        self._items.remove(item)
        self.on_removed(item)

    def _changed(self, item: DownloadItem) -> None:
        if item in self._items:
            self.on_change(item)
