"""Library: the models on this disk, wherever they are (the app's folder, added folders, the
Hugging Face cache, LM Studio), with what is inside each, and the way into Chat.

The list is a Qt item model (LibraryModel) over quantdesk.core.library.list_models(); scanning and
reading a file's header run as jobs, so a slow disk never freezes the window. The built-in
starter model is always there, first, selected, with its Chat button.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QMenu,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from quantdesk.core import library
from quantdesk.core.errors import explain
from quantdesk.core.fit import FitEstimate, fit_at_default
from quantdesk.core.jobs import Job
from quantdesk.core.library import LibraryEntry
from quantdesk.core.units import human_bytes, human_params
from quantdesk.ui import theme
from quantdesk.ui.widgets import (
    RIGHT,
    BasePage,
    EmptyState,
    ErrorBanner,
    RowTableModel,
    ask_to_delete,
    fit_html,
    label,
    primary_button,
    setup_list_table,
    while_alive,
)

log = logging.getLogger(__name__)


class LibraryModel(RowTableModel):
    COLUMNS = ("Name", "Type", "Size", "From")  # the full path is in the details beside the list
    RIGHT_ALIGNED = frozenset({2})

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._rows: list[LibraryEntry] = []

    def set_entries(self, entries: list[LibraryEntry]) -> None:
        self.beginResetModel()
        self._rows = list(entries)
        self.endResetModel()

    def entry(self, row: int) -> LibraryEntry:
        return self._rows[row]

    def entries(self) -> list[LibraryEntry]:
        return list(self._rows)

    def row_of(self, path) -> int:
        return next((i for i, e in enumerate(self._rows) if e.path == path), -1)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        e, col = self._rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            kind = e.file_type or "GGUF"
            if e.kind == "checkpoint":
                kind = "checkpoint"
            parts = f" ({len(e.files)} parts)" if e.kind == "gguf" and len(e.files) > 1 else ""
            return (e.name, kind + parts, human_bytes(e.size), e.source)[col]
        if role == Qt.ItemDataRole.ToolTipRole:
            return str(e.path)
        if role == Qt.ItemDataRole.TextAlignmentRole and col == 2:
            return RIGHT
        if role == Qt.ItemDataRole.ForegroundRole and col == 3:
            return QBrush(theme.color("muted"))
        if role == Qt.ItemDataRole.UserRole:
            return e
        return None


class LibraryPage(BasePage):
    title = "Library"

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(ctx, parent)
        self._scan_generation = 0
        self._info_generation = 0
        self._select_after_scan = None
        self._info_deferred = False
        self.header.subtitle.setText("Models on this computer")
        self.folders_button = QToolButton()
        self.folders_button.setText("Folders ▾")
        self.folders_button.setStyleSheet("QToolButton::menu-indicator { image: none; width: 0px; }")
        self.folders_button.setToolTip("The folders the Library looks in")
        self.folders_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.folders_button.setMenu(QMenu(self.folders_button))
        self.folders_button.menu().aboutToShow.connect(self._fill_folders_menu)
        self.header.add_action(self.folders_button)
        add = QPushButton("Add folder…")
        add.setToolTip("Show the GGUF files and checkpoints in a folder, without copying them")
        add.clicked.connect(self.choose_folder)
        self.header.add_action(add)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        self.header.add_action(refresh)

        self.error = ErrorBanner()
        self.body.addWidget(self.error)
        self.stack = QStackedWidget()
        self.empty = EmptyState(
            "Your Library is empty",
            "Download a model from Discover, or add a folder that already holds GGUF files. The built-in "
            "starter model is missing: run `make run` again to install it.",
            action="Go to Discover",
            on_action=lambda: ctx.show_page("discover"),
        )
        self.stack.addWidget(self.empty)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.setChildrenCollapsible(False)
        self.model = LibraryModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setAccessibleName("Models on this computer")
        setup_list_table(self.table, stretch=0)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._show_selected())
        self.table.doubleClicked.connect(lambda *_: self.chat_with_selected())
        split.addWidget(self.table)
        split.addWidget(self._build_details())
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        self.stack.addWidget(split)
        self.body.addWidget(self.stack, 1)
        self.locations = label("", "Small", wrap=True)
        self.body.addWidget(self.locations)

        ctx.library_changed.connect(self.refresh)
        self.refresh()

    def _build_details(self) -> QWidget:
        pane = QWidget()
        col = QVBoxLayout(pane)
        col.setContentsMargins(12, 0, 0, 0)
        col.setSpacing(8)
        self.name_label = label("", "SectionTitle", wrap=True)
        col.addWidget(self.name_label)
        self.summary_label = label("", "Muted", wrap=True)
        col.addWidget(self.summary_label)
        self.facts_label = label("", wrap=True)
        self.facts_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        col.addWidget(self.facts_label)
        self.fit_label = label("", wrap=True)
        self.fit_label.setAccessibleName("Will it fit this computer")
        col.addWidget(self.fit_label)
        self.path_label = label("", "Small", wrap=True)
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        col.addWidget(self.path_label)
        row = QHBoxLayout()
        self.chat_button = primary_button("Chat")
        self.chat_button.clicked.connect(self.chat_with_selected)
        row.addWidget(self.chat_button)
        self.quantize_button = QPushButton("Quantize…")
        self.quantize_button.setToolTip("Make a smaller GGUF from this model on the Quantize page")
        self.quantize_button.clicked.connect(self.quantize_selected)
        row.addWidget(self.quantize_button)
        self.reveal_button = QPushButton("Show in folder")
        self.reveal_button.clicked.connect(self.reveal_selected)
        row.addWidget(self.reveal_button)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.clicked.connect(self.delete_selected)
        row.addWidget(self.delete_button)
        row.addStretch(1)
        col.addLayout(row)
        col.addStretch(1)
        return pane

    # -- the list -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Scan again in the background (a folder on a slow disk must not freeze the window)."""
        self._scan_generation += 1
        gen = self._scan_generation
        handle = self.ctx.jobs.start(Job("Looking for models", lambda report, cancel: library.list_models()))
        handle.finished.connect(while_alive(self, lambda entries: self._scanned(gen, entries)))
        handle.failed.connect(
            while_alive(self, lambda e, tb: self.error.show_error(f"Could not list the models: {e}", tb))
        )

    def _scanned(self, gen: int, entries: list[LibraryEntry]) -> None:
        if gen != self._scan_generation:
            return
        current = self.selected()
        keep = self._select_after_scan or (current.path if current else None)
        self._select_after_scan = None
        self.model.set_entries(entries)
        self.stack.setCurrentIndex(1 if entries else 0)
        row = self.model.row_of(keep) if keep is not None else -1
        if entries:
            self.table.selectRow(row if row >= 0 else 0)
        self._show_locations(entries)

    def _show_locations(self, entries: list[LibraryEntry]) -> None:
        from quantdesk.core import paths

        places = [f"the models folder ({paths.models_dir()})"]
        places += [f"{name} ({p})" for name, p in library.known_locations()]
        n = len(library.folders())
        if n:
            places.append(f"{n} added folder{'s' if n != 1 else ''}")
        total = sum(e.size for e in entries if not e.builtin)
        self.locations.setText(
            f"{len(entries)} model{'s' if len(entries) != 1 else ''}, "
            f"{human_bytes(total)} on disk. Looking in " + ", ".join(places) + "."
        )

    def selected(self) -> LibraryEntry | None:
        idx = self.table.currentIndex()
        return self.model.entry(idx.row()) if idx.isValid() and idx.row() < self.model.rowCount() else None

    def select_path(self, path) -> None:
        row = self.model.row_of(path)
        if row >= 0:
            self.table.selectRow(row)
        else:
            self._select_after_scan = path

    # -- details --------------------------------------------------------------------------
    def _show_selected(self) -> None:
        e = self.selected()
        for b in (self.chat_button, self.quantize_button, self.reveal_button, self.delete_button):
            b.setEnabled(e is not None)
        if e is None:
            return
        self.name_label.setText(e.name)
        where = f"from {e.repo_id}" if e.repo_id else ""
        kind = "safetensors checkpoint" if e.kind == "checkpoint" else (e.file_type or "GGUF")
        self.summary_label.setText("  ·  ".join(x for x in (kind, human_bytes(e.size), e.source, where) if x))
        self.path_label.setText(str(e.path))
        self.chat_button.setEnabled(e.kind == "gguf")
        self.chat_button.setToolTip("" if e.kind == "gguf" else "Convert the checkpoint to GGUF first (Quantize)")
        self.chat_button.setAccessibleName(f"Chat with {e.name}")
        self.delete_button.setEnabled(not e.builtin)
        self.delete_button.setToolTip("The built-in model ships with the app" if e.builtin else "Delete from disk")
        self._info_generation += 1
        gen = self._info_generation
        self.fit_label.setText("")
        if e.kind != "gguf":
            self.facts_label.setText("An original checkpoint. Quantize converts it to GGUF at the level you pick.")
            return
        known = library.cached_info(e)
        if known is not None:
            self._info_ready(gen, known)
            return
        if not self.isVisible():  # read it when someone looks (a big header takes seconds)
            self._info_deferred = True
            self.facts_label.setText("")
            return
        self.facts_label.setText("Reading the file…")
        handle = self.ctx.jobs.start(Job(f"Reading {e.name}", lambda report, cancel: library.info(e)))
        handle.finished.connect(while_alive(self, lambda info: self._info_ready(gen, info)))
        handle.failed.connect(while_alive(self, lambda err, tb: self._info_failed(gen, err)))

    def _info_ready(self, gen: int, info) -> None:
        if gen != self._info_generation:
            return
        types = ", ".join(f"{k} ×{v}" for k, v in list(info.tensor_types.items())[:4])
        rows = [
            ("Architecture", info.architecture),
            ("Parameters", human_params(info.parameters)),
            ("File type", info.file_type),
            ("Context length", f"{info.context_length:,}" if info.context_length else "unknown"),
            ("Layers", str(info.block_count or "?")),
            ("Chat template", "yes" if info.has_chat_template else "no (Chat uses a generic one)"),
            ("Tensor types", types),
        ]
        muted = theme.colors()["muted"]
        cells = "".join(
            f'<tr><td style="color:{muted}; padding-right:12px">{html.escape(k)}</td><td>{html.escape(v)}</td></tr>'
            for k, v in rows
        )
        self.facts_label.setText(f"<table cellspacing=0 cellpadding=2>{cells}</table>")
        entry = self.selected()
        if entry is not None:
            handle = self.ctx.jobs.start(
                Job(f"Sizing up {entry.name}", lambda report, cancel: fit_at_default(entry.path))
            )
            handle.finished.connect(while_alive(self, lambda est: self._fit_ready(gen, est)))

    def _fit_ready(self, gen: int, est: FitEstimate) -> None:
        if gen == self._info_generation:
            self.fit_label.setText(f"At {est.context:,} tokens of context: " + fit_html(est))

    def _info_failed(self, gen: int, err: BaseException) -> None:
        if gen != self._info_generation:
            return
        self.facts_label.setText(f"Cannot read this file: {explain(err)}")

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(event)
        if self._info_deferred:
            self._info_deferred = False
            self._show_selected()

    # -- actions --------------------------------------------------------------------------
    def chat_with_selected(self) -> None:
        e = self.selected()
        if e is not None and e.kind == "gguf":
            self.ctx.open_in_chat(e.path)

    def quantize_selected(self) -> None:
        e = self.selected()
        if e is not None:
            self.ctx.open_in_quantize(e.path)

    def reveal_selected(self) -> None:
        e = self.selected()
        if e is None:
            return
        try:
            library.reveal(e.path)
        except (library.LibraryError, OSError) as err:
            self.error.show_failure(err, doing="Could not open the folder")

    def confirm_delete(self, e: LibraryEntry) -> bool:
        what = "checkpoint files" if e.kind == "checkpoint" else ("files" if len(e.files) > 1 else "file")
        return ask_to_delete(
            self,
            "Delete model",
            f"Delete {e.name} ({human_bytes(e.size)}) from disk?",
            f"The {what} will be removed from {e.path.parent if e.kind == 'gguf' else e.path}. This cannot be undone.",
        )

    def delete_selected(self) -> None:
        e = self.selected()
        if e is None or e.builtin or not self.confirm_delete(e):
            return
        try:
            library.delete(e)
        except library.LibraryError as err:
            self.error.show_failure(err, doing=f"Could not delete {e.name}")
            return
        self.ctx.library_changed.emit()  # refreshes this page too

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder with models")
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str) -> None:
        try:
            library.add_folder(folder)
        except library.LibraryError as err:
            self.error.show_failure(err)
            return
        self.ctx.library_changed.emit()

    def _fill_folders_menu(self) -> None:
        menu = self.folders_button.menu()
        menu.clear()
        folders = library.folders()
        if not folders:
            act = menu.addAction("No added folders")
            act.setEnabled(False)
        for f in folders:

            def remove(f: Path = f) -> None:  # a def, not a lambda: mypy cannot infer a lambda with a default
                self.remove_folder(f)

            menu.addAction(f"Stop showing {f}", remove)
        menu.addSeparator()
        menu.addAction("Add folder…", self.choose_folder)

    def remove_folder(self, folder) -> None:
        library.remove_folder(folder)
        self.ctx.library_changed.emit()
