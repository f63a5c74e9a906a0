"""The download queue's state machine (quantdesk.core.hub.queue) without Qt: real downloads from
the fake Hub, run by two small job runners that stand in for the window's ctx.jobs.

- StepRunner runs a started job only when the test says so, in the test's thread: the order of
  things (one at a time, what starts next) is plain to read and deterministic.
- ThreadRunner runs each job in a thread, as ctx.jobs does, and hands its reports back to the
  test's thread as the window's event loop would (`deliver_until`), so a download can be paused
  or cancelled while it is stalled mid-file.
"""

from __future__ import annotations

import queue as stdlib_queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quantdesk.core.hub import client as hub
from quantdesk.core.hub import downloads
from quantdesk.core.hub.queue import INTERRUPTED, DownloadItem, DownloadQueue
from quantdesk.core.jobs import Cancelled, Progress
from tests.hubserver import TOKEN

REPO = "acme/Tiny-GGUF"
Q4, Q8 = "Tiny-Q4_K_M.gguf", "Tiny-Q8_0.gguf"
FAST = {"stall_timeout_s": 0.3, "retry_wait_s": 0.01}
ROOT = Path(__file__).resolve().parents[2]


def _spec(label: str, repo: str = REPO) -> downloads.DownloadSpec:
    details = hub.repo_details(repo)
    [group] = [g for g in hub.group_files(details.files) if g.label == label]
    return downloads.plan(repo, group=group, details=details)


def _run(queue: DownloadQueue, item: DownloadItem, report: Callable[[Progress], None] | None = None) -> None:
    """Run the item's job here and now, and tell the queue how it ended (what ctx.jobs does)."""
    job = item.job
    assert job is not None
    try:
        job.run(report or (lambda p: queue.job_progress(item, p)))
    except Cancelled:
        queue.job_cancelled(item)
    except Exception as e:  # noqa: BLE001 - every failure goes to the queue, as in the window
        queue.job_failed(item, e)
    else:
        queue.job_finished(item)


class StepRunner:
    """Keeps the started items; `step()` runs the one started last (one runs at a time) here."""

    def __init__(self) -> None:
        self.started: list[DownloadItem] = []
        self.queue: DownloadQueue | None = None

    def __call__(self, item: DownloadItem) -> None:
        self.started.append(item)

    def step(self) -> DownloadItem:
        assert self.queue is not None
        item = self.started[-1]
        _run(self.queue, item)
        return item


class ThreadRunner:
    """Runs each job in a thread; its reports wait in a queue until `deliver_until` hands them
    to the state machine in the test's thread, as the window's event loop hands a job's signals."""

    def __init__(self) -> None:
        self.events: stdlib_queue.Queue[Callable[[], None]] = stdlib_queue.Queue()
        self.threads: list[threading.Thread] = []
        self.queue: DownloadQueue | None = None

    def __call__(self, item: DownloadItem) -> None:
        queue = self.queue
        assert queue is not None

        def post(fn: Callable[..., None], *args: Any) -> None:
            self.events.put(lambda: fn(*args))

        def work() -> None:
            job = item.job
            assert job is not None
            try:
                job.run(lambda p: post(queue.job_progress, item, p))
            except Cancelled:
                post(queue.job_cancelled, item)
            except Exception as e:  # noqa: BLE001
                post(queue.job_failed, item, e)
            else:
                post(queue.job_finished, item)

        t = threading.Thread(target=work, daemon=True)
        self.threads.append(t)
        t.start()

    def deliver_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise AssertionError("timed out waiting")
            try:
                self.events.get(timeout=0.02)()
            except stdlib_queue.Empty:
                pass


class Events:
    """Every callback of the queue, in order, as (name, repo file label, state)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, str]] = []

    def callbacks(self) -> dict[str, Any]:
        def item_event(name: str) -> Callable[[DownloadItem], None]:
            return lambda item: self.log.append((name, item.spec.label, item.state))

        names = ("on_added", "on_change", "on_removed", "on_completed", "on_failed")
        return {**{n: item_event(n) for n in names}, "on_queue_change": lambda: self.log.append(("queue", "", ""))}

    def named(self, name: str) -> list[tuple[str, str]]:
        return [(label, state) for n, label, state in self.log if n == name]


def _queue(runner: StepRunner | ThreadRunner, events: Events | None = None, **job_options: Any) -> DownloadQueue:
    queue = DownloadQueue(runner, job_options={**FAST, **job_options}, **(events.callbacks() if events else {}))
    runner.queue = queue
    return queue


def _on_disk(item: DownloadItem) -> int:
    return downloads.downloaded_bytes(item.spec)


def test_downloads_run_one_at_a_time_in_order_and_land_in_the_library(fake_hub) -> None:
    runner, events = StepRunner(), Events()
    queue = _queue(runner, events)
    q4 = queue.add(_spec("Q4_K_M"))
    q8 = queue.add(_spec("Q8_0"))
    assert [i.state for i in queue.items()] == ["running", "queued"] and queue.running() is q4
    assert runner.started == [q4] and q4.job is not None and q8.job is None
    assert [p.id for p in downloads.pending()] == [q4.spec.id, q8.spec.id]  # queued ones survive a restart
    assert queue.add(q8.spec) is q8 and len(queue.items()) == 2  # the same download is not queued twice

    runner.step()
    assert q4.state == "done" and q4.job is None and q4.progress is None
    assert q4.done_bytes == q4.spec.total_bytes and queue.running() is q8 and runner.started == [q4, q8]
    runner.step()
    assert q8.state == "done" and queue.running() is None
    for item, name in ((q4, Q4), (q8, Q8)):
        assert (item.spec.dest / name).read_bytes() == fake_hub.repos[REPO].files[name]
    assert downloads.pending() == []
    assert events.named("on_added") == [("Q4_K_M", "queued"), ("Q8_0", "queued")]
    assert events.named("on_completed") == [("Q4_K_M", "done"), ("Q8_0", "done")]
    assert ("Q4_K_M", "running") in events.named("on_change")  # progress reports refresh the row
    assert events.named("on_failed") == [] and events.named("on_removed") == []
    # What follows a finished download: its row, the list, then the next one starting.
    after = events.log[events.log.index(("on_completed", "Q4_K_M", "done")) - 1 :][:4]
    assert after == [
        ("on_change", "Q4_K_M", "done"),
        ("on_completed", "Q4_K_M", "done"),
        ("queue", "", ""),
        ("on_change", "Q8_0", "running"),
    ]


def test_progress_reaches_the_item_and_a_finished_one_can_be_queued_again(fake_hub) -> None:
    runner = StepRunner()
    queue = _queue(runner)
    item = queue.add(_spec("Q8_0"))
    seen: list[tuple[str, int]] = []

    def report(p: Progress) -> None:
        queue.job_progress(item, p)
        seen.append((item.state, item.done_bytes))

    _run(queue, item, report)
    assert seen and all(state == "running" for state, _ in seen) and seen[-1][1] == item.spec.total_bytes
    assert item.state == "done"
    assert queue.add(item.spec) is item and item.state == "running"  # downloaded again, on request
    runner.step()
    assert item.state == "done"


def test_a_queued_download_can_be_held_back_and_resumed(fake_hub) -> None:
    runner = StepRunner()
    queue = _queue(runner)
    q4 = queue.add(_spec("Q4_K_M"))
    q8 = queue.add(_spec("Q8_0"))
    queue.pause(q8)
    assert q8.state == "paused" and q8.job is None
    runner.step()
    assert q4.state == "done" and q8.state == "paused" and queue.running() is None and runner.started == [q4]
    queue.pause(q4)  # a finished one has nothing to pause
    queue.resume(q4)  # nor to resume
    assert q4.state == "done"
    queue.resume(q8)
    assert q8.state == "running" and runner.started == [q4, q8]
    runner.step()
    assert q8.state == "done"


def test_pausing_a_running_download_keeps_its_bytes_and_resume_continues_them(fake_hub) -> None:
    fake_hub.fault(Q8, "stall", after=50_000, seconds=10)
    runner, events = ThreadRunner(), Events()
    queue = _queue(runner, events, stall_timeout_s=20)  # pause must not wait for the stall to time out
    item = queue.add(_spec("Q8_0"))
    runner.deliver_until(lambda: _on_disk(item) == 50_000)
    queue.pause(item)
    assert item.state == "running"  # until the job says it stopped
    runner.deliver_until(lambda: item.state == "paused")
    assert item.job is None and item.error == "" and queue.running() is None
    assert [p.id for p in downloads.pending()] == [item.spec.id] and _on_disk(item) == 50_000
    assert events.named("on_removed") == [] and events.named("on_failed") == []
    queue.resume(item)
    assert item.state == "running"
    runner.deliver_until(lambda: item.state == "done")
    assert fake_hub.ranges(Q8)[-1] == "bytes=50000-"
    assert (item.spec.dest / Q8).read_bytes() == fake_hub.repos[REPO].files[Q8]


def test_cancelling_a_running_download_deletes_its_bytes_and_starts_the_next(fake_hub) -> None:
    fake_hub.fault("F16/Tiny-F16-00001-of-00002.gguf", "stall", after=10_000, seconds=10)
    runner, events = ThreadRunner(), Events()
    queue = _queue(runner, events, stall_timeout_s=20)
    f16 = queue.add(_spec("F16"))
    q4 = queue.add(_spec("Q4_K_M"))
    runner.deliver_until(lambda: _on_disk(f16) == 10_000)
    queue.cancel(f16)
    assert f16 in queue.items()  # until the job says it stopped
    runner.deliver_until(lambda: q4.state == "done")
    assert f16.state == "cancelled" and queue.items() == [q4]
    assert events.named("on_removed") == [("F16", "cancelled")]
    assert not list(f16.spec.dest.rglob("*.part")) and downloads.pending() == []


def test_cancel_and_remove_of_downloads_that_are_not_running(fake_hub) -> None:
    runner, events = StepRunner(), Events()
    queue = _queue(runner, events)
    q4 = queue.add(_spec("Q4_K_M"))
    q8 = queue.add(_spec("Q8_0"))
    f16 = queue.add(_spec("F16"))
    runner.step()  # Q4 done; Q8 starts
    queue.cancel(f16)  # queued: forgotten, nothing on disk
    assert f16.state == "cancelled" and f16 not in queue.items()
    queue.pause(q8)  # a pause asked while running ends the run as paused
    runner.step()
    assert q8.state == "paused"
    queue.remove(q8)  # not finished: removing it cancels it
    assert q8.state == "cancelled" and downloads.pending() == [] and not list(q8.spec.dest.rglob("*.part"))
    queue.remove(q4)  # finished: it leaves the list, its file stays in the Library
    assert q4.state == "done" and (q4.spec.dest / Q4).exists()
    assert queue.items() == [] and [label for label, _ in events.named("on_removed")] == ["F16", "Q8_0", "Q4_K_M"]


def test_a_failure_is_explained_and_retry_succeeds_once_fixed(fake_hub) -> None:
    runner, events = StepRunner(), Events()
    queue = _queue(runner, events)
    item = queue.add(_spec("Q4_K_M", "bigco/Locked-GGUF"))
    runner.step()
    assert item.state == "failed" and "gated" in item.error and "token" in item.error
    assert events.named("on_failed") == [("Q4_K_M", "failed")] and queue.running() is None
    assert [p.id for p in downloads.pending()] == [item.spec.id]  # a failed one is offered again next time
    hub.save_token(TOKEN)
    queue.retry(item)
    assert item.state == "running" and item.error == ""
    runner.step()
    assert item.state == "done" and downloads.pending() == []
    queue.retry(item)  # only a failed one is retried
    assert item.state == "done"


def test_a_corrupt_file_fails_in_plain_words_and_is_not_offered_again(fake_hub) -> None:
    fake_hub.fault(Q8, "corrupt")
    runner = StepRunner()
    queue = _queue(runner)
    item = queue.add(_spec("Q8_0"))
    runner.step()
    assert item.state == "failed" and "does not match the Hub's checksum" in item.error
    assert downloads.pending() == [] and not (item.spec.dest / Q8).exists()
    assert DownloadQueue(StepRunner()).restore() == []


def test_closing_pauses_and_the_next_session_restores_every_pending_download(fake_hub) -> None:
    fake_hub.fault(Q8, "stall", after=50_000, seconds=10)
    runner = ThreadRunner()
    queue = _queue(runner, stall_timeout_s=20)
    q8 = queue.add(_spec("Q8_0"))
    q4 = queue.add(_spec("Q4_K_M"))  # queued behind it, never started
    runner.deliver_until(lambda: _on_disk(q8) == 50_000)
    # What the window does on close: the page shuts the queue down, then ctx.jobs waits for the
    # workers; the job's last report is never handled, the app is gone by then.
    queue.shutdown()
    for t in runner.threads:
        t.join(10)
    assert not any(t.is_alive() for t in runner.threads)

    again, events = ThreadRunner(), Events()
    later = _queue(again, events)
    restored = later.restore()
    assert [i.spec.id for i in restored] == [q8.spec.id, q4.spec.id] == [i.spec.id for i in later.items()]
    assert all(i.state == "paused" and i.error == INTERRUPTED and i.job is None for i in restored)
    assert [i.done_bytes for i in restored] == [50_000, 0]
    assert events.named("on_added") == [("Q8_0", "paused"), ("Q4_K_M", "paused")] and later.running() is None
    assert later.restore() == []  # what is in the list already is not added twice
    back = restored[0]
    later.resume(back)
    assert back.error == "" and back.state == "running"
    again.deliver_until(lambda: back.state == "done")
    assert fake_hub.ranges(Q8)[-1] == "bytes=50000-"
    assert [p.id for p in downloads.pending()] == [q4.spec.id]


def test_shutdown_with_nothing_running_does_nothing(fake_hub) -> None:
    runner = StepRunner()
    queue = _queue(runner)
    queue.shutdown()
    item = queue.add(_spec("Q4_K_M"))
    queue.pause(item)  # running: asks the job to stop...
    queue.shutdown()  # ...and closing asks the same
    runner.step()
    assert item.state == "paused" and queue.items() == [item]


@pytest.mark.parametrize("state", ["queued", "paused", "failed"])
def test_cancelling_discards_what_an_earlier_run_left(fake_hub, state: str) -> None:
    fake_hub.fault(Q8, "drop", after=30_000)  # the connection drops after 30 kB...
    fake_hub.fault(Q8, "status", status=403)  # ...and the Hub refuses the retry: it fails, keeping them
    spec = _spec("Q8_0")
    runner = StepRunner()
    queue = _queue(runner)
    item = queue.add(spec)
    runner.step()
    assert item.state == "failed" and _on_disk(item) == 30_000
    if state == "paused":
        queue.resume(item)
        queue.pause(item)
        runner.step()
    elif state == "queued":
        queue.add(_spec("Q4_K_M"))  # running, so the resumed one waits
        queue.resume(item)
    assert item.state == state
    queue.cancel(item)
    assert item.state == "cancelled" and _on_disk(item) == 0 and item not in queue.items()
    assert spec.id not in [p.id for p in downloads.pending()]


def test_the_state_machine_needs_no_qt() -> None:
    """The window's adapter is the only Qt here: core imports none (import-linter checks the code;
    this checks what importing it pulls in at run time)."""
    code = (
        "import sys, quantdesk.core.hub.queue\n"
        "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
