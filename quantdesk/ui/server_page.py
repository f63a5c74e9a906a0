"""Server: the local OpenAI- and Anthropic-compatible API, run inside the app while the user chats.

The page starts and stops a quantdesk.server Server (uvicorn in its own thread; starting and
stopping run as jobs, so the window never waits on them), shows its address, the models it has
loaded with the memory the fit model gives them, a live request log, and snippets to copy.
"Serve on my network" listens on every interface and so needs an API key: the page makes one.
The registry and the log are read on a timer (both are safe to read from this thread).
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from quantdesk.core.jobs import Job
from quantdesk.core.units import human_bytes
from quantdesk.server.registry import ModelStatus
from quantdesk.server.runner import DEFAULT_MAX_LOADED, DEFAULT_PORT, DEFAULT_TTL_S, Server, ServerConfig, new_api_key
from quantdesk.server.snippets import client_base, snippets
from quantdesk.ui.widgets import RIGHT, BasePage, ErrorBanner, RowTableModel, label, primary_button, setup_list_table

log = logging.getLogger(__name__)

NETWORK_HOST = "0.0.0.0"
LOCAL_HOST = "127.0.0.1"
POLL_MS = 500


class LoadedModelsModel(RowTableModel):
    COLUMNS = ("Model", "For", "State", "Memory", "Requests", "Served")
    RIGHT_ALIGNED = frozenset({3, 4, 5})

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._rows: list[ModelStatus] = []

    def set_rows(self, rows: list[ModelStatus]) -> None:
        if rows == self._rows:
            return
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        m, col = self._rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (
                m.id,
                "embeddings" if m.kind == "embed" else "chat",
                m.state,
                human_bytes(m.memory_bytes),
                str(m.busy),
                str(m.served),
            )[col]
        if role == Qt.ItemDataRole.ToolTipRole and col == 3:
            return f"What the fit model gives it at {m.context:,} tokens of context"
        if role == Qt.ItemDataRole.TextAlignmentRole and col in self.RIGHT_ALIGNED:
            return RIGHT
        return None


def _card(title: str) -> tuple[QFrame, QVBoxLayout]:
    card = QFrame()
    card.setObjectName("Card")
    col = QVBoxLayout(card)
    col.setContentsMargins(16, 12, 16, 16)
    col.setSpacing(8)
    col.addWidget(label(title, "SectionTitle"))
    return card, col


def _copy_button(text_of: Any, what: str) -> QPushButton:
    b = QPushButton("Copy")
    b.setToolTip(f"Copy the {what}")
    b.setAccessibleName(f"Copy the {what}")
    b.clicked.connect(lambda: QGuiApplication.clipboard().setText(text_of()))
    return b


class ServerPage(BasePage):
    title = "Server"

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(ctx, parent)
        self.server: Server | None = None
        self._seen = 0  # the last request log entry shown
        self._busy = False  # starting or stopping
        self.toggle_button = primary_button("Start server")
        self.header.add_action(self.toggle_button)
        self.toggle_button.clicked.connect(self.toggle)
        self.error = ErrorBanner()
        self.body.addWidget(self.error)

        top = QHBoxLayout()
        top.setSpacing(12)
        self.body.addLayout(top)
        card, col = _card("Address")
        self.status = label("Not running. Start it to let OpenAI and Anthropic clients use your models.", "Muted", True)
        col.addWidget(self.status)
        row = QHBoxLayout()
        self.address = QLineEdit()
        self.address.setReadOnly(True)
        self.address.setAccessibleName("Server address")
        row.addWidget(self.address, 1)
        row.addWidget(_copy_button(self.address.text, "address"))
        col.addLayout(row)
        form = self.form = QFormLayout()
        form.setHorizontalSpacing(16)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        self.port_box = QSpinBox()
        self.port_box.setRange(1024, 65535)
        self.port_box.setValue(int(ctx.setting("server.port", DEFAULT_PORT)))
        self.port_box.setAccessibleName("Port")
        form.addRow("Port", self.port_box)
        self.network_box = QCheckBox("Serve on my network")
        self.network_box.setToolTip("Other computers on your network can use the models; they need the key below")
        self.network_box.setChecked(bool(ctx.setting("server.network", False)))
        self.network_box.toggled.connect(self._network_toggled)
        form.addRow("", self.network_box)
        key_row = QHBoxLayout()
        self.key_edit = QLineEdit(str(ctx.setting("server.api_key", "")))
        self.key_edit.setReadOnly(True)
        self.key_edit.setAccessibleName("API key")
        key_row.addWidget(self.key_edit, 1)
        key_row.addWidget(_copy_button(self.key_edit.text, "API key"))
        self.new_key_button = QPushButton("New key")
        self.new_key_button.setToolTip("Make a new key; clients using the old one stop working")
        self.new_key_button.clicked.connect(self._new_key)
        key_row.addWidget(self.new_key_button)
        self.key_row = QWidget()
        self.key_row.setLayout(key_row)
        key_row.setContentsMargins(0, 0, 0, 0)
        form.addRow("API key", self.key_row)
        self.max_loaded_box = QSpinBox()
        self.max_loaded_box.setRange(1, 16)
        self.max_loaded_box.setValue(int(ctx.setting("server.max_loaded", DEFAULT_MAX_LOADED)))
        self.max_loaded_box.setToolTip("When one more is needed, the one used least recently is unloaded")
        form.addRow("Models at once", self.max_loaded_box)
        self.ttl_box = QSpinBox()
        self.ttl_box.setRange(0, 24 * 60)
        self.ttl_box.setSuffix(" min")
        self.ttl_box.setSpecialValueText("never")
        self.ttl_box.setValue(int(ctx.setting("server.ttl_min", DEFAULT_TTL_S // 60)))
        self.ttl_box.setToolTip("Unload a model nobody has used for this long")
        form.addRow("Unload when idle", self.ttl_box)
        col.addLayout(form)
        col.addStretch(1)
        top.addWidget(card, 1)

        card, col = _card("Use it")
        self.snippet_tabs = QTabWidget()
        self.snippet_views: dict[str, QPlainTextEdit] = {}
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        for name in ("curl", "Python", "JavaScript"):
            view = QPlainTextEdit()
            view.setReadOnly(True)
            view.setFont(mono)
            view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
            view.setAccessibleName(f"{name} example")
            self.snippet_views[name] = view
            self.snippet_tabs.addTab(view, name)
        col.addWidget(self.snippet_tabs, 1)
        copy_row = QHBoxLayout()
        copy_row.addWidget(label("Any OpenAI or Anthropic client works: point it at the address.", "Small", True), 1)
        copy_row.addWidget(_copy_button(self._current_snippet, "example"))
        col.addLayout(copy_row)
        top.addWidget(card, 1)

        card, col = _card("Loaded models")
        self.models = LoadedModelsModel(self)
        self.models_view = QTableView()
        self.models_view.setModel(self.models)
        self.models_view.setAccessibleName("Loaded models")
        setup_list_table(self.models_view, stretch=0)
        self.models_view.setMinimumHeight(96)
        self.models_view.setMaximumHeight(200)
        col.addWidget(self.models_view)
        self.models_hint = label("None yet: a model loads when the first request names it.", "Small")
        col.addWidget(self.models_hint)
        self.body.addWidget(card)

        card, col = _card("Requests")
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setFont(mono)
        self.log_view.setMaximumBlockCount(1000)
        self.log_view.setAccessibleName("Request log")
        self.log_view.setPlaceholderText("Each request appears here as it is answered.")
        col.addWidget(self.log_view)
        self.body.addWidget(card, 1)

        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.refresh)
        for box in (self.port_box, self.max_loaded_box, self.ttl_box):
            box.valueChanged.connect(self._save_settings)
        self._network_toggled(self.network_box.isChecked())
        self._show_state()

    # -- configuration ---------------------------------------------------------------------------
    def config(self) -> ServerConfig:
        network = self.network_box.isChecked()
        return ServerConfig(
            host=NETWORK_HOST if network else LOCAL_HOST,
            port=self.port_box.value(),
            api_key=self.key_edit.text() if network else "",
            max_loaded=self.max_loaded_box.value(),
            ttl_s=float(self.ttl_box.value() * 60),
        )

    def _network_toggled(self, on: bool) -> None:
        if on and not self.key_edit.text():
            self._new_key()
        self.form.setRowVisible(self.key_row, on)
        self._save_settings()

    def _new_key(self) -> None:
        self.key_edit.setText(new_api_key())
        self._save_settings()
        if self.server is not None and self.network_box.isChecked():
            self.status.setText("The new key applies when the server starts again.")

    def _save_settings(self) -> None:
        self.ctx.set_setting("server.port", self.port_box.value())
        self.ctx.set_setting("server.network", self.network_box.isChecked())
        self.ctx.set_setting("server.api_key", self.key_edit.text())
        self.ctx.set_setting("server.max_loaded", self.max_loaded_box.value())
        self.ctx.set_setting("server.ttl_min", self.ttl_box.value())
        self._show_snippets()

    # -- start / stop ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.server is not None and self.server.running

    def toggle(self) -> None:
        if self._busy:
            return
        if self.running:
            self.stop()
        else:
            self.start()

    def start(self) -> None:
        self.error.hide()
        try:
            server = Server(self.config())
        except Exception as e:  # a UsageError from the configuration
            self.error.show_failure(e, doing="The server did not start")
            return
        self._busy = True
        self._show_state("Starting…")

        def run(report: Any, cancel: Any) -> Server:
            server.start()
            return server

        handle = self.ctx.jobs.start(Job("Starting the server", run))
        handle.finished.connect(self._started)
        handle.failed.connect(self._start_failed)

    def _started(self, server: Server) -> None:
        self._busy = False
        self.server = server
        self._seen = 0
        self.timer.start()
        self._show_state()
        self.refresh()

    def _start_failed(self, error: BaseException, details: str) -> None:
        self._busy = False
        self.error.show_failure(error, details, doing="The server did not start")
        self._show_state()

    def stop(self) -> None:
        server = self.server
        if server is None:
            return
        self._busy = True
        self._show_state("Stopping…")

        def run(report: Any, cancel: Any) -> None:
            server.stop()

        handle = self.ctx.jobs.start(Job("Stopping the server", run))
        handle.ended.connect(self._stopped)

    def _stopped(self) -> None:
        self._busy = False
        if self.server is not None:
            self._read_log(self.server)  # the last lines, written while it stopped
        self.server = None
        self.timer.stop()
        self.models.set_rows([])
        self._show_state()

    def shutdown(self) -> None:
        """The window is closing: stop serving (models unload, clients get their connection closed)."""
        self.timer.stop()
        if self.server is not None:
            self.server.stop()
            self.server = None

    # -- what the page shows -----------------------------------------------------------------
    def _show_state(self, doing: str = "") -> None:
        on = self.running
        self.toggle_button.setText("Stop server" if on else "Start server")
        self.toggle_button.setEnabled(not self._busy)
        for w in (self.port_box, self.network_box, self.max_loaded_box, self.ttl_box):
            w.setEnabled(not on and not self._busy)
        if doing:
            self.status.setText(doing)
        elif on and self.server is not None:
            where = "on your network" if self.server.config.host == NETWORK_HOST else "for this computer only"
            self.status.setText(f"Running {where}. OpenAI clients use the address below; Anthropic clients drop /v1.")
        else:
            self.status.setText("Not running. Start it to let OpenAI and Anthropic clients use your models.")
        self._show_snippets()

    def base_url(self) -> str:
        config = self.server.config if self.server is not None else self.config()
        port = self.server.port if self.server is not None else config.port
        return client_base(config.host, port)

    def _show_snippets(self) -> None:
        self.address.setText(self.base_url())
        key = self.key_edit.text() if self.network_box.isChecked() else ""
        for name, text in snippets(self.base_url(), key, "starter").items():
            self.snippet_views[name].setPlainText(text)

    def _current_snippet(self) -> str:
        view = self.snippet_tabs.currentWidget()
        return view.toPlainText() if isinstance(view, QPlainTextEdit) else ""

    def refresh(self) -> None:
        server = self.server
        if server is None:
            return
        rows = server.registry.snapshot()
        self.models.set_rows(rows)
        self.models_hint.setVisible(not rows)
        self._read_log(server)
        if not server.running and not self._busy:  # it stopped by itself (rare: a crash is in the log)
            self._stopped()

    def _read_log(self, server: Server) -> None:
        for entry in server.log.since(self._seen):
            self.log_view.appendPlainText(entry.line())
            self._seen = entry.seq

    def on_shown(self) -> None:
        self.refresh()
