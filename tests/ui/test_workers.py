"""The UI's job runner: results, failures, cancel and throttled progress arrive in the UI thread."""

from __future__ import annotations

import threading
import time

from quantdesk.core.jobs import Job, Progress
from quantdesk.ui.workers import JobManager


def test_result_and_progress_arrive_in_ui_thread(qtbot):
    manager = JobManager()
    seen_threads = []

    def fn(report, cancel):
        for i in range(50):
            report(Progress(i + 1, 50, "steps", f"step {i + 1}"))
            time.sleep(0.004)
        return "done"

    handle = manager.start(Job("counting", fn))
    progress = []
    handle.progress.connect(lambda p: (progress.append(p), seen_threads.append(threading.current_thread())))
    assert manager.running() == [handle]
    with qtbot.waitSignal(handle.finished, timeout=5000) as blocker:
        pass
    assert blocker.args == ["done"]
    assert manager.running() == []
    assert 1 <= len(progress) < 10, "progress is throttled to about 10 reports a second"
    assert progress[-1].done == 50, "the last report before the end is always delivered"
    assert all(t is threading.main_thread() for t in seen_threads)


def test_failure_carries_exception_and_traceback(qtbot):
    manager = JobManager()

    def fn(report, cancel):
        raise ValueError("bad input")

    handle = manager.start(Job("failing", fn))
    with qtbot.waitSignal(handle.failed, timeout=5000) as blocker:
        pass
    error, tb = blocker.args
    assert isinstance(error, ValueError) and "bad input" in tb
    assert handle.state == "failed"


def test_cancel(qtbot):
    manager = JobManager()
    started = threading.Event()

    def fn(report, cancel):
        started.set()
        while True:
            cancel.check()
            time.sleep(0.01)

    handle = manager.start(Job("endless", fn))
    assert started.wait(5)
    with qtbot.waitSignals([handle.cancelled, manager.changed], timeout=5000):
        manager.cancel(handle)
    assert handle.state == "cancelled" and manager.running() == []
