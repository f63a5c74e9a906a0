"""Starting the window: the QApplication, the look, logging, and the safety net for crashes.

An unexpected exception anywhere (UI thread or a plain Python thread) is logged to the log file
and shown in a dialog with the details behind a toggle; the app keeps running, because losing
a conversation or a half-done download to a bug in one button is worse than the bug.
"""

from __future__ import annotations

import gc
import logging
import logging.handlers
import signal
import sys
import threading
import traceback
from collections.abc import Sequence

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox

from quantdesk.core import paths
from quantdesk.ui import theme

log = logging.getLogger("quantdesk")

_LOG_FORMAT = "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"


def setup_logging() -> None:
    """Log to the data folder's log file (rotated at 2 MB), once per process."""
    root = logging.getLogger()
    if any(getattr(h, "_quantdesk", False) for h in root.handlers):
        return
    handler = logging.handlers.RotatingFileHandler(
        paths.log_file(), maxBytes=2_000_000, backupCount=2, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    handler._quantdesk = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO)


class _CrashReporter(QObject):
    """Shows the error dialog in the UI thread, whichever thread the exception came from."""

    report = Signal(str, str)

    def __init__(self) -> None:
        super().__init__()
        self.report.connect(self._show, Qt.ConnectionType.QueuedConnection)
        self._showing = False
        self.shown: list[str] = []  # summaries shown so far (tests read it)

    @Slot(str, str)
    def _show(self, summary: str, details: str) -> None:
        self.shown.append(summary)
        if self._showing or QGuiApplication.platformName() in ("offscreen", "minimal"):
            return  # a headless run (tests, selftest) logs but cannot click a dialog away
        self._showing = True
        try:
            box = QMessageBox(QApplication.activeWindow())
            box.setIcon(QMessageBox.Icon.Warning)
            box.setWindowTitle("Something went wrong")
            box.setText("Quantdesk hit an unexpected error. Your work is kept and the app keeps running.")
            box.setInformativeText(summary)
            box.setDetailedText(f"{details}\nLog file: {paths.log_file()}")  # the "Show Details…" toggle
            box.exec()
        finally:
            self._showing = False


_reporter: _CrashReporter | None = None


def _handle(exc_type, exc, tb, where: str) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        QApplication.quit()
        return
    details = "".join(traceback.format_exception(exc_type, exc, tb))
    log.error("unhandled exception in %s:\n%s", where, details)
    summary = f"{exc_type.__name__}: {exc}".strip()
    if _reporter is not None:
        _reporter.report.emit(summary[:300], details)


def install_excepthooks() -> None:
    """Route uncaught exceptions (UI thread and other threads) to the log and a dialog.

    A hook that was there before (pytest-qt's, in tests) is still called after ours, so tests
    keep failing on unexpected exceptions; Python's default one is not (it would only print).
    """
    global _reporter
    if _reporter is None:
        _reporter = _CrashReporter()
    if not getattr(sys.excepthook, "_quantdesk", False):
        previous = sys.excepthook

        def hook(exc_type, exc, tb) -> None:
            _handle(exc_type, exc, tb, "the UI thread")
            if previous is not sys.__excepthook__:
                previous(exc_type, exc, tb)

        hook._quantdesk = True  # type: ignore[attr-defined]
        sys.excepthook = hook
    if not getattr(threading.excepthook, "_quantdesk", False):
        previous_thread_hook = threading.excepthook

        def thread_hook(args) -> None:
            _handle(
                args.exc_type, args.exc_value, args.exc_traceback, f"thread {args.thread.name if args.thread else '?'}"
            )
            if previous_thread_hook is not threading.__excepthook__:
                previous_thread_hook(args)

        thread_hook._quantdesk = True  # type: ignore[attr-defined]
        threading.excepthook = thread_hook


def crash_reporter() -> _CrashReporter | None:
    return _reporter


def collect_garbage_on_the_gui_thread(app: QApplication) -> None:
    """Python's cycle collector runs in whichever thread happens to allocate when a threshold is
    crossed. When that is a worker thread and the garbage holds a Qt object (a closed page's widget
    in a reference cycle), Qt deletes it off the GUI thread and the process crashes (seen in the
    tests: a segfault inside a quantize-plan job). So automatic collection is switched off and the
    GUI thread collects on a timer instead, with the same generation thresholds."""
    if getattr(app, "_quantdesk_gc_timer", None) is not None:
        return
    gc.disable()

    def collect() -> None:
        counts, limits = gc.get_count(), gc.get_threshold()
        if counts[0] > limits[0]:
            generation = 2 if counts[2] > limits[2] else 1 if counts[1] > limits[1] else 0
            gc.collect(generation)

    timer = QTimer(app)
    timer.setInterval(250)
    timer.timeout.connect(collect)
    timer.start()
    app._quantdesk_gc_timer = timer  # type: ignore[attr-defined]


def make_application(argv: Sequence[str]) -> QApplication:
    """The QApplication with name, look and safety net; reuses one that already exists."""
    setup_logging()
    existing = QApplication.instance()
    assert existing is None or isinstance(existing, QApplication)  # widgets need a QApplication
    app = existing if existing is not None else QApplication(list(argv) or ["quantdesk"])
    app.setApplicationName("Quantdesk")
    app.setOrganizationName("Quantdesk")
    app.setApplicationDisplayName("Quantdesk")
    app.setStyle("Fusion")  # the same widgets everywhere; the palette and sheet give it our look
    theme.apply(app)
    if not getattr(app, "_quantdesk_scheme_hooked", False):
        app.styleHints().colorSchemeChanged.connect(lambda *_: theme.apply(app))
        app._quantdesk_scheme_hooked = True  # type: ignore[attr-defined]
    install_excepthooks()
    collect_garbage_on_the_gui_thread(app)
    return app


def run_gui(argv: Sequence[str] | None = None) -> int:
    """Open the main window (geometry and page restored) and run until it closes."""
    app = make_application(list(argv) if argv is not None else sys.argv[:1])
    from quantdesk.ui.main_window import MainWindow

    log.info("starting the window")
    window = MainWindow()
    window.restore_state()
    window.show()
    # Ctrl+C in the terminal closes the window properly (state saved, workers stopped). Python only
    # sees the signal when it runs, so a timer lets it run a few times a second.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(250)
    return int(app.exec())
