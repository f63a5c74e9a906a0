"""SourcePicker: the one way a page picks the model it works on (the Lab and Quantize use it).

A combo box of the Library's models plus a Browse… button for a GGUF file the Library does not
list. Listing the Library walks folders (the Hugging Face cache, added folders on a slow disk),
so it runs as a job through ctx.jobs, never in the UI thread, and runs again whenever
ctx.library_changed fires. The user's choice survives every rescan: a chosen file the Library
does not list (one picked with Browse…, or deleted meanwhile) stays in the list, since the page
may still show facts about it. The choice is remembered in the setting the page names, so the
page opens with it next time.

The page decides what the list holds (`kinds`, LibraryEntry.kind values), how an entry reads
(`describe`) and how a file from Browse… reads (`describe_file`), and which model to offer when
nothing is remembered (`prefer`, else the first listed).

Signals, all in the UI thread:
- changed(path): the chosen path changed (a Path; None only while nothing can be chosen);
- listed(): a scan finished and the list shows it (what `entry()` knows may have changed);
- failed(error, traceback): the scan failed; the page reports it with its ErrorBanner.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QPushButton, QWidget

from quantdesk.core import library
from quantdesk.core.jobs import CancelToken, Job, ProgressCallback
from quantdesk.core.library import LibraryEntry
from quantdesk.ui.widgets import ask_for_gguf, while_alive

if TYPE_CHECKING:
    from quantdesk.ui.context import AppContext

LOOKING = "Looking for models…"  # the combo's placeholder until the first scan is in


class SourcePicker(QWidget):
    """A combo of the Library's models and a Browse… button; `path()` is the choice."""

    changed = Signal(object)  # Path | None
    listed = Signal()
    failed = Signal(object, str)  # exception, traceback text

    def __init__(
        self,
        ctx: AppContext,
        setting_key: str,
        *,
        describe: Callable[[LibraryEntry], tuple[str, str]],
        describe_file: Callable[[Path], str],
        kinds: tuple[str, ...] = ("gguf",),
        prefer: Callable[[list[LibraryEntry]], Path | None] | None = None,
        browse_text: str = "Browse…",
        browse_tip: str = "Use a GGUF file that is not in the Library",
        parent: QWidget | None = None,
    ):
        """`describe(entry)` gives an entry's text and tooltip in the list; `describe_file(path)`
        the text of a file the Library does not list; `prefer(entries)` the model to offer first
        when the setting remembers none (None: the first listed)."""
        super().__init__(parent)
        self.ctx = ctx
        self.setting_key = setting_key
        self.kinds = kinds
        self._describe = describe
        self._describe_file = describe_file
        self._prefer = prefer
        self._path: Path | None = None
        self._entries: dict[str, LibraryEntry] = {}  # str(path) -> entry, as last listed
        self._generation = 0  # only the newest scan's answer is shown
        self.ready = False  # True once the first scan has answered (listed or failed)

        self.row = QHBoxLayout(self)  # the page may set its spacing, to match its other rows
        self.row.setContentsMargins(0, 0, 0, 0)
        self.box = QComboBox()
        self.box.setAccessibleName("Source model")
        self.box.setPlaceholderText(LOOKING)
        self.box.currentIndexChanged.connect(self._picked)
        self.row.addWidget(self.box, 1)
        self.browse_button = QPushButton(browse_text)
        self.browse_button.setToolTip(browse_tip)
        self.browse_button.clicked.connect(self.choose_file)
        self.row.addWidget(self.browse_button)

        ctx.library_changed.connect(self.rescan)
        self.rescan()

    # -- what the page asks -----------------------------------------------------------------
    def path(self) -> Path | None:
        """The chosen GGUF file or checkpoint folder, or None when there is none to choose."""
        return self._path

    def entry(self) -> LibraryEntry | None:
        """The Library's entry for the choice (its file type, size), or None for a file it does
        not list or before the first scan is in."""
        return self._entries.get(str(self._path)) if self._path is not None else None

    def set_path(self, path: str | Path) -> None:
        """Choose this file or folder (Browse…, another page handing one over), adding it to the
        list if the Library does not list it."""
        path = Path(path)
        self.box.blockSignals(True)
        self._select(path)
        self.box.blockSignals(False)
        self._choose(path)

    def choose_file(self) -> None:
        """Browse…: a GGUF file from anywhere on disk."""
        name = ask_for_gguf(self)
        if name:
            self.set_path(name)

    # -- the list ---------------------------------------------------------------------------
    def rescan(self) -> None:
        """List the Library again in a job; the choice stays as it is meanwhile."""
        self._generation += 1
        gen, kinds = self._generation, self.kinds
        remembered = self.ctx.setting(self.setting_key)

        def scan(report: ProgressCallback, cancel: CancelToken) -> tuple[list[LibraryEntry], Path | None]:
            entries = [e for e in library.list_models() if e.kind in kinds]
            # Whether the remembered file is still there is a disk access too: asked here, not in the UI thread.
            last = Path(remembered) if isinstance(remembered, str) and remembered else None
            return entries, (last if last is not None and last.exists() else None)

        handle = self.ctx.jobs.start(Job("Looking for models", scan))
        handle.finished.connect(while_alive(self, lambda result: self._scanned(gen, *result)))
        handle.failed.connect(while_alive(self, lambda e, tb: self._scan_failed(gen, e, tb)))

    def _scanned(self, gen: int, entries: list[LibraryEntry], remembered: Path | None) -> None:
        if gen != self._generation:
            return  # a newer scan is on its way
        self._entries = {str(e.path): e for e in entries}
        path = self._path
        if path is None:  # the first list: the remembered choice, else the page's favourite, else the first
            path = remembered or (self._prefer(entries) if self._prefer else None)
            path = path or (entries[0].path if entries else None)
        self.box.blockSignals(True)
        self.box.clear()
        for e in entries:
            text, tip = self._describe(e)
            self.box.addItem(text, str(e.path))
            self.box.setItemData(self.box.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self._select(path)
        self.box.blockSignals(False)
        self._first_answer()
        self._choose(path)
        self.listed.emit()

    def _scan_failed(self, gen: int, error: BaseException, tb: str) -> None:
        if gen != self._generation:
            return
        self._first_answer()
        self.failed.emit(error, tb)

    def _first_answer(self) -> None:
        self.ready = True
        self.box.setPlaceholderText("")

    def _select(self, path: Path | None) -> None:
        """Show `path` as the current item (signals blocked by the caller), adding it if missing."""
        if path is None:
            self.box.setCurrentIndex(-1)
            return
        i = self.box.findData(str(path))
        if i < 0:
            self.box.addItem(self._describe_file(path), str(path))
            i = self.box.count() - 1
        self.box.setCurrentIndex(i)

    def _picked(self, index: int) -> None:
        """The user chose an item in the combo."""
        data = self.box.itemData(index) if index >= 0 else None
        self._choose(Path(data) if data else None)

    def _choose(self, path: Path | None) -> None:
        """Make `path` the choice: remember it and tell the page, if it is a change."""
        if path == self._path:
            return
        self._path = path
        if path is not None:
            self.ctx.set_setting(self.setting_key, str(path))
        self.changed.emit(path)
