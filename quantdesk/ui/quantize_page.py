"""Quantize: turn a GGUF or a safetensors checkpoint from the Library into a GGUF at the level you pick.

Pick a source (the Library's GGUF files), pick a level from a list that shows, for this very
model, the size the output will have (from the per-tensor plan, quantdesk.core.quantize.run), its bits
per weight and the trade-off in one line; then Quantize. Progress shows tensors and bytes,
speed and time left; Cancel leaves nothing behind. The result lands in the app's models folder
with a card beside it and appears in the Library (ctx.library_changed).

Listing the Library (the SourcePicker, quantdesk.ui.source_picker), reading a source's header and
planning every level run as jobs (a slow disk must not freeze the window); the quantization itself
is quantdesk.core.quantize.run's job, run by ctx.jobs. The last source is remembered.

A checkpoint folder is a source too: its level list adds F32 and its sizes are estimates
(parameters × the level's bits per weight, shown as "about"), because the exact per-tensor plan
only exists once the checkpoint is converted. Starting runs quantdesk.core.convert's job, whose
progress names its stage ("Converting", then "Quantizing").
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import gguf
from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from quantdesk.core import paths
from quantdesk.core.convert import (
    CheckpointInfo,
    ConvertError,
    ConvertRequest,
    ConvertResult,
    convert_job,
    describe_checkpoint,
)
from quantdesk.core.jobs import Job, Progress
from quantdesk.core.library import LibraryEntry
from quantdesk.core.quantize.plan import FILE_TYPES
from quantdesk.core.quantize.run import (
    LevelEstimate,
    QuantizeRequest,
    QuantizeResult,
    SourceSummary,
    default_output,
    quantize_job,
    summarize_source,
)
from quantdesk.core.units import human_bytes, human_duration, human_params
from quantdesk.ui import theme
from quantdesk.ui.source_picker import SourcePicker
from quantdesk.ui.widgets import (
    RIGHT,
    BasePage,
    ErrorBanner,
    JobProgress,
    RowTableModel,
    label,
    primary_button,
    setup_list_table,
)
from quantdesk.ui.workers import JobHandle

DEFAULT_LEVEL = "Q4_K_M"


def _describe(e: LibraryEntry) -> tuple[str, str]:
    """A Library entry in the source list: name, level (or "checkpoint") and size; its path as the tooltip."""
    kind = "checkpoint" if e.kind == "checkpoint" else (e.file_type or "GGUF")
    return f"{e.name} — {kind} — {human_bytes(e.size)}", str(e.path)


def _source_label(path: Path) -> str:
    """How a source the Library does not list (a file chosen with Browse…) reads in the picker."""
    if path.is_dir():
        size = sum(f.stat().st_size for f in path.glob("*.safetensors"))
        return f"{path.name} — checkpoint — {human_bytes(size)}"
    return f"{path.name} — {human_bytes(path.stat().st_size) if path.exists() else ''}"


CHECKPOINT_FLOATS = ("F16", "BF16", "F32")  # written straight from a checkpoint, no quantization


def checkpoint_levels(info: CheckpointInfo) -> list[LevelEstimate]:
    """The levels a checkpoint can go to, sized parameters × bits per weight of the level's main
    tensor type. An estimate (K-quant mixes bump some tensors, norms stay F32), labelled so."""
    float_notes = {
        "F16": FILE_TYPES["F16"].tradeoff,
        "BF16": FILE_TYPES["BF16"].tradeoff,
        "F32": "Full precision: twice the F16 size, no quality gain for most models.",
    }
    levels = []
    for name in CHECKPOINT_FLOATS + tuple(k for k in FILE_TYPES if k not in CHECKPOINT_FLOATS):
        qtype = gguf.GGMLQuantizationType[name] if name in CHECKPOINT_FLOATS else FILE_TYPES[name].base
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        bpw = type_size * 8 / block
        tradeoff = float_notes.get(name) or FILE_TYPES[name].tradeoff
        levels.append(LevelEstimate(name, int(info.parameters * bpw / 8), bpw, tradeoff))
    return levels


class LevelModel(RowTableModel):
    """The levels for one source: size from its plan, bits per weight, trade-off."""

    COLUMNS = ("Level", "Output size", "Bits/weight", "Trade-off")
    RIGHT_ALIGNED = frozenset({1, 2})

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._rows: list[LevelEstimate] = []
        self.source_bytes = 0
        self.estimated = False  # sizes are parameters × bits per weight (a checkpoint), not a plan

    def set_levels(self, levels: list[LevelEstimate], source_bytes: int, estimated: bool = False) -> None:
        self.beginResetModel()
        self._rows, self.source_bytes, self.estimated = list(levels), source_bytes, estimated
        self.endResetModel()

    def level(self, row: int) -> LevelEstimate:
        return self._rows[row]

    def row_of(self, level: str) -> int:
        return next((i for i, r in enumerate(self._rows) if r.level == level), -1)

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        flags = super().flags(index)
        if index.isValid() and self._rows[index.row()].problem:
            flags &= ~Qt.ItemFlag.ItemIsEnabled
        return flags

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        r, col = self._rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if r.problem:
                return (r.level, "—", "—", r.problem)[col]
            share = f"  ({r.output_bytes / self.source_bytes:.0%})" if self.source_bytes else ""
            size = ("about " if self.estimated else "") + human_bytes(r.output_bytes) + share
            bits = ("~" if self.estimated else "") + f"{r.bits_per_weight:.2f}"
            return (r.level, size, bits, r.tradeoff)[col]
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (1, 2):
            return RIGHT
        if role == Qt.ItemDataRole.ToolTipRole:
            if r.problem:
                return r.problem
            if self.estimated:
                return (
                    f"{r.level}: about {human_bytes(r.output_bytes)} (parameters × {r.bits_per_weight:.2f} "
                    f"bits per weight; the exact size is known once the checkpoint is converted)"
                )
            return (
                f"{r.level}: {r.output_bytes:,} bytes, {r.bits_per_weight:.3f} bits per weight "
                f"(every tensor counted, as planned for this model)"
            )
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

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(ctx, parent)
        self.header.subtitle.setText("Make a smaller copy of a model")
        self.start_button = primary_button("Quantize")
        self.start_button.setToolTip("Write the quantized model to the app's models folder")
        self.start_button.clicked.connect(self.start)
        self.header.add_action(self.start_button)

        self._summary: SourceSummary | None = None
        self._checkpoint: CheckpointInfo | None = None  # set when the source is a checkpoint folder
        self._started_at = 0.0
        self._summary_generation = 0
        self._handle: JobHandle | None = None
        self._imatrix: Path | None = None

        self.error = ErrorBanner()
        self.body.addWidget(self.error)

        form = QFormLayout()
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(8)
        # The Library's GGUF files and checkpoint folders, listed in a job; the last source used, else the first.
        self.source = SourcePicker(
            ctx,
            "quantize_source",
            describe=_describe,
            describe_file=_source_label,
            kinds=("gguf", "checkpoint"),
            browse_text="Other file…",
            browse_tip="Quantize a GGUF file that is not in the Library (for a checkpoint folder, add its folder "
            "in the Library)",
        )
        self.source.box.setMinimumWidth(360)
        self.source.row.setSpacing(0)  # close together, like the Importance matrix row's field and buttons
        self.source.changed.connect(lambda *_: self._source_changed())
        self.source.listed.connect(self._sources_listed)
        self.source.failed.connect(
            lambda e, tb: self.error.show_failure(e, tb, doing="Could not list the Library's models")
        )
        form.addRow("Source", self.source)
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
        self.imatrix_pick = QPushButton("Choose…")
        self.imatrix_pick.clicked.connect(self.choose_imatrix)
        im_row.addWidget(self.imatrix_pick)
        self.imatrix_clear = QPushButton("Clear")
        self.imatrix_clear.clicked.connect(lambda: self.set_imatrix(None))
        im_row.addWidget(self.imatrix_clear)
        form.addRow("Importance matrix", im_row)
        self.body.addLayout(form)

        self.levels = LevelModel(self)
        self.table = QTableView()
        self.table.setModel(self.levels)
        self.table.setAccessibleName("Quantization levels")
        setup_list_table(self.table, stretch=3, row_height=28)
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
        self._result: QuantizeResult | ConvertResult | None = None
        self._show_result(None)

        ctx.quantize_requested.connect(self.source.set_path)  # the Library's "Quantize…"
        self._update_start()  # no source until the picker's first listing is in

    # -- sources --------------------------------------------------------------------------
    def _sources_listed(self) -> None:
        """A listing with nothing to choose says where models come from (a choice has its own line)."""
        if self.source.path() is None:
            self._source_changed()

    def choose_imatrix(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self,
            "Choose an importance matrix",
            str(paths.models_dir()),
            "Importance matrices (*.gguf *.dat *.imatrix);;All files (*)",
        )
        if name:
            self.set_imatrix(Path(name))

    def set_imatrix(self, path: Path | None) -> None:
        self._imatrix = Path(path) if path else None
        self.imatrix_edit.setText(str(self._imatrix) if self._imatrix else "")
        self._source_changed()  # some levels plan differently with an imatrix

    def _source_changed(self) -> None:
        self.error.hide()
        self._summary = None
        self._checkpoint = None
        self.levels.set_levels([], 0)
        self.requant_warning.hide()
        self.requant_check.hide()
        self.requant_check.setChecked(False)
        path = self.source.path()
        if path is None:
            self.source_info.setText("No GGUF model in the Library yet: download one in Discover.")
            self._update_start()
            return
        self.source_info.setText("Reading the model…")
        self._summary_generation += 1
        generation, with_imatrix = self._summary_generation, self._imatrix is not None
        self._enable_imatrix(not path.is_dir())
        if path.is_dir():
            handle = self.ctx.jobs.start(Job(f"Reading {path.name}", lambda report, cancel: describe_checkpoint(path)))
            handle.finished.connect(lambda info: self._checkpoint_ready(generation, info))
            handle.failed.connect(lambda e, tb: self._summary_failed(generation, e, tb))
            self._update_start()
            return
        handle = self.ctx.jobs.start(
            Job(f"Reading {path.name}", lambda report, cancel: summarize_source(path, with_imatrix))
        )
        handle.finished.connect(lambda s: self._summary_ready(generation, s))
        handle.failed.connect(lambda e, tb: self._summary_failed(generation, e, tb))
        self._update_start()

    def _summary_ready(self, generation: int, summary: SourceSummary) -> None:
        if generation != self._summary_generation:
            return  # the user picked another source meanwhile
        self._summary = summary
        size = summary.path.stat().st_size if summary.path.exists() else 0
        self.source_info.setText(
            f"{summary.architecture} · {human_params(summary.n_weights)} weights · {human_bytes(size)}"
            + (f" · already quantized ({summary.quantized_as})" if summary.quantized_as else "")
        )
        if summary.quantized_as:
            self.requant_warning.setText(
                f"This model is already quantized ({summary.quantized_as}). Quantizing it again loses quality: its "
                "weights are expanded back to floats first, rounding errors included. Start from an F16, BF16 or "
                "F32 file when you have one."
            )
            self.requant_warning.show()
            self.requant_check.show()
        self.levels.set_levels(summary.levels, size)
        self.table.resizeColumnsToContents()
        remembered = self.ctx.setting("quantize_level", DEFAULT_LEVEL)
        self.select_level(remembered if self.levels.row_of(remembered) >= 0 else DEFAULT_LEVEL)
        self._update_start()

    def _checkpoint_ready(self, generation: int, info: CheckpointInfo) -> None:
        if generation != self._summary_generation:
            return
        self._checkpoint = info
        facts = [
            info.gguf_architecture or info.architecture or "unknown architecture",
            f"{human_params(info.parameters)} weights" if info.parameters else "",
            "/".join(info.dtypes),
            f"{human_bytes(info.size_bytes)} of weights",
            "safetensors checkpoint",
        ]
        self.source_info.setText(" · ".join(f for f in facts if f))
        if not info.problem:  # say what the "about" sizes are: S/M/L mixes only differ once planned
            self.source_info.setText(
                self.source_info.text() + "\nSizes are estimates (parameters × bits per "
                "weight of the level's main type); the _S/_M/_L mixes differ a little more."
            )
        if info.problem:
            self.requant_warning.setText(f"This checkpoint cannot be converted: {info.problem}")
            self.requant_warning.show()
            self._update_start()
            return
        self.levels.set_levels(checkpoint_levels(info), info.size_bytes, estimated=True)
        self.table.resizeColumnsToContents()
        remembered = self.ctx.setting("quantize_level", DEFAULT_LEVEL)
        self.select_level(remembered if self.levels.row_of(remembered) >= 0 else DEFAULT_LEVEL)
        self._update_start()

    def _enable_imatrix(self, on: bool) -> None:
        """An importance matrix applies to GGUF sources; a checkpoint is converted without one."""
        for w in (self.imatrix_edit, self.imatrix_pick, self.imatrix_clear):
            w.setEnabled(on)
        self.imatrix_edit.setPlaceholderText(
            "None (optional: an .imatrix.gguf or .dat from llama-imatrix)"
            if on
            else "Not used when converting a checkpoint"
        )

    def _summary_failed(self, generation: int, error: BaseException, tb: str) -> None:
        if generation != self._summary_generation:
            return
        self.source_info.setText("")
        self.error.show_failure(error, tb, doing="Cannot use this file")
        self._update_start()

    # -- level and output -----------------------------------------------------------------
    def selected_level(self) -> LevelEstimate | None:
        idx = self.table.currentIndex()
        if not idx.isValid() or self.levels.rowCount() == 0:
            return None
        return self.levels.level(idx.row())

    def select_level(self, level: str) -> None:
        row = self.levels.row_of(level.upper())
        self.table.selectRow(row)
        self.table.scrollTo(self.levels.index(row, 0))

    def output_path(self) -> Path | None:
        src, level = self.source.path(), self.selected_level()
        if src is None or level is None:
            return None
        if src.is_dir():  # a checkpoint folder: its name as it is ("SmolLM2-1.7B" has no suffix to drop)
            return paths.models_dir() / f"{src.name}-{level.level}.gguf"
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
        for w in (self.table, self.source, self.requant_check):
            w.setEnabled(not running)
        src = self.source.path()
        self._enable_imatrix(not running and not (src is not None and src.is_dir()))
        checkpoint_ok = self._checkpoint is not None and self._checkpoint.problem is None
        ok = (
            not running
            and (self._summary is not None or checkpoint_ok)
            and level is not None
            and not level.problem
            and (self._summary is None or not self._summary.quantized_as or self.requant_check.isChecked())
            and (not exists or (self.overwrite_check.isChecked() and not just_made))
        )
        self.start_button.setEnabled(ok)

    # -- the run --------------------------------------------------------------------------
    def start(self) -> None:
        src, level, out = self.source.path(), self.selected_level(), self.output_path()
        if src is None or level is None or out is None or not self.start_button.isEnabled():
            return
        self.error.hide()
        self._show_result(None)
        job: Job[ConvertResult] | Job[QuantizeResult]
        if self._checkpoint is not None:
            outtype = level.level.lower() if level.level in CHECKPOINT_FLOATS else level.level
            job = convert_job(ConvertRequest(src, out, outtype, overwrite=self.overwrite_check.isChecked()))
        else:
            job = quantize_job(
                QuantizeRequest(
                    source=src,
                    output=out,
                    level=level.level,
                    imatrix=self._imatrix,
                    allow_requantize=self.requant_check.isChecked(),
                    overwrite=self.overwrite_check.isChecked(),
                )
            )
        self._started_at = time.monotonic()
        self._handle = self.ctx.jobs.start(job)
        self.progress.bind(self._handle)
        self.detail.setText("")
        self.detail.show()
        self._handle.progress.connect(self._on_progress)
        self._handle.finished.connect(self._on_finished)
        self._handle.failed.connect(self._on_failed)
        self._handle.cancelled.connect(self._on_cancelled)
        self._handle.ended.connect(self._on_ended)
        self._update_start()
        self.table.scrollTo(self.table.currentIndex())  # the level being made stays in sight

    def cancel(self) -> None:
        if self._handle is not None and self._handle.running:
            self.progress._cancel()

    def _on_progress(self, p: Progress) -> None:
        m = re.search(r"\((\d+)/(\d+)\)$", p.message)
        parts = []
        if self._checkpoint is not None and p.stage:  # a checkpoint goes through one or two stages
            level = self.selected_level()
            two = level is not None and level.level not in CHECKPOINT_FLOATS
            step = {"Converting": 1, "Quantizing": 2}.get(p.stage)
            parts.append(f"Step {step} of 2: {p.stage}" if two and step else p.stage)
        if m:
            parts.append(f"Tensor {m.group(1)} of {m.group(2)}")
        if p.unit == "B" and p.total:
            parts.append(f"{human_bytes(p.done)} of {human_bytes(p.total)} read")
        self.detail.setText(" · ".join(parts))

    def _on_finished(self, result: QuantizeResult | ConvertResult) -> None:
        self._show_result(result)
        self.ctx.library_changed.emit()

    def _on_failed(self, error: BaseException, tb: str) -> None:
        doing = "Not converted" if isinstance(error, ConvertError) else "Not quantized"
        self.error.show_failure(error, tb, doing=doing, after="Nothing was written.")

    def _on_cancelled(self) -> None:
        self.result_label.setText("Cancelled. Nothing was written.")
        self.result_label.show()

    def _on_ended(self) -> None:
        self.detail.hide()
        self._update_start()
        self.table.scrollTo(self.table.currentIndex())

    def _show_result(self, result: QuantizeResult | ConvertResult | None) -> None:
        self._result = result
        self.show_library_button.setVisible(result is not None)
        self.chat_button.setVisible(result is not None)
        if result is None:
            self.result_label.setText("")
            self.result_label.hide()
            return
        level = result.level if isinstance(result, QuantizeResult) else result.outtype.upper()
        seconds = result.seconds if isinstance(result, QuantizeResult) else time.monotonic() - self._started_at
        self.result_label.setText(
            f"Saved {result.output.name}: {level}, {human_bytes(result.output_bytes)} "
            f"in {human_duration(seconds)}. It is in your Library."
        )
        self.result_label.show()

    def _chat_with_result(self) -> None:
        if self._result is not None:
            self.ctx.open_in_chat(self._result.output)
