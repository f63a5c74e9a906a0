"""The main window: a sidebar of pages on the left, the current page on the right.

How to add a page
-----------------
1. Create quantdesk/ui/<key>_page.py with a class `<Key>Page(QWidget)` constructed as
   `Page(ctx: AppContext, parent=None)` and a class attribute `title`. Subclassing
   quantdesk.ui.widgets.BasePage gives the standard header (title left, main action top right).
2. Add it to PAGES below (key, module, class, icon name from resources/icons/).
3. Long work never runs in the page: wrap it in an quantdesk.core.jobs.Job and start it with
   `ctx.jobs.start(job)`; see quantdesk/ui/workers.py for the signals and quantdesk/ui/widgets.py for
   JobProgress (progress + Cancel) and ErrorBanner (errors in plain words + Details).
4. Talk to other pages only through `ctx` (quantdesk/ui/context.py): `ctx.show_page("chat")`,
   `ctx.open_in_chat(path)`, `ctx.library_changed`.

A page that fails to import or construct is replaced by a notice with the error, so one broken
page never takes the window down.
"""

from __future__ import annotations

import importlib
import logging
import traceback

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QSizePolicy,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from quantdesk.ui import theme
from quantdesk.ui.context import PAGE_KEYS, AppContext
from quantdesk.ui.widgets import ErrorBanner, label

log = logging.getLogger(__name__)

# key, module, class, icon, sidebar label
PAGES = [
    ("discover", "quantdesk.ui.discover", "DiscoverPage", "discover", "Discover"),
    ("library", "quantdesk.ui.library_page", "LibraryPage", "library", "Library"),
    ("quantize", "quantdesk.ui.quantize_page", "QuantizePage", "quantize", "Quantize"),
    ("chat", "quantdesk.ui.chat", "ChatPage", "chat", "Chat"),
    ("lab", "quantdesk.ui.lab", "LabPage", "lab", "Lab"),
    ("server", "quantdesk.ui.server_page", "ServerPage", "server", "Server"),
    ("settings", "quantdesk.ui.settings_page", "SettingsPage", "settings", "Settings"),
]
assert tuple(p[0] for p in PAGES) == PAGE_KEYS


class BrokenPage(QWidget):
    """Stands in for a page whose code failed, saying so instead of crashing the window."""

    def __init__(self, name: str, details: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = name
        col = QVBoxLayout(self)
        col.setContentsMargins(24, 24, 24, 24)
        banner = ErrorBanner()
        banner.show_error(f"The {name} page could not be opened because of an internal error.", details)
        col.addWidget(banner)
        col.addStretch(1)


class Sidebar(QFrame):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Sidebar")
        self.setFixedWidth(176)
        col = QVBoxLayout(self)
        col.setContentsMargins(12, 16, 12, 12)
        col.setSpacing(4)
        col.addWidget(label("Quantdesk", "AppName"))
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.buttons: dict[str, QToolButton] = {}
        for i, (key, _module, _cls, icon, text) in enumerate(PAGES):
            b = QToolButton()
            b.setObjectName("SidebarButton")
            b.setText(f"  {text}")
            b.setIcon(theme.icon(icon))
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            b.setCheckable(True)
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            b.setToolTip(f"{text} (Ctrl+{i + 1})")
            b.setAccessibleName(text)
            b.setCursor(Qt.CursorShape.PointingHandCursor)
            self.group.addButton(b, i)
            self.buttons[key] = b
            col.addWidget(b)
            if key == "server":  # Settings sits at the bottom, apart from the pages of work
                col.addStretch(1)
        self.jobs_indicator = QLabel()
        self.jobs_indicator.setObjectName("JobsIndicator")
        self.jobs_indicator.setWordWrap(True)
        self.jobs_indicator.hide()
        col.insertWidget(col.count() - 1, self.jobs_indicator)

    def refresh_icons(self) -> None:
        for key, _m, _c, icon, _t in PAGES:
            self.buttons[key].setIcon(theme.icon(icon))


class MainWindow(QMainWindow):
    def __init__(self, ctx: AppContext | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx or AppContext(self)
        self.setWindowTitle("Quantdesk")
        self.setMinimumSize(960, 600)
        self.resize(1200, 780)
        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        self.sidebar = Sidebar()
        row.addWidget(self.sidebar)
        self.stack = QStackedWidget()
        row.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.pages: dict[str, QWidget] = {}
        for key, module, cls, _icon, text in PAGES:
            page = self._build_page(module, cls, text)
            self.pages[key] = page
            self.stack.addWidget(page)
        self.sidebar.group.idClicked.connect(self.switch_to_index)
        self._make_shortcuts()
        self.ctx.page_requested.connect(self.switch_to)
        self.ctx.jobs.changed.connect(self._update_jobs_indicator)
        theme.notifier().changed.connect(self.sidebar.refresh_icons)
        self.switch_to("chat")

    def _build_page(self, module: str, cls: str, name: str) -> QWidget:
        try:
            page_cls = getattr(importlib.import_module(module), cls)
            return page_cls(self.ctx)
        except Exception:
            details = traceback.format_exc()
            log.error("page %s failed to build:\n%s", name, details)
            return BrokenPage(name, details)

    def _make_shortcuts(self) -> None:
        for i, (key, *_rest) in enumerate(PAGES):
            act = QAction(self)
            act.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            act.triggered.connect(lambda checked=False, k=key: self.switch_to(k))
            self.addAction(act)
        new_chat = QAction("New chat", self)
        new_chat.setShortcut(QKeySequence("Ctrl+N"))
        new_chat.triggered.connect(self._new_chat)
        self.addAction(new_chat)
        prefs = QAction("Settings", self)
        prefs.setShortcuts([QKeySequence("Ctrl+,"), QKeySequence(QKeySequence.StandardKey.Preferences)])
        prefs.triggered.connect(lambda: self.switch_to("settings"))
        self.addAction(prefs)

    def _new_chat(self) -> None:
        self.switch_to("chat")
        self.ctx.new_chat_requested.emit()

    # -- pages ------------------------------------------------------------------------------
    def page_count(self) -> int:
        return self.stack.count()

    def current_key(self) -> str:
        return PAGES[self.stack.currentIndex()][0]

    def page(self, key: str) -> QWidget:
        return self.pages[key]

    def switch_to_index(self, index: int) -> None:
        self.switch_to(PAGES[index][0])

    def switch_to(self, key: str) -> None:
        index = PAGE_KEYS.index(key)
        self.stack.setCurrentIndex(index)
        self.sidebar.buttons[key].setChecked(True)
        page = self.pages[key]
        if hasattr(page, "on_shown"):
            page.on_shown()

    def _update_jobs_indicator(self) -> None:
        running = self.ctx.jobs.running()
        ind = self.sidebar.jobs_indicator
        if not running:
            ind.hide()
            return
        first = running[0].title
        more = f" and {len(running) - 1} more" if len(running) > 1 else ""
        ind.setText(f"● Working: {first}{more}")
        ind.setToolTip("\n".join(h.title for h in running))
        ind.show()

    # -- persistence ------------------------------------------------------------------------
    def restore_state(self) -> None:
        """Window geometry and last page from the previous run."""
        geometry = self.ctx.setting("window.geometry")
        if isinstance(geometry, str):
            self.restoreGeometry(QByteArray.fromBase64(geometry.encode("ascii")))
        last = self.ctx.setting("window.page", "chat")
        if last in PAGE_KEYS:
            self.switch_to(last)

    def save_state(self) -> None:
        # .data(): the stubs do not say QByteArray is a buffer, though it is one
        self.ctx.set_setting("window.geometry", bytes(self.saveGeometry().toBase64().data()).decode("ascii"))
        self.ctx.set_setting("window.page", self.current_key())

    def closeEvent(self, event: QCloseEvent) -> None:
        try:
            self.save_state()
        except OSError:
            log.exception("could not save the window state")
        for page in self.pages.values():
            if hasattr(page, "shutdown"):
                page.shutdown()
        self.ctx.jobs.shutdown()
        super().closeEvent(event)
