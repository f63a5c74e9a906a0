"""Discover: search the Hugging Face Hub, see what each file costs and whether it fits this
machine, and download it without babysitting.

Layout: search box + filters on top; results (left) and the chosen model (right: licence, tags,
files grouped by quant level with a fit verdict and the recommended one highlighted, README);
the download queue below. Every call to the Hub is an quantdesk.core.jobs.Job run by `ctx.jobs`, so
the window never waits on the network. Lists are Qt item models over quantdesk.core's dataclasses:
ResultsModel (search results), FilesModel (grouped files + fit) and DownloadsModel (the queue).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, QRectF, Qt, QUrl, Signal
from PySide6.QtGui import QBrush, QDesktopServices, QFont, QKeySequence, QPainter, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from quantdesk.core.errors import as_sentence, explain, user_message
from quantdesk.core.fit import Machine
from quantdesk.core.hub import client as hub
from quantdesk.core.hub import downloads
from quantdesk.core.jobs import Job, Progress
from quantdesk.core.units import human_bytes, human_duration, human_params, human_rate
from quantdesk.ui import theme
from quantdesk.ui.widgets import (
    RIGHT,
    BasePage,
    EmptyState,
    ErrorBanner,
    RowTableModel,
    label,
    primary_button,
    setup_list_table,
    while_alive,
)

log = logging.getLogger(__name__)

SORT_CHOICES = [
    ("Most downloaded", "downloads"),
    ("Most liked", "likes"),
    ("Trending", "trending"),
    ("Recently updated", "updated"),
]
SIZE_CHOICES = [
    ("Any size", None, None),
    ("Up to 3B", None, 3),
    ("3B to 9B", 3, 9),
    ("9B to 35B", 9, 35),
    ("35B and up", 35, None),
]
ARCHITECTURES = ["", "llama", "qwen2", "qwen3", "mistral", "gemma2", "gemma3", "phi3", "deepseek", "granite"]
CONTEXTS = [2048, 4096, 8192, 16384, 32768, 131072]


# --------------------------------------------------------------------------------------------
# Item models


class ResultsModel(RowTableModel):
    """Search results, one row per repo; pages are appended as the user asks for more."""

    COLUMNS = ("Model", "Author", "Downloads", "Likes", "Updated", "License", "Access")
    RIGHT_ALIGNED = frozenset({2, 3})

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._rows: list[hub.ModelSummary] = []

    def set_rows(self, rows: list[hub.ModelSummary]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def append_rows(self, rows: list[hub.ModelSummary]) -> None:
        known = {r.repo_id for r in self._rows}
        rows = [r for r in rows if r.repo_id not in known]
        if not rows:
            return
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(rows) - 1)
        self._rows.extend(rows)
        self.endInsertRows()

    def summary(self, row: int) -> hub.ModelSummary:
        return self._rows[row]

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        r, col = self._rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (
                r.name + (f"  ·  {human_params(r.parameters)}" if r.parameters else ""),
                r.author,
                f"{r.downloads:,}",
                f"{r.likes:,}",
                r.last_modified.strftime("%Y-%m-%d") if r.last_modified else "",
                r.license or "—",
                "Gated" if r.gated else "Open",
            )[col]
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == 6 and r.gated:
                return "The authors ask you to accept their terms on the Hub before downloading."
            return r.repo_id
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (2, 3):
            return RIGHT
        if role == Qt.ItemDataRole.ForegroundRole and col == 6 and r.gated:
            return QBrush(theme.color("warning"))
        if role == Qt.ItemDataRole.UserRole:
            return r
        return None


class FilesModel(RowTableModel):
    """A repo's files grouped the way people pick them, each with its fit verdict."""

    COLUMNS = ("Level", "Size", "This machine", "Memory needed")
    RIGHT_ALIGNED = frozenset({1, 3})

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._rows: list[hub.GroupFit] = []

    def set_rows(self, rows: list[hub.GroupFit]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def item(self, row: int) -> hub.GroupFit:
        return self._rows[row]

    def recommended_row(self) -> int:
        return next((i for i, r in enumerate(self._rows) if r.recommended), -1)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        gf, col = self._rows[index.row()], index.column()
        g, fit = gf.group, gf.fit
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                extra = f"  ·  {g.shards} parts" if g.shards > 1 else ""
                if not g.complete:
                    extra += "  ·  parts missing"
                return (
                    ("★ " if gf.recommended else "") + g.label + extra + ("  ·  recommended" if gf.recommended else "")
                )
            if col == 1:
                return human_bytes(g.size)
            if col == 2:
                return "—" if g.kind == "projector" else fit.verdict.words
            return ("≈ " if fit.estimated else "") + human_bytes(fit.need_bytes)
        if role == Qt.ItemDataRole.ToolTipRole:
            return fit.explain() + ("" if g.kind != "checkpoint" else " (as F16; quantizing makes it smaller)")
        if role == Qt.ItemDataRole.ForegroundRole and col == 2 and g.kind != "projector":
            return QBrush(theme.color(theme.VERDICT_TONE[fit.verdict]))
        if role == Qt.ItemDataRole.ForegroundRole and col == 0 and gf.recommended:
            return QBrush(theme.color("accent"))
        if role == Qt.ItemDataRole.FontRole and gf.recommended:
            f = QFont()
            f.setBold(True)
            return f
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (1, 3):
            return RIGHT
        if role == Qt.ItemDataRole.UserRole:
            return gf
        return None


@dataclass
class DownloadItem:
    """One entry of the queue: a spec and where it stands."""

    spec: downloads.DownloadSpec
    state: str = "queued"  # queued | running | paused | failed | done
    job: downloads.DownloadJob | None = None
    handle: Any = None
    progress: Progress | None = None
    error: str = ""
    done_bytes: int = 0


class DownloadsModel(QAbstractTableModel):
    COLUMNS = ("Download", "Progress", "Speed", "Time left", "Status")
    STATES = {
        "queued": "Waiting",
        "running": "Downloading",
        "paused": "Paused",
        "failed": "Failed",
        "done": "In your Library",
    }

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.items: list[DownloadItem] = []

    def add(self, item: DownloadItem) -> None:
        self.beginInsertRows(QModelIndex(), len(self.items), len(self.items))
        self.items.append(item)
        self.endInsertRows()

    def remove(self, item: DownloadItem) -> None:
        row = self.items.index(item)
        self.beginRemoveRows(QModelIndex(), row, row)
        self.items.pop(row)
        self.endRemoveRows()

    def refresh(self, item: DownloadItem) -> None:
        row = self.items.index(item)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.items)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        it, col = self.items[index.row()], index.column()
        p = it.progress
        total = it.spec.total_bytes
        done = p.done if p is not None else it.done_bytes
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return it.spec.title
            if col == 1:
                return f"{human_bytes(done)} of {human_bytes(total)}"
            if col == 2:
                return human_rate(p.rate, "B") if it.state == "running" and p is not None else ""
            if col == 3:
                return human_duration(p.eta_s) if it.state == "running" and p is not None else ""
            text = self.STATES[it.state]
            if it.state == "running" and p is not None and p.message and not p.message.startswith("Downloading"):
                text = p.message
            return text
        if role == Qt.ItemDataRole.UserRole and col == 1:
            return (done / total) if total else 0.0
        if role == Qt.ItemDataRole.ToolTipRole:
            return it.error or downloads.describe(it.spec)
        if role == Qt.ItemDataRole.ForegroundRole and col == 4:
            tone = {"failed": "error", "done": "ok", "paused": "warning"}.get(it.state)
            return QBrush(theme.color(tone)) if tone else None
        return None


class ProgressDelegate(QStyledItemDelegate):
    """Paints a thin progress bar under the 'x of y' text of the Progress column."""

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        super().paint(painter, option, index)
        fraction = index.data(Qt.ItemDataRole.UserRole) or 0.0
        r = option.rect.adjusted(8, option.rect.height() - 8, -8, -4)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(theme.color("hover"))
        painter.drawRoundedRect(QRectF(r), 2, 2)
        if fraction > 0:
            done = QRectF(r.x(), r.y(), max(4.0, r.width() * min(1.0, fraction)), r.height())
            painter.setBrush(theme.color("accent"))
            painter.drawRoundedRect(done, 2, 2)
        painter.restore()


# --------------------------------------------------------------------------------------------
# The download queue


class DownloadQueue(QObject):
    """Runs downloads one at a time (they share one connection's bandwidth anyway), and knows the
    ones an earlier session left paused or interrupted (quantdesk.core.hub.downloads.pending)."""

    changed = Signal()
    completed = Signal(object)  # DownloadItem
    failed = Signal(object)  # DownloadItem

    def __init__(self, ctx, parent: QObject | None = None, job_options: dict | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.model = DownloadsModel(self)
        self.job_options = job_options or {}
        for spec in downloads.pending():
            self.model.add(
                DownloadItem(
                    spec,
                    state="paused",
                    done_bytes=downloads.downloaded_bytes(spec),
                    error="Interrupted last time; resume to continue where it stopped.",
                )
            )

    def items(self) -> list[DownloadItem]:
        return list(self.model.items)

    def find(self, spec: downloads.DownloadSpec) -> DownloadItem | None:
        return next((i for i in self.model.items if i.spec.id == spec.id), None)

    def add(self, spec: downloads.DownloadSpec) -> DownloadItem:
        item = self.find(spec)
        if item is None:
            item = DownloadItem(spec)
            self.model.add(item)
            downloads.remember(spec)  # a queued download survives a restart too
        elif item.state in ("paused", "failed", "done"):
            item.state, item.error = "queued", ""
            self.model.refresh(item)
        self._pump()
        self.changed.emit()
        return item

    def pause(self, item: DownloadItem) -> None:
        if item.state == "running" and item.job is not None:
            item.job.pause()
        elif item.state == "queued":
            item.state = "paused"
            self.model.refresh(item)
            self.changed.emit()

    def resume(self, item: DownloadItem) -> None:
        if item.state in ("paused", "failed"):
            item.state, item.error = "queued", ""
            self.model.refresh(item)
            self._pump()
            self.changed.emit()

    def cancel(self, item: DownloadItem) -> None:
        """Stop and delete what was downloaded (a finished one just leaves the list)."""
        if item.state == "running" and item.job is not None:
            item.job.cancel()
            return  # the job deletes its partial files; _ended removes the row
        if item.state != "done":
            downloads.discard(item.spec)
        self.model.remove(item)
        self.changed.emit()

    def running(self) -> DownloadItem | None:
        return next((i for i in self.model.items if i.state == "running"), None)

    def shutdown(self) -> None:
        """The window is closing: pause (not cancel) so the download resumes next time."""
        item = self.running()
        if item is not None and item.job is not None:
            item.job.pause()

    def _pump(self) -> None:
        if self.running() is not None:
            return
        item = next((i for i in self.model.items if i.state == "queued"), None)
        if item is None:
            return
        item.state, item.progress = "running", None
        item.job = downloads.DownloadJob(item.spec, **self.job_options)
        item.handle = self.ctx.jobs.start(item.job)
        job = item.job
        item.handle.progress.connect(while_alive(self, lambda p: self._progress(item, p)))
        item.handle.finished.connect(while_alive(self, lambda _result: self._ended(item, "done")))
        item.handle.failed.connect(while_alive(self, lambda e, _tb: self._ended(item, "failed", e)))
        item.handle.cancelled.connect(
            while_alive(self, lambda: self._ended(item, "paused" if job.paused else "cancelled"))
        )
        self.model.refresh(item)

    def _progress(self, item: DownloadItem, p: Progress) -> None:
        item.progress = p
        item.done_bytes = int(p.done)
        if item in self.model.items:
            self.model.refresh(item)

    def _ended(self, item: DownloadItem, state: str, error: BaseException | None = None) -> None:
        item.job, item.handle = None, None
        if state == "cancelled":
            if item in self.model.items:
                self.model.remove(item)
        else:
            item.state = state
            if state == "done":
                item.done_bytes = item.spec.total_bytes
                item.progress = None
            if error is not None:
                item.error = explain(error)
            self.model.refresh(item)
            if state == "done":
                self.completed.emit(item)
            elif state == "failed":
                self.failed.emit(item)
        self.changed.emit()
        self._pump()


# --------------------------------------------------------------------------------------------
# The Hub token


class TokenDialog(QDialog):
    """Enter a Hub access token; it is checked against the Hub and saved where huggingface_hub
    keeps it (HF_HOME/token), so every Hugging Face tool on this machine shares it."""

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle("Hugging Face token")
        self.setMinimumWidth(440)
        col = QVBoxLayout(self)
        col.setSpacing(8)
        col.addWidget(
            label(
                "A token lets you download gated models whose terms you accepted on the Hub, and "
                "your private models. Create a read token in your Hugging Face settings "
                "(Access Tokens).",
                wrap=True,
            )
        )
        self.status = label("", "Muted", wrap=True)
        col.addWidget(self.status)
        self.edit = QLineEdit()
        self.edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.edit.setPlaceholderText("hf_…")
        self.edit.setAccessibleName("Hugging Face access token")
        col.addWidget(self.edit)
        self.message = label("", wrap=True)
        col.addWidget(self.message)
        buttons = QDialogButtonBox()
        self.save_button = buttons.addButton("Check and save", QDialogButtonBox.ButtonRole.AcceptRole)
        self.save_button.setProperty("primary", True)
        self.remove_button = buttons.addButton("Remove saved token", QDialogButtonBox.ButtonRole.DestructiveRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        self.save_button.clicked.connect(self._save)
        self.remove_button.clicked.connect(self._remove)
        col.addWidget(buttons)
        self._update_status()

    def _update_status(self) -> None:
        source = hub.token_source()
        self.status.setText(
            {
                "HF_TOKEN": "The HF_TOKEN environment variable is set; it is used instead of a saved token.",
                "saved": "A token is saved on this machine.",
                "": "No token yet.",
            }[source]
        )
        self.remove_button.setEnabled(source == "saved")

    def _save(self) -> None:
        token = self.edit.text().strip()
        if not token:
            self.message.setText("Paste a token first.")
            return
        self.save_button.setEnabled(False)
        self.message.setText("Checking the token with the Hub…")
        handle = self.ctx.jobs.start(Job("Checking the Hub token", lambda report, cancel: hub.save_token(token)))
        handle.finished.connect(while_alive(self, self._saved))
        handle.failed.connect(while_alive(self, lambda e, _tb: self._not_saved(e)))

    def _saved(self, user: str) -> None:
        self.save_button.setEnabled(True)
        self.edit.clear()
        self.message.setText(f"Saved. Signed in as {user}.")
        self._update_status()

    def _not_saved(self, e: BaseException) -> None:
        self.save_button.setEnabled(True)
        reason = explain(e)
        self.message.setText(
            as_sentence(reason) if isinstance(e, hub.HubError) else f"Could not check the token: {reason}"
        )

    def _remove(self) -> None:
        hub.forget_token()
        self.message.setText("The saved token was removed.")
        self._update_status()


# --------------------------------------------------------------------------------------------
# The page


class DiscoverPage(BasePage):
    title = "Discover"

    def __init__(self, ctx, parent: QWidget | None = None, job_options: dict | None = None):
        super().__init__(ctx, parent)
        self._query = hub.SearchQuery()
        self._page = 0
        self._search_generation = 0
        self._open_generation = 0
        self.view: hub.RepoView | None = None
        self.header.subtitle.setText("Models from the Hugging Face Hub")
        self.token_button = QPushButton("Hub token…")
        self.token_button.clicked.connect(self.open_token_dialog)
        self.header.add_action(self.token_button)
        self._update_token_button()

        self.error = ErrorBanner()
        self.body.addWidget(self.error)
        self.body.addLayout(self._build_search_bar())
        self.body.addLayout(self._build_filters())

        # Results and a model's page take turns in the same place, each with the full width.
        self.stack = QStackedWidget()
        self.results_box = self._build_results()
        self.model_page = self._build_model_page()
        self.stack.addWidget(self.results_box)
        self.stack.addWidget(self.model_page)
        self.body.addWidget(self.stack, 1)

        self.queue = DownloadQueue(ctx, self, job_options)
        self.body.addWidget(self._build_queue())
        self.queue.changed.connect(self._queue_changed)
        self.queue.completed.connect(lambda _item: ctx.library_changed.emit())
        self.queue.failed.connect(self._download_failed)
        self._queue_changed()

        find = QShortcut(QKeySequence(QKeySequence.StandardKey.Find), self)
        find.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)

        def focus_search() -> None:
            self.search_edit.setFocus()
            self.search_edit.selectAll()

        find.activated.connect(focus_search)

    # -- building -------------------------------------------------------------------------
    def _build_search_bar(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setSpacing(8)
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search models, e.g. “qwen2.5 7b instruct”")
        self.search_edit.setAccessibleName("Search the Hugging Face Hub")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.returnPressed.connect(self.search)
        self.search_edit.addAction(theme.icon("search", "muted"), QLineEdit.ActionPosition.LeadingPosition)
        row.addWidget(self.search_edit, 1)
        self.sort_combo = QComboBox()
        self.sort_combo.setAccessibleName("Sort results by")
        for text, key in SORT_CHOICES:
            self.sort_combo.addItem(text, key)
        self.sort_combo.currentIndexChanged.connect(self._filters_changed)
        row.addWidget(self.sort_combo)
        self.search_button = primary_button("Search")
        self.search_button.clicked.connect(self.search)
        row.addWidget(self.search_button)
        return row

    def _build_filters(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setSpacing(12)
        self.gguf_check = QCheckBox("GGUF files")
        self.gguf_check.setChecked(True)
        self.gguf_check.setToolTip("Repos with ready-to-run GGUF files")
        self.safetensors_check = QCheckBox("safetensors checkpoints")
        self.safetensors_check.setToolTip("Original checkpoints you can convert and quantize here")
        self.textgen_check = QCheckBox("Text generation")
        self.textgen_check.setChecked(True)
        for box in (self.gguf_check, self.safetensors_check, self.textgen_check):
            box.toggled.connect(self._filters_changed)
            row.addWidget(box)
        row.addSpacing(8)
        row.addWidget(label("Architecture", "Muted"))
        self.arch_combo = QComboBox()
        self.arch_combo.setEditable(True)
        self.arch_combo.setAccessibleName("Architecture")
        for a in ARCHITECTURES:
            self.arch_combo.addItem(a or "Any")
        self.arch_combo.setMinimumWidth(96)
        self.arch_combo.activated.connect(self._filters_changed)
        row.addWidget(self.arch_combo)
        row.addWidget(label("Size", "Muted"))
        self.size_combo = QComboBox()
        self.size_combo.setAccessibleName("Model size")
        for text, lo, hi in SIZE_CHOICES:
            self.size_combo.addItem(text, (lo, hi))
        self.size_combo.currentIndexChanged.connect(self._filters_changed)
        row.addWidget(self.size_combo)
        row.addStretch(1)
        return row

    def _build_results(self) -> QWidget:
        box = QWidget()
        col = QVBoxLayout(box)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(8)
        self.results_stack = QStackedWidget()
        self.results_empty = EmptyState(
            "Find a model",
            "Search the Hugging Face Hub by name. GGUF repos run right away; safetensors checkpoints can be "
            "converted and quantized here. Pick a result to see its files and what fits this machine.",
        )
        self.results_stack.addWidget(self.results_empty)
        self.results_model = ResultsModel(self)
        self.results_view = QTableView()
        self.results_view.setModel(self.results_model)
        self.results_view.setAccessibleName("Search results")
        setup_list_table(self.results_view, stretch=0)
        self.results_view.clicked.connect(self._result_chosen)
        self.results_view.activated.connect(self._result_chosen)  # Enter on a row
        self.results_stack.addWidget(self.results_view)
        col.addWidget(self.results_stack, 1)
        row = QHBoxLayout()
        self.results_status = label("", "Muted")
        row.addWidget(self.results_status, 1)
        self.more_button = QPushButton("More results")
        self.more_button.clicked.connect(self.load_more)
        self.more_button.hide()
        row.addWidget(self.more_button)
        col.addLayout(row)
        return box

    def _build_model_page(self) -> QWidget:
        page = QWidget()
        outer = QVBoxLayout(page)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(8)
        top = QHBoxLayout()
        self.back_button = QPushButton("← Results")
        self.back_button.setToolTip("Back to the search results (Esc)")
        self.back_button.clicked.connect(self.show_results)
        top.addWidget(self.back_button)
        top.addSpacing(8)
        self.model_title = label("", "SectionTitle")
        self.model_title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top.addWidget(self.model_title, 1)
        self.hub_link = QPushButton("Open on the Hub")
        self.hub_link.clicked.connect(self._open_on_hub)
        top.addWidget(self.hub_link)
        outer.addLayout(top)

        self.model_stack = QStackedWidget()  # 0: opening / could not open, 1: the model
        self.model_loading = label("", "Muted")
        self.model_loading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.model_stack.addWidget(self.model_loading)
        content = QWidget()
        col = QVBoxLayout(content)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(8)
        self.model_facts = label("", "Muted", wrap=True)
        col.addWidget(self.model_facts)
        self.model_tags = label("", "Small", wrap=True)
        col.addWidget(self.model_tags)

        self.gated_box = QFrame()
        self.gated_box.setObjectName("Card")
        g = QHBoxLayout(self.gated_box)
        g.setContentsMargins(12, 8, 12, 8)
        self.gated_text = label("", "WarningText", wrap=True)
        g.addWidget(self.gated_text, 1)
        accept = QPushButton("Accept the terms on the Hub")
        accept.clicked.connect(self._open_on_hub)
        g.addWidget(accept)
        token = QPushButton("Enter a token…")
        token.clicked.connect(self.open_token_dialog)
        g.addWidget(token)
        col.addWidget(self.gated_box)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.setChildrenCollapsible(False)
        files = QWidget()
        fcol = QVBoxLayout(files)
        fcol.setContentsMargins(0, 0, 8, 0)
        fcol.setSpacing(8)
        fit_row = QHBoxLayout()
        fit_row.addWidget(label("Memory for", "Muted"))
        self.context_combo = QComboBox()
        self.context_combo.setAccessibleName("Context length to assess memory for")
        for c in CONTEXTS:
            self.context_combo.addItem(f"{c:,} tokens of context", c)
        self.context_combo.setCurrentIndex(CONTEXTS.index(4096))
        self.context_combo.currentIndexChanged.connect(self._reassess)
        fit_row.addWidget(self.context_combo)
        self.memory_label = label("", "Muted")
        fit_row.addWidget(self.memory_label, 1)
        fcol.addLayout(fit_row)
        self.files_model = FilesModel(self)
        self.files_view = QTableView()
        self.files_view.setModel(self.files_model)
        self.files_view.setAccessibleName("Files by quant level")
        setup_list_table(self.files_view, stretch=0)
        self.files_view.selectionModel().currentRowChanged.connect(lambda *_: self._update_download_button())
        self.files_view.doubleClicked.connect(lambda *_: self.download_selected())
        fcol.addWidget(self.files_view, 1)
        self.shape_note = label("", "Small", wrap=True)
        fcol.addWidget(self.shape_note)
        drow = QHBoxLayout()
        drow.addStretch(1)
        self.download_button = primary_button("Download")
        self.download_button.clicked.connect(self.download_selected)
        drow.addWidget(self.download_button)
        fcol.addLayout(drow)
        split.addWidget(files)

        self.readme_view = QTextBrowser()
        self.readme_view.setOpenExternalLinks(True)
        self.readme_view.setAccessibleName("Model card")
        split.addWidget(self.readme_view)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        col.addWidget(split, 1)
        self.model_stack.addWidget(content)
        outer.addWidget(self.model_stack, 1)

        back = QShortcut(QKeySequence(Qt.Key.Key_Escape), page)
        back.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        back.activated.connect(self.show_results)
        return page

    def _build_queue(self) -> QWidget:
        box = QFrame()
        col = QVBoxLayout(box)
        col.setContentsMargins(0, 4, 0, 0)
        col.setSpacing(6)
        row = QHBoxLayout()
        row.addWidget(label("Downloads", "SectionTitle"))
        self.queue_summary = label("", "Muted")
        row.addWidget(self.queue_summary, 1)
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop and delete what was downloaded")
        self.library_button = QPushButton("Show in Library")
        for b, fn in (
            (self.pause_button, self.queue.pause),
            (self.resume_button, self.queue.resume),
            (self.cancel_button, self.queue.cancel),
        ):
            b.clicked.connect(lambda _=False, fn=fn: self._on_selected_download(fn))
            row.addWidget(b)
        self.library_button.clicked.connect(lambda: self.ctx.show_page("library"))
        row.addWidget(self.library_button)
        col.addLayout(row)
        self.queue_view = QTableView()
        self.queue_view.setModel(self.queue.model)
        self.queue_view.setAccessibleName("Download queue")
        setup_list_table(self.queue_view, stretch=0)
        self.queue_view.setItemDelegateForColumn(1, ProgressDelegate(self.queue_view))
        self.queue_view.verticalHeader().setDefaultSectionSize(34)
        self.queue_view.setMaximumHeight(30 + 3 * 34)
        self.queue_view.selectionModel().currentRowChanged.connect(lambda *_: self._update_queue_buttons())
        self.queue.model.dataChanged.connect(lambda *_: self._update_queue_buttons())
        col.addWidget(self.queue_view)
        self.queue_box = box
        return box

    # -- search ---------------------------------------------------------------------------
    def current_query(self) -> hub.SearchQuery:
        lo, hi = self.size_combo.currentData() or (None, None)
        arch = self.arch_combo.currentText().strip()
        return hub.SearchQuery(
            text=self.search_edit.text().strip(),
            gguf=self.gguf_check.isChecked(),
            safetensors=self.safetensors_check.isChecked(),
            text_generation=self.textgen_check.isChecked(),
            architecture="" if arch.lower() == "any" else arch,
            min_params_b=lo,
            max_params_b=hi,
            sort=self.sort_combo.currentData(),
        )

    def _filters_changed(self, *_: Any) -> None:
        if self.results_model.rowCount():  # only re-run a search the user already made
            self.search()

    def search(self) -> None:
        """Start a new search with what the controls say (page 1)."""
        self.show_results()
        self._query, self._page = self.current_query(), 0
        self._run_search(append=False)

    def load_more(self) -> None:
        self._page += 1
        self._run_search(append=True)

    def _run_search(self, append: bool) -> None:
        self._search_generation += 1
        gen, query, page = self._search_generation, self._query, self._page
        self.error.hide()
        self.results_status.setText("Searching the Hub…")
        self.more_button.setEnabled(False)
        handle = self.ctx.jobs.start(Job("Searching the Hub", lambda report, cancel: hub.search(query, page)))
        handle.finished.connect(while_alive(self, lambda result: self._search_done(gen, result, append)))
        handle.failed.connect(while_alive(self, lambda e, tb: self._search_failed(gen, e, tb)))

    def _search_done(self, gen: int, result: hub.SearchPage, append: bool) -> None:
        if gen != self._search_generation:
            return  # an older search finished after a newer one started
        if append:
            self.results_model.append_rows(result.results)
        else:
            self.results_model.set_rows(result.results)
        n = self.results_model.rowCount()
        self.results_stack.setCurrentIndex(1)
        self.results_status.setText(
            f"{n} model{'s' if n != 1 else ''}" + (" — more available" if result.has_more else "")
            if n
            else "Nothing matches; try fewer words or filters."
        )
        self.more_button.setVisible(result.has_more)
        self.more_button.setEnabled(True)

    def _search_failed(self, gen: int, e: BaseException, tb: str) -> None:
        if gen != self._search_generation:
            return
        self.results_status.setText("")
        self.more_button.setEnabled(True)
        self._show_error(e, tb)

    # -- one model ------------------------------------------------------------------------
    def _result_chosen(self, index: QModelIndex) -> None:
        if index.isValid():
            self.open_repo(self.results_model.summary(index.row()).repo_id)

    def show_results(self) -> None:
        self.stack.setCurrentWidget(self.results_box)
        self.results_view.setFocus()

    def open_repo(self, repo_id: str) -> None:
        self._open_generation += 1
        gen = self._open_generation
        self.model_title.setText(repo_id)
        self.model_loading.setText(f"Opening {repo_id}…")
        self.model_stack.setCurrentIndex(0)
        self.stack.setCurrentWidget(self.model_page)
        handle = self.ctx.jobs.start(Job(f"Opening {repo_id}", lambda report, cancel: hub.load_repo_view(repo_id)))
        handle.finished.connect(while_alive(self, lambda view: self._repo_loaded(gen, view)))
        handle.failed.connect(while_alive(self, lambda e, tb: self._repo_failed(gen, e, tb)))

    def _repo_failed(self, gen: int, e: BaseException, tb: str) -> None:
        if gen == self._open_generation:
            self.model_loading.setText("Could not open this model.")
            self._show_error(e, tb)

    def _repo_loaded(self, gen: int, view: hub.RepoView) -> None:
        if gen != self._open_generation:
            return
        self.view = view
        d = view.details
        self.model_title.setText(d.repo_id)
        facts = [
            d.license and f"Licence: {d.license}",
            f"{d.downloads:,} downloads",
            f"{d.likes:,} likes",
            d.last_modified and f"updated {d.last_modified:%Y-%m-%d}",
            d.parameters and f"{human_params(d.parameters)} parameters",
            d.architecture,
        ]
        self.model_facts.setText("  ·  ".join(str(f) for f in facts if f))
        tags = [t for t in d.tags if not t.startswith(("license:", "base_model:", "region:"))]
        self.model_tags.setText("Tags: " + ", ".join(tags[:16]) if tags else "")
        self.gated_box.setVisible(bool(d.gated))
        if d.gated:
            have = hub.token_source()
            self.gated_text.setText(
                "This model is gated: its authors ask you to accept their terms before downloading. Accept them on "
                "its Hub page with your account, then "
                + ("make sure your token belongs to that account." if have else "enter an access token here.")
            )
        idx = CONTEXTS.index(4096) if view.shape.max_context is None or view.shape.max_context >= 4096 else 0
        self.context_combo.blockSignals(True)
        self.context_combo.setCurrentIndex(idx)
        self.context_combo.blockSignals(False)
        self._reassess()
        self.readme_view.setMarkdown(view.readme or "*This model has no model card.*")
        self.model_stack.setCurrentIndex(1)

    def _reassess(self, *_: Any) -> None:
        if self.view is None:
            return
        machine = Machine.now()
        context = int(self.context_combo.currentData())
        rows = hub.assess(self.view.groups, self.view.shape, context, machine)
        self.files_model.set_rows(rows)
        self.memory_label.setText(
            f"— {human_bytes(machine.ram_available_bytes)} of {human_bytes(machine.ram_total_bytes)} RAM free"
        )
        shape = self.view.shape
        if shape.estimated:
            self.shape_note.setText(
                "KV cache estimated from the model's size (no config.json found). "
                "★ marks the largest level that fits with room to spare."
            )
        else:
            self.shape_note.setText(
                f"KV cache from config.json: {shape.n_layers} layers, {human_bytes(shape.kv_bytes(1))} per token. "
                "★ marks the largest level that fits with room to spare."
            )
        if not rows:
            self.shape_note.setText("No GGUF files or safetensors checkpoint in this repo.")
        rec = self.files_model.recommended_row()
        if rows:
            self.files_view.selectRow(rec if rec >= 0 else 0)
        self._update_download_button()

    def selected_group(self) -> hub.GroupFit | None:
        idx = self.files_view.currentIndex()
        return self.files_model.item(idx.row()) if idx.isValid() else None

    def _update_download_button(self) -> None:
        gf = self.selected_group()
        self.download_button.setEnabled(gf is not None and gf.group.complete)
        self.download_button.setText(f"Download {gf.group.label} ({human_bytes(gf.group.size)})" if gf else "Download")

    def download_selected(self) -> None:
        gf = self.selected_group()
        if gf is None or self.view is None:
            return
        try:
            spec = downloads.plan(self.view.details.repo_id, group=gf.group, details=self.view.details)
        except (downloads.DownloadError, hub.HubError) as e:
            self._show_error(e, "")
            return
        self.queue.add(spec)

    def _open_on_hub(self) -> None:
        if self.view is not None:
            QDesktopServices.openUrl(QUrl(hub.web_url(self.view.details.repo_id)))

    def open_token_dialog(self) -> None:
        dialog = TokenDialog(self.ctx, self)
        dialog.finished.connect(lambda _code: self._update_token_button())
        dialog.open()
        self.token_dialog = dialog

    def _update_token_button(self) -> None:
        source = hub.token_source()
        self.token_button.setText("Hub token ✓" if source else "Hub token…")
        self.token_button.setToolTip(
            {
                "HF_TOKEN": "Using the token in the HF_TOKEN environment variable",
                "saved": "A Hugging Face token is saved on this machine; click to change it",
                "": "Enter a Hugging Face access token (for gated and private models)",
            }[source]
        )

    # -- queue ----------------------------------------------------------------------------
    def _selected_download(self) -> DownloadItem | None:
        idx = self.queue_view.currentIndex()
        items = self.queue.items()
        if idx.isValid() and idx.row() < len(items):
            return items[idx.row()]
        return None

    def _on_selected_download(self, fn: Callable[[DownloadItem], None]) -> None:
        item = self._selected_download()
        if item is not None:
            fn(item)
            self._update_queue_buttons()

    def _update_queue_buttons(self) -> None:
        item = self._selected_download()
        state = item.state if item else ""
        self.pause_button.setEnabled(state in ("running", "queued"))
        self.resume_button.setEnabled(state in ("paused", "failed"))
        self.cancel_button.setEnabled(item is not None)
        self.cancel_button.setText("Remove" if state == "done" else "Cancel")

    def _queue_changed(self) -> None:
        items = self.queue.items()
        self.queue_box.setVisible(bool(items))
        active = [i for i in items if i.state in ("running", "queued")]
        paused = [i for i in items if i.state == "paused"]
        parts = []
        if active:
            parts.append(f"{len(active)} active")
        if paused:
            parts.append(f"{len(paused)} paused")
        self.queue_summary.setText("  ·  ".join(parts))
        if items and not self.queue_view.currentIndex().isValid():
            self.queue_view.selectRow(len(items) - 1)
        self._update_queue_buttons()

    def _download_failed(self, item: DownloadItem) -> None:
        self.error.show_error(f"Download of {item.spec.title} failed: {item.error}")

    def _show_error(self, e: BaseException, tb: str) -> None:
        if user_message(e) is None:
            log.error("unexpected error on the Discover page: %s", tb)
        self.error.show_failure(e, tb)

    def shutdown(self) -> None:
        """Called by the main window before it closes: keep downloads resumable."""
        self.queue.shutdown()
