"""Small building blocks every page uses, so pages look and behave alike.

- `BasePage`: a page with a header (title at the left, main actions at the top right) and a
  body layout; subclasses set `title` and add to `self.body`.
- `EmptyState`: an empty list that teaches what to do next, with an optional action button.
- `ErrorBanner`: an error in plain words, the one thing to do, and the details (exception,
  log path) behind a "Details" toggle. Never a raw traceback in the main view.
- `JobProgress`: progress bar + "what is happening — 41% — 1.2 GB/s — 8 s left" + Cancel,
  bound to a JobHandle from quantdesk/ui/workers.py.
"""

from __future__ import annotations

import html
import traceback
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from quantdesk.core import paths
from quantdesk.core.errors import as_sentence, explain, user_message
from quantdesk.core.fit import FitEstimate
from quantdesk.core.jobs import Progress, format_progress
from quantdesk.ui import theme
from quantdesk.ui.workers import JobHandle

RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


class RowTableModel(QAbstractTableModel):
    """A read-only table with one object per row in `self._rows`: the counts and the header
    every list of the app shares. Subclasses set COLUMNS and RIGHT_ALIGNED (the column numbers
    holding figures) and write data()."""

    COLUMNS: tuple[str, ...] = ()
    RIGHT_ALIGNED: frozenset[int] = frozenset()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._rows: list[Any] = []

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802 (Qt naming)
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,  # noqa: N802
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return self.COLUMNS[section]
            if role == Qt.ItemDataRole.TextAlignmentRole and section in self.RIGHT_ALIGNED:
                return RIGHT
        return None


def while_alive(owner: QObject, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a slot for a job's signal so that a job ending after its page was closed (the window
    went away first) is ignored instead of touching deleted widgets."""

    def call(*args: Any) -> None:
        if shiboken6.isValid(owner):
            fn(*args)

    return call


def setup_list_table(view: QTableView, stretch: int, row_height: int = 30) -> None:
    """The one look of the app's lists: whole-row single selection, no grid, read-only, the
    `stretch` column taking the spare width."""
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.verticalHeader().hide()
    view.verticalHeader().setDefaultSectionSize(row_height)
    view.setShowGrid(False)
    view.setWordWrap(False)
    header = view.horizontalHeader()
    header.setHighlightSections(False)
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)


def ask_for_gguf(parent: QWidget) -> str | None:
    """A GGUF file the user picks (starting in the models folder), or None if they cancel."""
    name, _ = QFileDialog.getOpenFileName(
        parent, "Choose a GGUF model", str(paths.models_dir()), "GGUF models (*.gguf)"
    )
    return name or None


def ask_to_delete(
    parent: QWidget, title: str, question: str, details: str, icon: QMessageBox.Icon = QMessageBox.Icon.Warning
) -> bool:
    """Ask before deleting something, with Delete as a destructive button and Cancel beside it."""
    box = QMessageBox(icon, title, question, parent=parent)
    box.setInformativeText(details)
    delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is delete


def primary_button(text: str, parent: QWidget | None = None) -> QPushButton:
    """The page's main action: the one accent-coloured button."""
    b = QPushButton(text, parent)
    b.setProperty("primary", True)
    b.setCursor(Qt.CursorShape.PointingHandCursor)
    return b


def label(text: str = "", object_name: str = "", wrap: bool = False) -> QLabel:
    lab = QLabel(text)
    if object_name:
        lab.setObjectName(object_name)
    lab.setWordWrap(wrap)
    return lab


class ElidedLabel(QLabel):
    """A one-line label that ends in '…' when there is not room for all of it (tooltip: the full text)."""

    def __init__(self, text: str = "", object_name: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        if object_name:
            self.setObjectName(object_name)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt naming)
        self._full = text
        self.setToolTip(text)
        self._elide()

    def full_text(self) -> str:
        return self._full

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, max(10, self.width()))
        super().setText(shown)


class PageHeader(QFrame):
    """Title on the left, the page's actions on the right."""

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("PageHeader")
        row = QHBoxLayout(self)
        row.setContentsMargins(24, 16, 24, 12)
        row.setSpacing(8)
        self.title_label = label(title, "PageTitle")
        self.title_label.setAccessibleName(f"{title} page")
        row.addWidget(self.title_label)
        self.subtitle = label("", "Muted")
        row.addWidget(self.subtitle)
        row.addStretch(1)
        self._actions = row

    def add_action(self, widget: QWidget) -> QWidget:
        self._actions.addWidget(widget)
        return widget


class BasePage(QWidget):
    """A page: header on top, `self.body` (a QVBoxLayout with page margins) below."""

    title = "Page"

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName("PageRoot")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        self.header = PageHeader(self.title)
        outer.addWidget(self.header)
        content = QWidget()
        self.body = QVBoxLayout(content)
        self.body.setContentsMargins(24, 16, 24, 24)
        self.body.setSpacing(12)
        outer.addWidget(content, 1)


class EmptyState(QWidget):
    """Centred title + explanation + optional action: what to do when there is nothing here."""

    def __init__(
        self,
        title: str,
        text: str,
        action: str = "",
        on_action: Callable[[], None] | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        col = QVBoxLayout(self)
        col.addStretch(1)
        t = label(title, "EmptyTitle")
        t.setAlignment(Qt.AlignmentFlag.AlignCenter)
        col.addWidget(t)
        body = label(text, "Muted", wrap=True)
        body.setAlignment(Qt.AlignmentFlag.AlignCenter)
        body.setMaximumWidth(460)
        body.setMinimumWidth(min(440, body.fontMetrics().horizontalAdvance(text)))
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(body)
        row.addStretch(1)
        col.addLayout(row)
        self.extra = QVBoxLayout()  # for page-specific additions (e.g. suggestions) under the text
        col.addLayout(self.extra)
        self.button: QPushButton | None = None
        if action:
            self.button = primary_button(action)
            if on_action:
                self.button.clicked.connect(on_action)
            brow = QHBoxLayout()
            brow.addStretch(1)
            brow.addWidget(self.button)
            brow.addStretch(1)
            col.addSpacing(8)
            col.addLayout(brow)
        col.addStretch(2)


class ErrorBanner(QFrame):
    """'Could not load the model: not a GGUF file. Pick another file.' [Details] [x]"""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("ErrorBanner")
        col = QVBoxLayout(self)
        col.setContentsMargins(12, 8, 8, 8)
        col.setSpacing(4)
        row = QHBoxLayout()
        self.message = label("", wrap=True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        row.addWidget(self.message, 1)
        self.details_button = QPushButton("Details")
        self.details_button.setCheckable(True)
        self.details_button.toggled.connect(lambda on: self.details.setVisible(on))
        row.addWidget(self.details_button)
        close = QPushButton("Dismiss")
        close.clicked.connect(self.hide)
        row.addWidget(close)
        col.addLayout(row)
        self.details: QPlainTextEdit = QPlainTextEdit()  # annotated: the toggle's lambda above reads it
        self.details.setReadOnly(True)
        self.details.setMaximumHeight(160)
        self.details.hide()
        col.addWidget(self.details)
        self.hide()

    def show_failure(self, error: BaseException, details: str = "", doing: str = "", after: str = "") -> None:
        """The one way a page reports a failed task (quantdesk.core.errors is the contract).

        `doing` names what failed ("Not quantized"), then comes the error's sentence for the user,
        or for anything that is not the user's problem (our bug) "an internal error" with the
        details behind the toggle; `after` says what became of their work ("Nothing was written.").
        """
        message = explain(error)
        if user_message(error) is None:
            message += "; Details has more"
            details = details or "".join(traceback.format_exception(error))
        text = as_sentence(f"{doing}: {message}" if doing else message)
        self.show_error(f"{text} {after}".strip(), details or message)

    def show_error(self, message: str, details: str = "") -> None:
        self.message.setText(message)
        log = f"Log file: {paths.log_file()}"
        self.details.setPlainText(f"{details.strip()}\n\n{log}" if details else log)
        self.details_button.setChecked(False)
        self.details.hide()
        self.show()


class JobProgress(QWidget):
    """A progress bar with the job's words and a Cancel button, bound to one JobHandle."""

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(4)
        row = QHBoxLayout()
        self.text = label("", "Muted")
        row.addWidget(self.text, 1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        row.addWidget(self.cancel_button)
        col.addLayout(row)
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.bar.setTextVisible(False)
        col.addWidget(self.bar)
        self._handle: JobHandle | None = None
        self.hide()

    def bind(self, handle: JobHandle) -> None:
        self._handle = handle
        self.text.setText(handle.title)
        self.bar.setRange(0, 0)
        self.cancel_button.setEnabled(True)
        handle.progress.connect(self.show_progress)
        handle.ended.connect(self.hide)
        self.show()

    def show_progress(self, p: Progress) -> None:
        self.text.setText(format_progress(p))
        if p.fraction is None:
            self.bar.setRange(0, 0)
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(p.fraction * 1000))

    def _cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.text.setText("Cancelling…")
        if self._handle is not None:
            self._handle.cancel()
        self.cancel_requested.emit()


def fit_html(est: FitEstimate) -> str:
    """The fit line every page shows for a model: "Fits — needs 160 MB (weights ...); 20 GB of 24 GB
    RAM free", the verdict in its tone and the figures muted, the same words everywhere."""
    c = theme.colors()
    tone = c[theme.VERDICT_TONE[est.verdict]]
    return (
        f'<span style="color:{tone}; font-weight:600">{est.verdict.words.capitalize()}</span>'
        f' — <span style="color:{c["muted"]}">{html.escape(est.explain())}</span>'
    )
