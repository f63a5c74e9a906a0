"""The Lab's chart: file size against KL divergence from the source, one labelled point per level.

A module of its own because pyqtgraph takes a few tenths of a second to import: the Lab page
builds the chart the first time it shows a result, not while the window opens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QFrame, QSizePolicy, QVBoxLayout, QWidget

from quantdesk.core.lab.ladder import CLOSE_KL, NOTICEABLE_KL, SMALL_KL, LadderResult, LevelResult
from quantdesk.ui import theme
from quantdesk.ui.widgets import label


class _KLAxis(pg.AxisItem):
    """The KL axis leaves room below 0 for labels; a KL divergence is never negative, so no ticks there."""

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        labels = super().tickStrings(values, scale, spacing)
        return ["" if v < -1e-12 else s for v, s in zip(values, labels, strict=False)]


class LadderChart(QWidget):
    """Size (x) against KL divergence from the source (y): one labelled point per level.

    Labels are placed in pixels after every resize, each on the first side of its point where it
    overlaps neither another label nor a point nor the plot's edge (or where it overlaps least),
    so levels of nearly the same size and quality stay readable. Mouse zoom and pan are off: the
    chart is a picture of the table, not a tool."""

    POINT = 11  # point diameter, px

    def __init__(self, tone: Callable[[LevelResult], str], parent: QWidget | None = None):
        super().__init__(parent)
        self._tone = tone  # a level's theme tone, as the table colours its verdict
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(4)
        self.plot = pg.PlotWidget(axisItems={"left": _KLAxis("left")})
        self.plot.setAccessibleName("Chart: file size against KL divergence")
        self.plot.setAntialiasing(True)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setMinimumHeight(160)
        self.plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Ignored)
        self.plot.setFrameShape(QFrame.Shape.NoFrame)
        col.addWidget(self.plot, 1)
        self.legend = label("", "Small")
        self.legend.setAlignment(Qt.AlignmentFlag.AlignCenter)
        col.addWidget(self.legend)

        self._result: LadderResult | None = None
        self._points: list[tuple[str, float, float]] = []  # (level, x, y) as plotted
        self._labels: list[pg.TextItem] = []
        self._unit = (1e6, "MB")
        vb = self.plot.getViewBox()
        vb.sigResized.connect(self._place_labels)
        vb.sigRangeChanged.connect(self._place_labels)
        self.apply_theme()

    def points(self) -> list[tuple[str, float, float]]:
        """(level, size in the axis unit, KL divergence) per plotted point, the source included."""
        return list(self._points)

    def apply_theme(self) -> None:
        c = theme.colors()
        self.plot.setBackground(c["surface"])
        font = QFont()
        font.setPixelSize(12)
        for name in ("left", "bottom"):
            axis = self.plot.getAxis(name)
            axis.setPen(pg.mkPen(c["border"]))
            axis.setTextPen(pg.mkPen(c["muted"]))
            axis.setTickFont(font)
            axis.enableAutoSIPrefix(False)
        dot = '<span style="color:{};">●</span>&nbsp;{}'  # wraps between entries only
        self.legend.setText(
            "&nbsp;&nbsp; ".join(
                dot.format(c[tone], words.replace(" ", "&nbsp;"))
                for tone, words in (
                    ("accent", "source"),
                    ("ok", "close or small loss"),
                    ("warning", "noticeable"),
                    ("error", "large loss"),
                )
            )
        )
        self.legend.setToolTip(
            f"Colours from the KL divergence: close to the original below {CLOSE_KL}, small "
            f"loss below {SMALL_KL}, noticeable below {NOTICEABLE_KL}, large loss above; the "
            "source is the reference"
        )
        self.set_result(self._result)

    def set_result(self, result: LadderResult | None) -> None:
        self._result = result
        c = theme.colors()
        self.plot.clear()
        self._labels, self._points = [], []
        rows = list(result.levels) if result is not None else []
        biggest = max((r.file_bytes for r in rows), default=0)
        self._unit = (1e9, "GB") if biggest >= 1e9 else (1e6, "MB")
        axis_style = {"color": c["muted"], "font-size": "12px"}
        self.plot.setLabel("bottom", f"File size ({self._unit[1]})", **axis_style)
        self.plot.setLabel("left", "KL divergence", **axis_style)
        for name in ("left", "bottom"):  # no made-up scale on an empty chart
            self.plot.showAxis(name, bool(rows))
        self.plot.showGrid(x=bool(rows), y=bool(rows), alpha=0.12)
        if not rows:
            self.legend.hide()
            return
        self.legend.show()
        by_size = sorted(rows, key=lambda r: r.file_bytes)
        xs = [r.file_bytes / self._unit[0] for r in by_size]
        ys = [0.0 if r.is_source else r.kl_mean for r in by_size]
        self.plot.addItem(pg.PlotDataItem(xs, ys, pen=pg.mkPen(c["border"], width=1.5)))
        spots = [
            {
                "pos": (x, y),
                "size": self.POINT,
                "data": r.level,
                "brush": pg.mkBrush(c[self._tone(r)]),
                "pen": pg.mkPen(c["surface"], width=1.5),
            }
            for r, x, y in zip(by_size, xs, ys, strict=True)
        ]
        unit = self._unit[1]
        scatter = pg.ScatterPlotItem(
            hoverable=True,
            hoverSize=self.POINT + 4,
            tip=lambda x, y, data: f"{data}: {x:.2f} {unit}, KL divergence {y:.4f}",
        )
        scatter.addPoints(spots)
        self.plot.addItem(scatter)
        font = QFont()
        font.setPixelSize(12)
        for r, x, y in zip(by_size, xs, ys, strict=True):
            self._points.append((r.level, x, y))
            text = pg.TextItem(f"{r.level} (source)" if r.is_source else r.level, color=c["text"], anchor=(0, 0))
            text.setFont(font)
            text.setPos(x, y)
            self.plot.addItem(text)
            self._labels.append(text)
        top = max(max(ys), CLOSE_KL)
        # x from 0: the distance from the axis is the size, so halving the size looks like half.
        self.plot.setXRange(0, max(xs) * 1.06, padding=0)
        self.plot.setYRange(-top * 0.14, top * 1.16, padding=0)
        self._place_labels()

    def _place_labels(self, *_: Any) -> None:
        """Put each label beside its point where it collides with nothing already placed (or,
        when every side is taken, where it covers the least)."""
        if not self._labels:
            return
        vb = self.plot.getViewBox()
        area = vb.sceneBoundingRect()
        r = self.POINT / 2 + 1
        dots = [vb.mapViewToScene(QPointF(x, y)) for _, x, y in self._points]
        taken = [QRectF(p.x() - r, p.y() - r, 2 * r, 2 * r) for p in dots]
        for text, p in zip(self._labels, dots, strict=False):
            box = text.textItem.boundingRect()
            w, h = box.width(), box.height()
            best, best_cost = None, float("inf")
            for corner in self._candidates(p, w, h, r):
                rect = QRectF(corner, box.size())
                outside = w * h - area.intersected(rect).width() * area.intersected(rect).height()
                cost = 4 * outside + sum(rect.intersected(t).width() * rect.intersected(t).height() for t in taken)
                if cost < best_cost:
                    best, best_cost = rect, cost
                if cost == 0:
                    break
            assert best is not None  # _candidates is never empty and every cost is finite
            taken.append(best)
            text.setAnchor((0, 0))
            text.setPos(vb.mapSceneToView(best.topLeft()))

    @staticmethod
    def _candidates(p: QPointF, w: float, h: float, r: float) -> list[QPointF]:
        """Top-left corners to try, best first: right of the point, left of it, above, below,
        then half a line higher or lower (for points that sit close together)."""
        x, y = p.x(), p.y()
        right, left, mid = x + r, x - r - w, x - w / 2
        out = [
            QPointF(right, y - h + 4),
            QPointF(right, y - 4),
            QPointF(left, y - h + 4),
            QPointF(left, y - 4),
            QPointF(mid, y - r - h),
            QPointF(mid, y + r),
        ]
        out += [
            QPointF(right, y - 2 * h + 8),
            QPointF(left, y - 2 * h + 8),
            QPointF(right, y + h - 8),
            QPointF(left, y + h - 8),
        ]
        return out
