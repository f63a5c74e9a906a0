"""AppContext: what every page is given, so pages talk to the app and not to each other.

A page is constructed as `Page(ctx, parent=None)`. Through `ctx` it can:
- run jobs: `ctx.jobs.start(Job(...))` (see quantdesk/ui/workers.py);
- read and write settings: `ctx.setting(key, default)`, `ctx.set_setting(key, value)`;
- move the user: `ctx.show_page("library")`, `ctx.open_in_chat(path)`, `ctx.open_in_quantize(path)`;
- announce and hear app-wide changes: `ctx.library_changed.emit()` after a download or a
  quantization wrote a file; connect to it to refresh lists.
Page keys are the PAGE_KEYS below, in sidebar order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from quantdesk.core import settings
from quantdesk.ui.workers import JobManager

PAGE_KEYS = ("discover", "library", "quantize", "chat", "lab", "server", "settings")


class AppContext(QObject):
    library_changed = Signal()  # files were added to or removed from the library
    page_requested = Signal(str)  # a PAGE_KEYS entry; the main window switches to it
    chat_requested = Signal(object)  # Path of a model file to chat with
    quantize_requested = Signal(object)  # Path of a GGUF file or checkpoint folder to quantize
    new_chat_requested = Signal()
    settings_changed = Signal(str)  # the key that changed

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.jobs = JobManager(self)

    def setting(self, key: str, default: Any = None) -> Any:
        return settings.get(key, default)

    def set_setting(self, key: str, value: Any) -> None:
        settings.set_value(key, value)
        self.settings_changed.emit(key)

    def show_page(self, key: str) -> None:
        if key not in PAGE_KEYS:
            raise ValueError(f"unknown page {key!r}; pages are {', '.join(PAGE_KEYS)}")
        self.page_requested.emit(key)

    def open_in_chat(self, model_path: str | Path) -> None:
        """Switch to Chat with this model file selected (it loads in the background)."""
        self.chat_requested.emit(Path(model_path))
        self.page_requested.emit("chat")

    def open_in_quantize(self, source: str | Path) -> None:
        """Switch to Quantize with this GGUF file or checkpoint folder as the source."""
        self.quantize_requested.emit(Path(source))
        self.page_requested.emit("quantize")
