"""Discover: search the Hugging Face Hub, see what each file costs and whether it fits this
machine, and download it without babysitting.

Layout: search box + filters on top; results (left) and the chosen model (right: licence, tags,
files grouped by quant level with a fit verdict and the recommended one highlighted, README);
the download queue below. Every call to the Hub is an quantdesk.core.jobs.Job run by `ctx.jobs`, so
the window never waits on the network. Lists are Qt item models over quantdesk.core's dataclasses
(quantdesk.ui.discover.models); the queue is quantdesk.core.hub.queue's state machine behind a thin
Qt adapter (quantdesk.ui.discover.queue); the token dialog is in quantdesk.ui.discover.dialogs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QModelIndex, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from quantdesk.core.errors import user_message
from quantdesk.core.fit import Machine
from quantdesk.core.hub import client as hub
from quantdesk.core.hub import downloads
from quantdesk.core.hub.queue import DownloadItem
from quantdesk.core.jobs import Job
from quantdesk.core.units import human_bytes, human_params
from quantdesk.ui import theme
from quantdesk.ui.discover.dialogs import TokenDialog
from quantdesk.ui.discover.models import FilesModel, ProgressDelegate, ResultsModel
from quantdesk.ui.discover.queue import DownloadQueue
from quantdesk.ui.widgets import (
    BasePage,
    EmptyState,
    ErrorBanner,
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
