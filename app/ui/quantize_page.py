"""Quantize: turn a GGUF from the Library into a smaller GGUF at the level you pick.

Pick a source (the Library's GGUF files), pick a level from a list that shows, for this very
model, the size the output will have (from the per-tensor plan, app.core.quantize), its bits
per weight and the trade-off in one line; then Quantize. Progress shows tensors and bytes,
speed and time left; Cancel leaves nothing behind. The result lands in the app's models folder
with a card beside it and appears in the Library (ctx.library_changed).

Reading a source's header and planning every level runs as a job (a slow disk must not freeze
the window); the quantization itself is app.core.quantize's job, run by ctx.jobs.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt
from PySide6.QtGui import QBrush, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.cli.info import format_params
from app.core import library, paths
from app.core.jobs import Job, Progress
from app.core.quantize import (
    LevelEstimate,
    QuantizeError,
    QuantizeRequest,
    QuantizeResult,
    SourceSummary,
    default_output,
    quantize_job,
    summarize_source,
)
from app.core.units import human_bytes, human_duration
from app.ui import theme
from app.ui.widgets import BasePage, ErrorBanner, JobProgress, label, primary_button
from app.ui.workers import JobHandle

RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
DEFAULT_LEVEL = "Q4_K_M"


class LevelModel(QAbstractTableModel):
    """The levels for one source: size from its plan, bits per weight, trade-off."""

    COLUMNS = ("Level", "Output size", "Bits/weight", "Trade-off")

    def __init__(self, parent: Optional[QObject] = None):
        super().__init__(parent)
        self._rows: list[LevelEstimate] = []
        self.source_bytes = 0

    def set_levels(self, levels: list[LevelEstimate], source_bytes: int) -> None:
        self.beginResetModel()
        self._rows, self.source_bytes = list(levels), source_bytes
        self.endResetModel()

    def level(self, row: int) -> LevelEstimate:
        return self._rows[row]

    def row_of(self, level: str) -> int:
        return next((i for i, r in enumerate(self._rows) if r.level == level), -1)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return self.COLUMNS[section]
            if role == Qt.ItemDataRole.TextAlignmentRole and section in (1, 2):
                return RIGHT
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        flags = super().flags(index)
        if index.isValid() and self._rows[index.row()].problem:
            flags &= ~Qt.ItemFlag.ItemIsEnabled
        return flags

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        r, col = self._rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if r.problem:
                return (r.level, "—", "—", r.problem)[col]
            share = f"  ({r.output_bytes / self.source_bytes:.0%})" if self.source_bytes else ""
            return (r.level, human_bytes(r.output_bytes) + share, f"{r.bits_per_weight:.2f}", r.tradeoff)[col]
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (1, 2):
            return RIGHT
        if role == Qt.ItemDataRole.ToolTipRole:
            if r.problem:
                return r.problem
            return (f"{r.level}: {r.output_bytes:,} bytes, {r.bits_per_weight:.3f} bits per weight "
                    f"(every tensor counted, as planned for this model)")
        if role == Qt.ItemDataRole.ForegroundRole and col == 3:
            return QBrush(theme.color("muted"))
        if role == Qt.ItemDataRole.FontRole and col == 0 and r.level == DEFAULT_LEVEL:
            f = QFont()
            f.setBold(True)
            return f
        if role == Qt.ItemDataRole.UserRole:
            return r
        return None


class QuantizePage(BasePage):
    title = "Quantize"

    def __init__(self, ctx, parent: Optional[QWidget] = None):
        super().__init__(ctx, parent)
        self.header.subtitle.setText("Make a smaller copy of a model")
        self.start_button = primary_button("Quantize")
        self.start_button.setToolTip("Write the quantized model to the app's models folder")
        self.start_button.clicked.connect(self.start)
        self.header.add_action(self.start_button)

        self._summary: Optional[SourceSummary] = None
        self._summary_generation = 0
        self._handle: Optional[JobHandle] = None
        self._imatrix: Optional[Path] = None

        self.error = ErrorBanner()
        self.body.addWidget(self.error)

        form = QFormLayout()
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(8)
        src_row = QHBoxLayout()
        self.source_box = QComboBox()
        self.source_box.setAccessibleName("Source model")
        self.source_box.setMinimumWidth(360)
        self.source_box.currentIndexChanged.connect(lambda *_: self._source_changed())
        src_row.addWidget(self.source_box, 1)
        browse = QPushButton("Other file…")
        browse.setToolTip("Quantize a GGUF file that is not in the Library")
        browse.clicked.connect(self.choose_file)
        src_row.addWidget(browse)
        form.addRow("Source", src_row)
        about = QWidget()  # what the source is, and the warning for an already quantized one
        about_col = QVBoxLayout(about)
        about_col.setContentsMargins(0, 0, 0, 0)
        about_col.setSpacing(4)
        self.source_info = label("", "Muted")
        about_col.addWidget(self.source_info)
        self.requant_warning = label("", wrap=True)
        self.requant_warning.setStyleSheet(f"color: {theme.color('warning').name()};")
        about_col.addWidget(self.requant_warning)
        self.requant_check = QCheckBox("Quantize it again anyway (loses quality)")
        self.requant_check.toggled.connect(lambda *_: self._update_start())
        about_col.addWidget(self.requant_check)
        about.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        form.addRow("", about)

        im_row = QHBoxLayout()
        self.imatrix_edit = QLineEdit()
        self.imatrix_edit.setReadOnly(True)
        self.imatrix_edit.setPlaceholderText("None (optional: an .imatrix.gguf or .dat from llama-imatrix)")
        self.imatrix_edit.setAccessibleName("Importance matrix file")
        im_row.addWidget(self.imatrix_edit, 1)
        im_pick = QPushButton("Choose…")
        im_pick.clicked.connect(self.choose_imatrix)
        im_row.addWidget(im_pick)
        im_clear = QPushButton("Clear")
        im_clear.clicked.connect(lambda: self.set_imatrix(None))
        im_row.addWidget(im_clear)
        form.addRow("Importance matrix", im_row)
        self.body.addLayout(form)

        self.levels = LevelModel(self)
        self.table = QTableView()
        self.table.setModel(self.levels)
        self.table.setAccessibleName("Quantization levels")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(28)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._level_changed())
        self.body.addWidget(self.table, 1)

        self.output_label = label("", "Small", wrap=True)
        self.output_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body.addWidget(self.output_label)
        self.overwrite_check = QCheckBox("Replace the existing file")
        self.overwrite_check.toggled.connect(lambda *_: self._update_start())
        self.overwrite_check.hide()
        self.body.addWidget(self.overwrite_check)

        self.progress = JobProgress()
        self.body.addWidget(self.progress)
        self.detail = label("", "Small")
        self.detail.hide()
        self.body.addWidget(self.detail)
        result_row = QHBoxLayout()
        self.result_label = label("", wrap=True)
        result_row.addWidget(self.result_label, 1)
        self.show_library_button = QPushButton("Show in Library")
        self.show_library_button.clicked.connect(lambda: ctx.show_page("library"))
        result_row.addWidget(self.show_library_button)
        self.chat_button = QPushButton("Chat with it")
        self.chat_button.clicked.connect(self._chat_with_result)
        result_row.addWidget(self.chat_button)
        self.body.addLayout(result_row)
        self._result: Optional[QuantizeResult] = None
        self._show_result(None)

        ctx.library_changed.connect(self.refresh_sources)
        self.refresh_sources()

    # -- sources --------------------------------------------------------------------------
    def refresh_sources(self) -> None:
        """Fill the source list from the Library's GGUF files, keeping the current choice."""
        current = self.source_path()
        entries = [e for e in library.list_models() if e.kind == "gguf"]
        self.source_box.blockSignals(True)
        self.source_box.clear()
        for e in entries:
            kind = e.file_type or "GGUF"
            self.source_box.addItem(f"{e.name} — {kind} — {human_bytes(e.size)}", str(e.path))
            self.source_box.setItemData(self.source_box.count() - 1, str(e.path), Qt.ItemDataRole.ToolTipRole)
        if current is not None:
            self._select_source(current)
        self.source_box.blockSignals(False)
        if self.source_path() != current:
            self._source_changed()

    def _select_source(self, path: Path) -> None:
        i = self.source_box.findData(str(path))
        if i < 0:
            self.source_box.addItem(f"{path.name} — {human_bytes(path.stat().st_size) if path.exists() else ''}",
                                    str(path))
            i = self.source_box.count() - 1
        self.source_box.setCurrentIndex(i)

    def source_path(self) -> Optional[Path]:
        data = self.source_box.currentData()
        return Path(data) if data else None

    def set_source(self, path: str | Path) -> None:
        """Select this file as the source (the Library's "Quantize" action calls this)."""
        self._select_source(Path(path))

    def choose_file(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF model", str(paths.models_dir()),
                                              "GGUF models (*.gguf)")
        if name:
            self.set_source(name)

    def choose_imatrix(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Choose an importance matrix", str(paths.models_dir()),
                                              "Importance matrices (*.gguf *.dat *.imatrix);;All files (*)")
        if name:
            self.set_imatrix(Path(name))

    def set_imatrix(self, path: Optional[Path]) -> None:
        self._imatrix = Path(path) if path else None
        self.imatrix_edit.setText(str(self._imatrix) if self._imatrix else "")
        self._source_changed()  # some levels plan differently with an imatrix

    def _source_changed(self) -> None:
        self.error.hide()
        self._summary = None
        self.levels.set_levels([], 0)
        self.requant_warning.hide()
        self.requant_check.hide()
        self.requant_check.setChecked(False)
        path = self.source_path()
        if path is None:
            self.source_info.setText("No GGUF model in the Library yet: download one in Discover.")
            self._update_start()
            return
        self.source_info.setText("Reading the model…")
        self._summary_generation += 1
        generation, with_imatrix = self._summary_generation, self._imatrix is not None
        handle = self.ctx.jobs.start(Job(f"Reading {path.name}", lambda report, cancel: summarize_source(path, with_imatrix)))
        handle.finished.connect(lambda s: self._summary_ready(generation, s))
        handle.failed.connect(lambda e, tb: self._summary_failed(generation, e, tb))
        self._update_start()

    def _summary_ready(self, generation: int, summary: SourceSummary) -> None:
        if generation != self._summary_generation:
            return  # the user picked another source meanwhile
        self._summary = summary
        size = summary.path.stat().st_size if summary.path.exists() else 0
        self.source_info.setText(
            f"{summary.architecture} · {format_params(summary.n_weights)} weights · {human_bytes(size)}"
            + (f" · already quantized ({summary.quantized_as})" if summary.quantized_as else "")
        )
        if summary.quantized_as:
            self.requant_warning.setText(
                f"This model is already quantized ({summary.quantized_as}). Quantizing it again loses quality: its "
                "weights are expanded back to floats first, rounding errors included. Start from an F16, BF16 or "
                "F32 file when you have one.")
            self.requant_warning.show()
            self.requant_check.show()
        self.levels.set_levels(summary.levels, size)
        self.table.resizeColumnsToContents()
        remembered = self.ctx.setting("quantize_level", DEFAULT_LEVEL)
        self.select_level(remembered if self.levels.row_of(remembered) >= 0 else DEFAULT_LEVEL)
        self._update_start()

    def _summary_failed(self, generation: int, error: BaseException, tb: str) -> None:
        if generation != self._summary_generation:
            return
        self.source_info.setText("")
        self.error.show_error(f"Cannot use this file: {error}" if isinstance(error, QuantizeError)
                              else f"Cannot read this file: {error}", tb)
        self._update_start()

    # -- level and output -----------------------------------------------------------------
    def selected_level(self) -> Optional[LevelEstimate]:
        idx = self.table.currentIndex()
        if not idx.isValid() or self.levels.rowCount() == 0:
            return None
        return self.levels.level(idx.row())

    def select_level(self, level: str) -> None:
        row = self.levels.row_of(level.upper())
        self.table.selectRow(row)
        self.table.scrollTo(self.levels.index(row, 0))

    def output_path(self) -> Optional[Path]:
        src, level = self.source_path(), self.selected_level()
        if src is None or level is None:
            return None
        return default_output(src, level.level, paths.models_dir())

    def _level_changed(self) -> None:
        if self._result is not None and self.output_path() != self._result.output:
            self._show_result(None)  # a new choice: the last result's message no longer applies
        level = self.selected_level()
        if level is not None:
            self.ctx.set_setting("quantize_level", level.level)
        self._update_start()

    def _update_start(self) -> None:
        running = self._handle is not None and self._handle.running
        out, level = self.output_path(), self.selected_level()
        exists = out is not None and out.exists()
        just_made = exists and self._result is not None and out == self._result.output
        self.overwrite_check.setVisible(exists and not running and not just_made)
        if not exists:
            self.overwrite_check.setChecked(False)
        if out is not None and level is not None and not level.problem:
            note = " — just made" if just_made else (" — a file with this name exists" if exists else "")
            self.output_label.setText(f"Output: {out}{note}")
        else:
            self.output_label.setText("")
        for w in (self.table, self.source_box, self.requant_check, self.imatrix_edit):
            w.setEnabled(not running)
        ok = (
            not running
            and self._summary is not None
            and level is not None
            and not level.problem
            and (not self._summary.quantized_as or self.requant_check.isChecked())
            and (not exists or (self.overwrite_check.isChecked() and not just_made))
        )
        self.start_button.setEnabled(ok)

    # -- the run --------------------------------------------------------------------------
    def start(self) -> None:
        src, level, out = self.source_path(), self.selected_level(), self.output_path()
        if src is None or level is None or out is None or not self.start_button.isEnabled():
            return
        self.error.hide()
        self._show_result(None)
        request = QuantizeRequest(
            source=src, output=out, level=level.level, imatrix=self._imatrix,
            allow_requantize=self.requant_check.isChecked(), overwrite=self.overwrite_check.isChecked(),
        )
        self._handle = self.ctx.jobs.start(quantize_job(request))
        self.progress.bind(self._handle)
        self.detail.setText("")
        self.detail.show()
        self._handle.progress.connect(self._on_progress)
        self._handle.finished.connect(self._on_finished)
        self._handle.failed.connect(self._on_failed)
        self._handle.cancelled.connect(self._on_cancelled)
        self._handle.ended.connect(self._on_ended)
        self._update_start()

    def cancel(self) -> None:
        if self._handle is not None and self._handle.running:
            self.progress._cancel()

    def _on_progress(self, p: Progress) -> None:
        m = re.search(r"\((\d+)/(\d+)\)$", p.message)
        parts = []
        if m:
            parts.append(f"Tensor {m.group(1)} of {m.group(2)}")
        if p.unit == "B" and p.total:
            parts.append(f"{human_bytes(p.done)} of {human_bytes(p.total)} read")
        self.detail.setText(" · ".join(parts))

    def _on_finished(self, result: QuantizeResult) -> None:
        self._show_result(result)
        self.ctx.library_changed.emit()

    def _on_failed(self, error: BaseException, tb: str) -> None:
        if isinstance(error, QuantizeError):
            self.error.show_error(f"Not quantized: {error}. Nothing was written.", tb)
        elif isinstance(error, OSError) and error.errno == 28:
            self.error.show_error("The disk became full while writing. Nothing was left behind; free some "
                                  "space and try again.", tb)
        else:
            self.error.show_error(f"Quantizing failed: {error}. Nothing was written.", tb)

    def _on_cancelled(self) -> None:
        self.result_label.setText("Cancelled. Nothing was written.")
        self.result_label.show()

    def _on_ended(self) -> None:
        self.detail.hide()
        self._update_start()
        self.table.scrollTo(self.table.currentIndex())

    def _show_result(self, result: Optional[QuantizeResult]) -> None:
        self._result = result
        self.show_library_button.setVisible(result is not None)
        self.chat_button.setVisible(result is not None)
        if result is None:
            self.result_label.setText("")
            self.result_label.hide()
            return
        self.result_label.setText(
            f"Saved {result.output.name}: {result.level}, {human_bytes(result.output_bytes)} "
            f"in {human_duration(result.seconds)}. It is in your Library.")
        self.result_label.show()

    def _chat_with_result(self) -> None:
        if self._result is not None:
            self.ctx.open_in_chat(self._result.output)

