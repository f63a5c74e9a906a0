"""The Discover page's lists, as Qt item models over quantdesk.core's dataclasses: ResultsModel
(search results), FilesModel (a repo's files grouped, with the fit verdict) and DownloadsModel
(the download queue), plus ProgressDelegate, which draws the queue's progress bars.

The models only present; what the rows are comes from quantdesk.core (hub.client for results and
files, hub.queue for the downloads), so they can be tested with real rows and no page around them.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QRectF, Qt
from PySide6.QtGui import QBrush, QFont, QPainter
from PySide6.QtWidgets import QStyledItemDelegate, QStyleOptionViewItem

from quantdesk.core.hub import client as hub
from quantdesk.core.hub import downloads
from quantdesk.core.hub.queue import DownloadItem
from quantdesk.core.units import human_bytes, human_duration, human_params, human_rate
from quantdesk.ui import theme
from quantdesk.ui.widgets import RIGHT, RowTableModel


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


class DownloadsModel(RowTableModel):
    """The download queue, one row per quantdesk.core.hub.queue.DownloadItem. It mirrors the core
    queue's list: the Qt adapter (quantdesk.ui.discover.queue) calls add, remove and refresh from
    the queue's on_added, on_removed and on_change callbacks, so rows stay in the queue's order."""

    COLUMNS = ("Download", "Progress", "Speed", "Time left", "Status")
    STATES = {
        "queued": "Waiting",
        "running": "Downloading",
        "paused": "Paused",
        "failed": "Failed",
        "done": "In your Library",
        "cancelled": "Cancelled",  # only for the moment before the row goes
    }

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._rows: list[DownloadItem] = []

    @property
    def items(self) -> list[DownloadItem]:
        return list(self._rows)

    def add(self, item: DownloadItem) -> None:
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows))
        self._rows.append(item)
        self.endInsertRows()

    def remove(self, item: DownloadItem) -> None:
        row = self._rows.index(item)
        self.beginRemoveRows(QModelIndex(), row, row)
        self._rows.pop(row)
        self.endRemoveRows()

    def refresh(self, item: DownloadItem) -> None:
        row = self._rows.index(item)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        it, col = self._rows[index.row()], index.column()
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
