"""The Lab's item models: LadderModel, one ladder's levels as the table shows them.

Apart from the page so they can be tested on their own (pytest-qt's qtmodeltester) and read
without the page's layout code around them. The verdict in words and its tone live here as
well: the table's Quality column and the chart's points (quantdesk.ui.lab.chart) show the same.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QFont

from quantdesk.core.lab.ladder import CLOSE_KL, NOTICEABLE_KL, SMALL_KL, LadderResult, LevelResult, quality_words
from quantdesk.core.units import human_bytes
from quantdesk.ui import theme
from quantdesk.ui.widgets import RIGHT, RowTableModel

# The tone each of quantdesk.core.lab.ladder.quality_words' verdicts is shown in.
VERDICT_TONES = {
    "the original": "accent",
    "close to the original": "ok",
    "small loss": "ok",
    "noticeable loss": "warning",
    "large loss": "error",
}


def verdict(row: LevelResult) -> tuple[str, str]:
    """The level's quality in words (the CLI's words, capitalised) and the theme tone to show it in."""
    words = quality_words(row)
    return ("Reference" if row.is_source else words[:1].upper() + words[1:]), VERDICT_TONES[words]


def _number(x: float, decimals: int) -> str:
    """Perplexities of a cut-down test model reach millions: keep big numbers readable."""
    if x != x:  # NaN
        return "—"
    return f"{x:,.0f}" if abs(x) >= 10_000 else f"{x:,.{decimals}f}"


def _percent_change(x: float, ref: float) -> str:
    if not ref or ref != ref or x != x:
        return "—"
    d = (x / ref - 1) * 100
    return f"{d:+.2f}%" if abs(d) < 10 else f"{d:+.1f}%"


def _speed(tps: float) -> str:
    return "—" if tps <= 0 else (f"{tps:,.0f}" if tps >= 100 else f"{tps:.1f}")


class LadderModel(RowTableModel):
    """One ladder's rows: the source first, then the levels, largest first (as the core orders them)."""

    # Two-line headers keep the table narrow; where it is still too wide, OPTIONAL columns give way.
    COLUMNS = (
        "Level",
        "Size",
        "Bits/\nweight",
        "Perplexity",
        "Δ\nperplexity",
        "KL\ndivergence",
        "KL p99",
        "Top-token\nagreement",
        "Prompt\nt/s",
        "Generate\nt/s",
        "Quality",
    )
    RIGHT_ALIGNED = frozenset(range(1, 10))
    QUALITY = 10
    # Hidden in this order when the table is too narrow for all (every figure stays in the row's tooltip).
    OPTIONAL = (6, 2, 8)  # KL p99, Bits/weight, Prompt t/s
    TIPS = (
        "The quantization level (the source is the file every level was made from)",
        "File size on disk",
        "Bits per weight of the tensor data",
        "Perplexity on the evaluation text: lower is better; only the change from the source matters",
        "How much higher the perplexity is than the source's",
        "Mean KL divergence from the source's next-token probabilities, in nats: 0 is identical",
        "The 99th percentile of the KL divergence: how wrong the worst 1% of tokens are",
        "How often the most likely next token is the same as the source's",
        "Tokens per second reading the text on this computer",
        "Tokens per second generating on this computer",
        f"From the KL divergence: close to the original below {CLOSE_KL}, small loss below {SMALL_KL}, "
        f"noticeable below {NOTICEABLE_KL}",
    )

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._rows: list[LevelResult] = []

    def set_result(self, result: LadderResult | None) -> None:
        self.beginResetModel()
        self._rows = list(result.levels) if result is not None else []
        self.endResetModel()

    def level(self, row: int) -> LevelResult:
        return self._rows[row]

    def _source(self) -> LevelResult | None:
        return next((r for r in self._rows if r.is_source), None)

    def cells(self, row: int) -> tuple[str, ...]:
        """The row as shown, one string per column."""
        r, src = self._rows[row], self._source()
        if r.is_source:
            compared = ("—", "—", "—", "—")
        else:
            compared = (
                _percent_change(r.perplexity, src.perplexity) if src else "—",
                f"{r.kl_mean:.4f}",
                f"{r.kl_p99:.3f}",
                f"{r.top1_agreement * 100:.1f}%",
            )
        return (
            f"{r.level} (source)" if r.is_source else r.level,
            human_bytes(r.file_bytes),
            f"{r.bits_per_weight:.2f}",
            _number(r.perplexity, 2),
            *compared,
            _speed(r.prompt_tps),
            _speed(r.generate_tps),
            verdict(r)[0],
        )

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,  # noqa: N802 (Qt naming)
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return self.TIPS[section]
        return super().headerData(section, orientation, role)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        r, col = self._rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cells(index.row())[col]
        if role == Qt.ItemDataRole.TextAlignmentRole and col in self.RIGHT_ALIGNED:
            return RIGHT
        if role == Qt.ItemDataRole.ForegroundRole and col == self.QUALITY:
            return QBrush(theme.color(verdict(r)[1]))
        if role == Qt.ItemDataRole.FontRole and r.is_source and col == 0:
            f = QFont()
            f.setBold(True)
            return f
        if role == Qt.ItemDataRole.ToolTipRole:
            facts = (
                f"{r.level}: {r.file_bytes:,} bytes, {r.bits_per_weight:.3f} bits per weight\n"
                f"Perplexity {r.perplexity:.4f}; KL divergence {r.kl_mean:.5f} nats (99th percentile "
                f"{r.kl_p99:.4f}); same top token {r.top1_agreement:.2%}\n"
                f"Reads {r.prompt_tps:,.1f} tokens/s, generates {r.generate_tps:,.1f} tokens/s"
            )
            return f"{facts}\n{r.path}\nDouble-click to chat with this file."
        if role == Qt.ItemDataRole.UserRole:
            return r
        return None
