"""The main window: seven pages, keyboard switching, persistence, and the safety net."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from quantdesk.core import settings
from quantdesk.ui.app import crash_reporter, make_application
from quantdesk.ui.context import PAGE_KEYS
from quantdesk.ui.main_window import BrokenPage, MainWindow


@pytest.fixture(autouse=True)
def no_preload():
    """These tests are about the window; loading the chat model in the background would only slow them."""
    settings.set_value("chat.preload", False)


def test_pages_and_shortcuts(qtbot):
    make_application([])
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()  # shortcuts need an active window; offscreen activates on request
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=3000)
    assert window.page_count() == 7
    for key in PAGE_KEYS:
        page = window.page(key)
        assert not isinstance(page, BrokenPage), f"{key} page failed to build"
        assert page.title
    for i, key in enumerate(PAGE_KEYS):
        qtbot.keyClick(window, Qt.Key(Qt.Key.Key_1 + i), Qt.KeyboardModifier.ControlModifier)
        assert window.current_key() == key
        assert window.sidebar.buttons[key].isChecked()
    qtbot.keyClick(window, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)
    assert window.current_key() == "settings"
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.current_key() == "chat"


def test_geometry_and_page_persist(qtbot):
    make_application([])
    first = MainWindow()
    qtbot.addWidget(first)
    first.resize(1000, 640)
    first.switch_to("lab")
    first.close()
    second = MainWindow()
    qtbot.addWidget(second)
    second.restore_state()
    assert second.current_key() == "lab"
    assert second.ctx.setting("window.geometry"), "geometry is saved on close"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_unexpected_exception_in_a_thread_is_logged_not_fatal(qtbot):
    import logging

    make_application([])
    reporter = crash_reporter()
    before = len(reporter.shown)
    t = threading.Thread(target=lambda: 1 / 0, name="boom")
    t.start()
    t.join()
    qtbot.waitUntil(lambda: len(reporter.shown) > before, timeout=3000)
    assert "ZeroDivisionError" in reporter.shown[-1]
    files = [h.baseFilename for h in logging.getLogger().handlers if getattr(h, "_quantdesk", False)]
    assert files and "ZeroDivisionError" in Path(files[0]).read_text(encoding="utf-8")


def test_appearance_switches_between_light_and_dark(qtbot, monkeypatch):
    from quantdesk.ui import theme

    monkeypatch.delenv("QUANTDESK_THEME", raising=False)
    make_application([])
    window = MainWindow()
    qtbot.addWidget(window)
    page = window.page("settings")
    box = page.theme_box
    try:
        with qtbot.waitSignal(theme.notifier().changed, timeout=2000):
            box.setCurrentIndex(box.findData("dark"))
        assert theme.is_dark() and settings.get("theme") == "dark"
        assert QApplication.instance().palette().window().color().name() == theme.DARK["window"]
        box.setCurrentIndex(box.findData("light"))
        assert not theme.is_dark()
    finally:
        box.setCurrentIndex(box.findData("system"))
