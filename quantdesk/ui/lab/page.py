"""Lab: what each quantization level of a model costs, measured on this computer.

Pick a source (ideally the model's F16/BF16 file) and the levels to compare; "Run ladder" runs
quantdesk.core.lab.ladder's ladder job: every level is quantized from the source (or taken from the
Lab's cache), then the source and each level read the same evaluation text. The answer is one
table (size, perplexity, KL divergence from the source, top-token agreement, speed, and a
verdict in words) and one chart (size against KL divergence, a labelled point per level).

Runs are saved by the core (JSON in the data folder's lab/); the header's run list shows them,
newest first, and the newest is on screen when the page opens. The page never computes a figure
itself: it only formats what LadderResult holds, plus a verdict in words from the KL divergence.
Double-clicking a level opens that file in Chat. The table's model is quantdesk.ui.lab.models; the
chart (quantdesk.ui.lab.chart) is pyqtgraph, imported and built the first time a result is shown.
The source is a SourcePicker (quantdesk.ui.source_picker): the Library's GGUF files, listed in a job.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from quantdesk.core.fit import FitEstimate, estimate, size_of_gguf
from quantdesk.core.jobs import Job, Progress
from quantdesk.core.lab.ladder import (
    DEFAULT_CONTEXT as LADDER_CONTEXT,
)
from quantdesk.core.lab.ladder import (
    DEFAULT_LEVELS,
    LadderRequest,
    LadderResult,
    cache_bytes,
    clear_cache,
    delete_result,
    ladder_job,
    list_results,
)
from quantdesk.core.library import LibraryEntry
from quantdesk.core.quantize.plan import FILE_TYPES
from quantdesk.core.units import human_bytes
from quantdesk.ui import theme
from quantdesk.ui.lab.models import LadderModel, verdict
from quantdesk.ui.source_picker import SourcePicker
from quantdesk.ui.widgets import (
    BasePage,
    ElidedLabel,
    EmptyState,
    ErrorBanner,
    JobProgress,
    ask_to_delete,
    fit_html,
    label,
    primary_button,
    setup_list_table,
    while_alive,
)
from quantdesk.ui.workers import JobHandle

if TYPE_CHECKING:  # the chart module imports pyqtgraph, which loads only when the chart is first shown
    from quantdesk.ui.lab.chart import LadderChart

# The levels offered, largest first, laid out in rows of LEVEL_COLUMNS checkboxes.
LAB_LEVELS = (
    "Q8_0",
    "Q6_K",
    "Q5_K_M",
    "Q5_K_S",
    "Q4_K_M",
    "Q4_K_S",
    "IQ4_NL",
    "Q4_0",
    "IQ4_XS",
    "Q3_K_M",
    "Q3_K_S",
    "Q2_K",
)
LEVEL_COLUMNS = 4
TOKEN_CHOICES = (512, 1024, 2048)
FLOAT_TYPES = ("F32", "F16", "BF16")
READING_NOTE = (
    "<b>How to read it.</b> <i>KL divergence</i>: how far a level's next-token probabilities move from the "
    "source's, in nats; below 0.01 is hard to notice, above 0.1 answers change noticeably. <i>Perplexity</i>: how "
    "surprised the model is by the text; compare it between levels of one model only. <i>Top-token "
    "agreement</i>: how often the level picks the same next token as the source. Speeds are measured on "
    "this computer. Hover a point or a row for every figure; double-click a row to chat with that file."
)
SOURCE_HINT = "Best with the model's F16 or BF16 file: every level is made from it and compared with it."


def _describe(e: LibraryEntry) -> tuple[str, str]:
    """A Library entry in the source list: its name (and level, unless the name says it), its path and size."""
    kind = "" if e.file_type and e.file_type.upper() in e.name.upper() else f" — {e.file_type or 'GGUF'}"
    return f"{e.name}{kind}", f"{e.path} ({human_bytes(e.size)})"


def _describe_file(p: Path) -> str:
    """A file chosen with Browse… (or one the Library no longer lists) in the source list."""
    return f"{p.name} — {human_bytes(p.stat().st_size) if p.exists() else 'missing'}"


def _first_unquantized(entries: list[LibraryEntry]) -> Path | None:
    """With nothing remembered, the Lab offers an F16/BF16/F32 file first: the best source for a ladder."""
    return next((e.path for e in entries if e.file_type.upper() in FLOAT_TYPES), None)


def run_title(result: LadderResult) -> str:
    """'23 Nov 2026, 14:52 · SmolLM2-135M-F16 · 6 levels' (local time) for the run list: the date
    first, as that is what tells runs apart and what survives when the name is cut."""
    return f"{_when(result)} · {Path(result.model).stem} · {len(result.levels) - 1} levels"


def _when(result: LadderResult) -> str:
    try:
        return datetime.fromisoformat(result.created).astimezone().strftime("%d %b %Y, %H:%M")
    except ValueError:
        return result.created


class LabPage(BasePage):
    title = "Lab"

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(ctx, parent)
        self.header.subtitle.setText("What each level costs, measured here")
        self.runs_box = QComboBox()
        self.runs_box.setAccessibleName("Earlier runs")
        self.runs_box.setToolTip("Runs saved on this computer, newest first")
        self.runs_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.runs_box.setMinimumContentsLength(34)
        self.runs_box.currentIndexChanged.connect(lambda *_: self._run_chosen())
        self.header.add_action(self.runs_box)
        self.delete_button = QToolButton()
        self.delete_button.setIcon(theme.icon("trash"))
        self.delete_button.setToolTip("Delete this run (the measured files stay in the Lab's cache)")
        self.delete_button.setAccessibleName("Delete run")
        self.delete_button.clicked.connect(self.delete_shown)
        self.header.add_action(self.delete_button)
        self.run_button = primary_button("Run ladder")
        self.run_button.setToolTip("Make every checked level from the source and measure them all on the same text")
        self.run_button.clicked.connect(lambda: self.start())
        self.header.add_action(self.run_button)

        self._handle: JobHandle | None = None
        self._steps: list[str] = []
        self._shown: LadderResult | None = None

        self.error = ErrorBanner()
        self.body.addWidget(self.error)
        # Heights: the table is as tall as its rows (up to the space there is), the chart takes
        # the rest, so a tall window shows a bigger chart rather than an empty table.
        top = QHBoxLayout()
        top.setSpacing(16)
        top.addWidget(self._build_setup())
        chart_card = QFrame()
        chart_card.setObjectName("Card")
        chart_col = QVBoxLayout(chart_card)
        chart_col.setContentsMargins(8, 8, 12, 8)
        self.chart_stack = QStackedWidget()  # before the first run, the card teaches what will be here
        self.empty = EmptyState(
            "Compare quantization levels",
            "The Lab makes several quantized copies of one model and runs the same text through each, so you "
            "can see what every level costs: file size, perplexity, how far its predictions move from the "
            "original (KL divergence) and speed on this computer. Pick a model and the levels, then Run ladder.",
        )
        for text in self.empty.findChildren(QLabel):  # EmptyState sizes its text for a whole page; this is a card
            text.setMinimumWidth(0)
        self.chart_stack.addWidget(self.empty)
        self._chart: LadderChart | None = None  # built when first needed (see the chart property)
        chart_col.addWidget(self.chart_stack)
        top.addWidget(chart_card, 1)
        self.body.addLayout(top, 1)

        self.progress = JobProgress()
        self.body.addWidget(self.progress)
        self.status = label("", "Muted", wrap=True)
        self.status.hide()
        self.body.addWidget(self.status)

        self.results = QWidget()
        res_col = QVBoxLayout(self.results)
        res_col.setContentsMargins(0, 0, 0, 0)
        res_col.setSpacing(8)
        title_row = QHBoxLayout()
        title_row.setSpacing(12)
        self.run_name = label("", "SectionTitle")
        title_row.addWidget(self.run_name)
        self.run_info = ElidedLabel("", "Muted")
        title_row.addWidget(self.run_info, 1)
        res_col.addLayout(title_row)
        self.table_model = LadderModel(self)
        self.table = QTableView()
        self.table.setModel(self.table_model)
        self.table.setAccessibleName("Measured levels")
        setup_list_table(self.table, stretch=LadderModel.QUALITY, row_height=28)
        self.table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.table.doubleClicked.connect(lambda idx: self.chat_with_row(idx.row()))
        self.table.installEventFilter(self)
        res_col.addWidget(self.table, 1)
        self.body.addWidget(self.results, 2)  # the table first (up to its rows' height), the chart the rest

        theme.notifier().changed.connect(self._theme_changed)
        self._update_run_button()  # no source until the picker's first listing is in
        self.refresh_runs()

    # -- the set-up ------------------------------------------------------------------------
    def _build_setup(self) -> QWidget:
        box = QWidget()
        box.setMaximumWidth(460)
        col = QVBoxLayout(box)
        col.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(8)

        # The Library's GGUF files (listed in a job); the last source used, else an unquantized file, else the first.
        self.source = SourcePicker(
            self.ctx,
            "lab.source",
            describe=_describe,
            describe_file=_describe_file,
            prefer=_first_unquantized,
        )
        self.source.row.setSpacing(8)
        self.source.box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.source.box.setMinimumContentsLength(20)
        # listed too: a rescan can tell more about the same file (its level, once the Library lists it)
        self.source.changed.connect(lambda *_: self._source_changed())
        self.source.listed.connect(self._source_changed)
        self.source.failed.connect(
            lambda e, tb: self.error.show_failure(e, tb, doing="Could not list the Library's models")
        )
        form.addRow("Source", self.source)
        self.source_hint = label(SOURCE_HINT, "Small", wrap=True)
        form.addRow("", self.source_hint)
        self.fit_label = label("", wrap=True)
        self.fit_label.setAccessibleName("Will the source fit this computer")
        form.addRow("", self.fit_label)
        self._fit_generation = 0

        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(6)
        remembered = self.ctx.setting("lab.levels")
        wanted = set(remembered if isinstance(remembered, list) else DEFAULT_LEVELS)
        self.level_checks: dict[str, QCheckBox] = {}
        for i, level in enumerate(LAB_LEVELS):
            check = QCheckBox(level)
            check.setChecked(level in wanted)
            ft = FILE_TYPES.get(level)
            check.setToolTip(ft.tradeoff if ft else "")
            check.setAccessibleName(f"Compare {level}")
            check.toggled.connect(lambda *_: self._levels_changed())
            grid.addWidget(check, i // LEVEL_COLUMNS, i % LEVEL_COLUMNS)
            self.level_checks[level] = check
        grid.setColumnStretch(LEVEL_COLUMNS, 1)
        form.addRow("Levels", grid)

        eval_row = QHBoxLayout()
        eval_row.setSpacing(8)
        self.tokens_box = QComboBox()
        self.tokens_box.setAccessibleName("Evaluation length")
        self.tokens_box.setToolTip("How much text every model reads. Longer is steadier, and slower.")
        for n in TOKEN_CHOICES:
            self.tokens_box.addItem(f"{n:,} tokens", n)
        i = self.tokens_box.findData(self.ctx.setting("lab.tokens", 1024))
        self.tokens_box.setCurrentIndex(i if i >= 0 else 1)
        self.tokens_box.currentIndexChanged.connect(
            lambda *_: self.ctx.set_setting("lab.tokens", self.tokens_box.currentData())
        )
        eval_row.addWidget(self.tokens_box)
        self.gpu_label = label("GPU layers")
        eval_row.addSpacing(8)
        eval_row.addWidget(self.gpu_label)
        self.gpu_layers = QSpinBox()
        self.gpu_layers.setRange(0, 999)
        self.gpu_layers.setAccessibleName("GPU layers")
        self.gpu_layers.setToolTip("Layers offloaded to the GPU while measuring; 0 measures the processor alone")
        self.gpu_layers.setValue(int(self.ctx.setting("lab.gpu_layers", 0) or 0))
        self.gpu_layers.valueChanged.connect(lambda v: self.ctx.set_setting("lab.gpu_layers", v))
        eval_row.addWidget(self.gpu_layers)
        eval_row.addStretch(1)
        form.addRow("Evaluation", eval_row)
        cache_row = QHBoxLayout()
        cache_row.setSpacing(8)
        self.cache_label = label("", "Small")
        cache_row.addWidget(self.cache_label)
        self.clear_cache_button = QPushButton("Clear")
        self.clear_cache_button.setAccessibleName("Clear the Lab's cache")
        self.clear_cache_button.setToolTip("Delete the quantized levels the Lab keeps; saved runs keep their figures")
        self.clear_cache_button.clicked.connect(self.clear_cached_levels)
        cache_row.addWidget(self.clear_cache_button)
        cache_row.addStretch(1)
        form.addRow("Cache", cache_row)
        self.update_cache_size()
        self._show_gpu_layers(self._gpu_offload())
        col.addLayout(form)
        self.reading_note = label(READING_NOTE, "Small", wrap=True)
        self.reading_note.setTextFormat(Qt.TextFormat.RichText)
        self.reading_note.hide()  # shown by _fit_note where the row is tall enough; it never makes it taller
        col.addSpacing(8)
        col.addWidget(self.reading_note)
        col.addStretch(1)
        box.installEventFilter(self)
        self._setup_box = box
        return box

    @staticmethod
    def _gpu_offload() -> bool:
        try:
            from quantdesk.core.hardware import llama_backend

            return llama_backend().gpu_offload
        except Exception:  # a broken llama.cpp shows up when running; here it only hides the control
            return False

    def _show_gpu_layers(self, on: bool) -> None:
        """GPU layers only mean something on a llama.cpp built with GPU offload."""
        self.gpu_label.setVisible(on)
        self.gpu_layers.setVisible(on)

    def _source_changed(self) -> None:
        """The hint under the source, its fit line and the Run button follow the source."""
        path, entry = self.source.path(), self.source.entry()
        if path is None:
            self.source_hint.setText("No GGUF model in the Library yet: download one in Discover.")
            self.source_hint.setObjectName("Small")
        else:
            kind = (entry.file_type if entry is not None else "").upper()  # a file the Library lacks: unknown
            if kind and kind not in FLOAT_TYPES:
                self.source_hint.setText(
                    f"This file is already quantized ({kind}): the levels are made from it and "
                    "compared with it, not with the original. " + SOURCE_HINT
                )
                self.source_hint.setObjectName("WarningText")
            else:
                self.source_hint.setText(SOURCE_HINT)
                self.source_hint.setObjectName("Small")
        self.source_hint.style().unpolish(self.source_hint)
        self.source_hint.style().polish(self.source_hint)
        self._update_fit()
        self._update_run_button()

    def _update_fit(self) -> None:
        """The source's fit line at the ladder's context (every level is smaller than the source)."""
        self._fit_generation += 1
        gen, path = self._fit_generation, self.source.path()
        self.fit_label.setText("")
        if path is None:
            return
        layers = self.gpu_layers.value() if self._gpu_offload() else 0

        def size_up(report: object, cancel: object) -> FitEstimate:
            return estimate(size_of_gguf(path), LADDER_CONTEXT, gpu_layers=layers)

        handle = self.ctx.jobs.start(Job(f"Sizing up {path.name}", size_up))
        handle.finished.connect(while_alive(self, lambda est: self._fit_ready(gen, est)))

    def _fit_ready(self, gen: int, est: FitEstimate) -> None:
        if gen == self._fit_generation:
            self.fit_label.setText(f"Memory at {est.context:,} tokens of context: " + fit_html(est))

    def selected_levels(self) -> list[str]:
        return [level for level, check in self.level_checks.items() if check.isChecked()]

    def set_levels(self, levels: list[str]) -> None:
        for level, check in self.level_checks.items():
            check.setChecked(level in levels)

    def _levels_changed(self) -> None:
        self.ctx.set_setting("lab.levels", self.selected_levels())
        self._update_run_button()

    def _update_run_button(self) -> None:
        running = self._handle is not None and self._handle.running
        ok = not running and self.source.path() is not None and bool(self.selected_levels())
        self.run_button.setEnabled(ok)
        if not running:
            tip = (
                "Pick at least one level to compare"
                if not self.selected_levels()
                else "Make every checked level from the source and measure them all on the same text"
            )
            self.run_button.setToolTip(tip)

    def _enable_setup(self, on: bool) -> None:
        for w in (
            self.source,
            self.tokens_box,
            self.gpu_layers,
            self.clear_cache_button,
            *self.level_checks.values(),
        ):
            w.setEnabled(on)
        if on:
            self.update_cache_size()

    def update_cache_size(self) -> None:
        """The levels the Lab keeps (so a second run is quick) take disk space: say how much."""
        size = cache_bytes()
        self.cache_label.setText(f"{human_bytes(size)} of quantized levels kept" if size else "No levels kept")
        running = self._handle is not None and self._handle.running
        self.clear_cache_button.setEnabled(bool(size) and not running)

    def clear_cached_levels(self) -> None:
        if self._handle is not None and self._handle.running:
            return  # the running ladder is reading those files
        freed = clear_cache()
        self.status.setText(f"Freed {human_bytes(freed)}: the next run makes its levels again.")
        self.status.show()
        self.update_cache_size()

    def build_request(self) -> LadderRequest | None:
        """The ladder the controls describe, or None when there is nothing to run."""
        src, levels = self.source.path(), self.selected_levels()
        if src is None or not levels:
            return None
        return LadderRequest(
            source=src,
            levels=levels,
            tokens=int(self.tokens_box.currentData()),
            gpu_layers=self.gpu_layers.value() if self.gpu_layers.isVisibleTo(self) else 0,
        )

    # -- the run ---------------------------------------------------------------------------
    def start(self, request: LadderRequest | None = None) -> None:
        """Run the ladder the controls describe (or `request`, which tests use for tiny settings)."""
        if self._handle is not None and self._handle.running:
            return
        request = request or self.build_request()
        if request is None:
            return
        self.error.hide()
        self.status.hide()
        self._steps = (
            [f"Quantizing {level}" for level in request.levels]
            + ["(source)"]
            + [f"Measuring {level}" for level in request.levels]
        )
        self._handle = self.ctx.jobs.start(ladder_job(request))
        self.progress.bind(self._handle)
        self._handle.progress.connect(while_alive(self, self._on_progress))
        self._handle.finished.connect(while_alive(self, self._on_finished))
        self._handle.failed.connect(while_alive(self, self._on_failed))
        self._handle.cancelled.connect(while_alive(self, self._on_cancelled))
        self._handle.ended.connect(while_alive(self, self._on_ended))
        self._enable_setup(False)
        self._update_run_button()

    def cancel(self) -> None:
        if self._handle is not None and self._handle.running:
            self.progress._cancel()

    def _on_progress(self, p: Progress) -> None:
        stage = p.stage or ""
        step = next(
            (i for i, s in enumerate(self._steps) if stage == s or (s == "(source)" and stage.endswith("(source)"))),
            None,
        )
        if step is not None:  # the progress line (already set from p) says where in the whole run this is
            self.progress.text.setText(f"Step {step + 1} of {len(self._steps)} · {self.progress.text.text()}")

    def _on_finished(self, result: LadderResult) -> None:
        levels = len(result.levels) - 1
        self.status.setText(
            f"Measured {levels} level{'s' if levels != 1 else ''} of {result.model}. "
            "The run is saved; earlier runs are in the list at the top."
        )
        self.status.show()
        self.refresh_runs(select=result.path)

    def _on_failed(self, error: BaseException, tb: str) -> None:
        self.error.show_failure(error, tb, doing="The ladder did not run", after="Nothing was saved.")

    def _on_cancelled(self) -> None:
        self.status.setText("Cancelled. Nothing was saved; the levels already made are kept for the next run.")
        self.status.show()

    def _on_ended(self) -> None:
        self._enable_setup(True)
        self._update_run_button()

    # -- earlier runs ----------------------------------------------------------------------
    def refresh_runs(self, select: str | None = None) -> None:
        """Fill the run list (newest first) and show `select`, else the run shown now, else the newest."""
        keep = select or (self._shown.path if self._shown is not None else None)
        runs = list_results()
        self.runs_box.blockSignals(True)
        self.runs_box.clear()
        for r in runs:
            self.runs_box.addItem(run_title(r), r)
            self.runs_box.setItemData(self.runs_box.count() - 1, r.source, Qt.ItemDataRole.ToolTipRole)
        if not runs:
            self.runs_box.addItem("No runs yet", None)
        paths_ = [r.path for r in runs]
        self.runs_box.setCurrentIndex(paths_.index(keep) if keep in paths_ else 0)
        self.runs_box.blockSignals(False)
        self.runs_box.setEnabled(bool(runs))
        self._run_chosen()

    def runs(self) -> list[LadderResult]:
        return [self.runs_box.itemData(i) for i in range(self.runs_box.count()) if self.runs_box.itemData(i)]

    def shown_result(self) -> LadderResult | None:
        return self._shown

    def _run_chosen(self) -> None:
        self.show_result(self.runs_box.currentData())

    def show_result(self, result: LadderResult | None) -> None:
        self._shown = result
        self.table_model.set_result(result)
        if self._chart is not None:
            self._chart.set_result(result)
        self.delete_button.setEnabled(result is not None)
        # The chart (and pyqtgraph) is built only once a result is on a visible page: a saved run
        # must not slow down opening the window.
        show_chart = result is not None and (self._chart is not None or self.isVisible())
        self.chart_stack.setCurrentWidget(self.chart if show_chart else self.empty)
        self.results.setVisible(result is not None)
        if result is None:
            return
        self._fit_table()
        self._fit_columns()
        self.run_name.setText(Path(result.model).stem)
        where = "CPU" if not result.gpu_layers else f"{result.gpu_layers} GPU layers"
        threads = f" · {result.threads} threads" if result.threads else ""
        self.run_info.setText(
            f"{_when(result)} · {result.tokens_scored:,} tokens scored in {result.chunks} "
            f"chunk{'s' if result.chunks != 1 else ''} of {result.context} · {where}{threads}"
        )
        self.run_info.setToolTip(result.source)

    def _fit_table(self) -> None:
        """As tall as the header and rows (a scroll bar only when the window is too short for them)."""
        rows = self.table_model.rowCount()
        header = self.table.horizontalHeader().sizeHint().height()
        frame = 2 * self.table.frameWidth()
        scroll = self.table.horizontalScrollBar().sizeHint().height()
        full = header + rows * self.table.verticalHeader().defaultSectionSize() + frame + scroll
        self.table.setMaximumHeight(full)
        self.results.setMaximumHeight(self.run_name.sizeHint().height() + 8 + full)
        self.table.setMinimumHeight(min(full, header + 3 * self.table.verticalHeader().defaultSectionSize() + frame))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt naming)
        if event.type() == QEvent.Type.Resize and watched is getattr(self, "table", None):
            self._fit_columns()
        if event.type() == QEvent.Type.Resize and watched is getattr(self, "_setup_box", None):
            self._fit_note()
        return super().eventFilter(watched, event)

    def _fit_note(self) -> None:
        """The how-to-read note fills the space under the set-up when there is room for all of it."""
        box = self._setup_box
        layout = box.layout()
        first = layout.itemAt(0) if layout is not None else None
        assert first is not None  # the set-up box's column, built with the box, starts with its form
        form_h = first.sizeHint().height()
        need = form_h + 8 + self.reading_note.heightForWidth(box.width())
        self.reading_note.setVisible(box.height() >= need)

    def _fit_columns(self) -> None:
        """Hide the optional columns, in order, until the rest fits without a horizontal scroll bar."""
        view, header = self.table, self.table.horizontalHeader()
        for col in LadderModel.OPTIONAL:
            view.setColumnHidden(col, False)
        if self.table_model.rowCount() == 0:
            return

        def width(col: int) -> int:
            return max(view.sizeHintForColumn(col), header.sectionSizeHint(col))

        room = view.width() - 2 * view.frameWidth() - view.verticalScrollBar().sizeHint().width()
        shown = [c for c in range(self.table_model.columnCount())]
        for col in LadderModel.OPTIONAL:
            if sum(width(c) for c in shown) <= room:
                break
            view.setColumnHidden(col, True)
            shown.remove(col)

    def confirm_delete(self, result: LadderResult) -> bool:
        return ask_to_delete(
            self,
            "Delete run",
            f"Delete the run of {result.model} from {_when(result)}?",
            "Its measurements are forgotten. The quantized files stay in the Lab's cache, so "
            "running the same levels again is quick.",
            QMessageBox.Icon.Question,
        )

    def delete_shown(self) -> None:
        result = self._shown
        if result is None or not self.confirm_delete(result):
            return
        try:
            delete_result(result)
        except OSError as e:
            self.error.show_failure(e, str(e), doing="Could not delete the run")
            return
        self._shown = None
        self.status.hide()
        self.refresh_runs()

    def chat_with_row(self, row: int) -> None:
        if not 0 <= row < self.table_model.rowCount():
            return
        path = Path(self.table_model.level(row).path)
        if not path.is_file():
            self.error.show_error(f"{path.name} is no longer on disk: run the ladder again to make it.")
            return
        self.ctx.open_in_chat(path)

    # -- the page's life -------------------------------------------------------------------
    @property
    def chart(self) -> LadderChart:
        """The size-vs-KL chart (quantdesk.ui.lab.chart), built on first use."""
        if self._chart is None:
            from quantdesk.ui.lab.chart import LadderChart

            self._chart = LadderChart(tone=lambda row: verdict(row)[1])
            self.chart_stack.addWidget(self._chart)
            self._chart.set_result(self._shown)
        return self._chart

    def on_shown(self) -> None:
        """Runs saved meanwhile (the command line writes them too) appear when the page opens."""
        if self._handle is None or not self._handle.running:
            self.refresh_runs()
            self.update_cache_size()

    def _theme_changed(self) -> None:
        self.delete_button.setIcon(theme.icon("trash"))
        if self._chart is not None:
            self._chart.apply_theme()
        self.table.viewport().update()
