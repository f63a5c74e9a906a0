"""Chat: conversations on the left, the transcript in the middle, model settings on the right.

The load → reply → save state machine is quantdesk.core.chat.session.ChatSession, which owns the
ChatEngine and the conversation Store and has no Qt in it; this page is its view and its hands. It
builds the widgets, turns clicks and keys into calls on the session, runs the session's jobs with
ctx.jobs (each in a worker thread, its signals fed back to the session in the UI thread), and shows
what the session's events say. The reply streams into a ReplyStream that the worker also saves to
the store every few tokens, and the view re-renders the growing reply on each (throttled, ~10 per
second) progress signal. The UI thread only ever renders and saves small rows, so the window stays
responsive while tokens stream.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QListView,
    QMenu,
    QMessageBox,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from quantdesk.core import renames
from quantdesk.core.chat.engine import ChatEngine, ChatSettings, ModelFacts, default_settings
from quantdesk.core.chat.session import ChatEvents, ChatSession, JobCallbacks
from quantdesk.core.chat.store import UNTITLED, Store, StoredMessage
from quantdesk.core.gguf.reader import GGUFError
from quantdesk.core.jobs import Job
from quantdesk.core.starter import starter_model_path
from quantdesk.ui import theme
from quantdesk.ui.chat.settings_panel import ChatSettingsPanel
from quantdesk.ui.chat.widgets import Composer, MessageWidget, Transcript, copy_text
from quantdesk.ui.widgets import ElidedLabel, EmptyState, ErrorBanner, label
from quantdesk.ui.workers import JobHandle

log = logging.getLogger(__name__)

ID_ROLE = Qt.ItemDataRole.UserRole + 1
SUGGESTIONS = (
    "Explain what quantization does to a language model",
    "Write a haiku about the sea",
    "Give me a Python function that reverses a string",
)
OPEN_FILE = "__open__"


class ChatPage(QWidget):
    title = "Chat"

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName("PageRoot")
        self._library_models: list[Path] = []
        self._build()
        # the settings in force are the panel's: the session reads them at each step
        self.session = ChatSession(Store(), ChatEngine(), self._start_job, self.panel.settings, self._events())
        self._wire()
        self._init_models()
        self.refresh_conversations()
        self.new_chat()
        self.refresh_library()
        if self.store.moved_aside is not None:
            self.error.show_error(
                f"The saved chats could not be read, so a new, empty list was started. The old file "
                f"is kept as {self.store.moved_aside.name} in the data folder.",
                str(self.store.moved_aside),
            )

    # the session's state, read by the page and by tests
    @property
    def store(self) -> Store:
        return self.session.store

    @property
    def engine(self) -> ChatEngine:
        return self.session.engine

    @property
    def model_path(self) -> Path | None:
        return self.session.model_path

    @property
    def facts(self) -> ModelFacts | None:
        return self.session.facts

    @property
    def conversation_id(self) -> int | None:
        return self.session.conversation_id

    def _events(self) -> ChatEvents:
        """Where each of the session's events lands in the view."""
        return ChatEvents(
            state_changed=self._update_controls,
            status=self._set_status,
            footer=self._set_footer,
            failed=self._show_failure,
            wont_fit=self._wont_fit,
            model_selected=self._model_selected,
            settings_restored=self._settings_restored,
            message_added=self._message_added,
            reply_started=self._reply_started,
            reply_progress=self._reply_progress,
            reply_ended=self._reply_ended,
            messages_removed=self._messages_removed,
            conversation_updated=self._conversation_updated,
            edit_ended=self._edit_ended,
        )

    def _start_job(self, job: Job[Any], on: JobCallbacks) -> JobHandle:
        """How the session runs a job here: in a ctx.jobs worker, its signals back in the UI thread."""
        handle = self.ctx.jobs.start(job)
        handle.progress.connect(on.progress)
        handle.finished.connect(on.finished)
        handle.failed.connect(on.failed)
        handle.cancelled.connect(on.cancelled)
        return handle

    # ---------------------------------------------------------------------------------- layout
    def _build(self) -> None:
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)

        # conversations
        self.conv_pane = QFrame()
        self.conv_pane.setObjectName("ConversationPane")
        self.conv_pane.setFixedWidth(224)
        cp = QVBoxLayout(self.conv_pane)
        cp.setContentsMargins(12, 16, 12, 12)
        cp.setSpacing(8)
        self.new_button = QPushButton("  New chat")
        self.new_button.setIcon(theme.icon("plus"))
        self.new_button.setToolTip("New chat (Ctrl+N)")
        cp.addWidget(self.new_button)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search chats")
        self.search.setAccessibleName("Search chats")
        self.search.setClearButtonEnabled(True)
        self.search.addAction(theme.icon("search", "muted", 16), QLineEdit.ActionPosition.LeadingPosition)
        cp.addWidget(self.search)
        self.conv_model = QStandardItemModel(self)
        self.conv_list = QListView()
        self.conv_list.setModel(self.conv_model)
        self.conv_list.setAccessibleName("Conversations")
        self.conv_list.setEditTriggers(QListView.EditTrigger.NoEditTriggers)
        self.conv_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.conv_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.conv_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.conv_empty = label("No chats yet. Your conversations are saved here.", "Small", wrap=True)
        cp.addWidget(self.conv_empty)
        cp.addWidget(self.conv_list, 1)
        cp.addStretch(0)
        row.addWidget(self.conv_pane)

        # centre
        centre = QWidget()
        cc = QVBoxLayout(centre)
        cc.setContentsMargins(0, 0, 0, 0)
        cc.setSpacing(0)
        bar = QFrame()
        bar.setObjectName("ModelBar")
        br = QHBoxLayout(bar)
        br.setContentsMargins(24, 12, 16, 12)
        br.setSpacing(8)
        self.title_label = ElidedLabel(UNTITLED, "PageTitle")
        self.title_label.setMinimumWidth(80)
        br.addWidget(self.title_label, 1)
        self.model_box = QComboBox()
        self.model_box.setAccessibleName("Model")
        self.model_box.setToolTip("The model this chat uses; you can switch mid-conversation")
        self.model_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_box.setMinimumContentsLength(26)
        br.addWidget(self.model_box)
        self.panel_button = QToolButton()
        self.panel_button.setIcon(theme.icon("panel"))
        self.panel_button.setCheckable(True)
        self.panel_button.setToolTip("Model settings")
        self.panel_button.setAccessibleName("Show model settings")
        br.addWidget(self.panel_button)
        cc.addWidget(bar)

        self.transcript = Transcript()
        cc.addWidget(self.transcript, 1)

        bottom = QWidget()
        bl = QHBoxLayout(bottom)
        bl.setContentsMargins(24, 8, 24, 16)
        bl.addStretch(1)
        column = QWidget()
        column.setMaximumWidth(760)
        col = QVBoxLayout(column)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(6)
        self.error = ErrorBanner()
        col.addWidget(self.error)
        self.edit_notice = QFrame()
        en = QHBoxLayout(self.edit_notice)
        en.setContentsMargins(4, 0, 4, 0)
        en.addWidget(label("Editing a message: sending replaces it and everything after it.", "Small"), 1)
        self.cancel_edit = QPushButton("Cancel edit")
        en.addWidget(self.cancel_edit)
        self.edit_notice.hide()
        col.addWidget(self.edit_notice)
        self.composer = Composer()
        col.addWidget(self.composer)
        foot = QHBoxLayout()
        foot.setContentsMargins(4, 0, 4, 0)
        self.status = ElidedLabel("", "StatusLine")
        foot.addWidget(self.status, 1)
        self.footer = label("", "StatusLine")
        self.footer.setAlignment(Qt.AlignmentFlag.AlignRight)
        foot.addWidget(self.footer)
        col.addLayout(foot)
        bl.addWidget(column, 100)
        bl.addStretch(1)
        cc.addWidget(bottom)
        row.addWidget(centre, 1)

        # settings
        self.panel = ChatSettingsPanel()
        row.addWidget(self.panel)
        visible = bool(self.ctx.setting("chat.panel_visible", False))
        self.panel.setVisible(visible)
        self.panel_button.setChecked(visible)

        find = QAction(self)
        find.setShortcut(QKeySequence.StandardKey.Find)
        find.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)

        def focus_search() -> None:
            self.search.setFocus()
            self.search.selectAll()

        find.triggered.connect(focus_search)
        self.addAction(find)

    def _wire(self) -> None:
        self.new_button.clicked.connect(self.new_chat)
        self.search.textChanged.connect(lambda _t: self.refresh_conversations())
        self.conv_list.clicked.connect(self._conversation_clicked)
        self.conv_list.activated.connect(self._conversation_clicked)
        self.conv_list.customContextMenuRequested.connect(self._conversation_menu)
        self.composer.edit.send.connect(self.send)
        self.composer.edit.stop.connect(self.stop)
        self.composer.button.clicked.connect(lambda: self.stop() if self.composer.generating else self.send())
        self.cancel_edit.clicked.connect(self._end_edit)
        self.panel_button.toggled.connect(self._toggle_panel)
        self.panel.changed.connect(self._settings_changed)
        self.panel.reset_requested.connect(self._reset_settings)
        self.model_box.activated.connect(self._model_chosen)
        self.ctx.chat_requested.connect(self.select_model)
        self.ctx.new_chat_requested.connect(self.new_chat)
        self.ctx.library_changed.connect(self.refresh_library)
        theme.notifier().changed.connect(self._theme_changed)

    # ---------------------------------------------------------------------------------- models
    def _init_models(self) -> None:
        try:
            from quantdesk.core.hardware import llama_backend

            b = llama_backend()
            if b.gpu_offload:
                self.panel.set_gpu_support(True, f"GPU offload available ({', '.join(b.devices) or 'GPU'}).")
            else:
                self.panel.set_gpu_support(
                    False,
                    "GPU layers: this llama.cpp build is CPU-only (no GPU offload "
                    "compiled in), so every layer runs on the processor.",
                )
        except Exception as e:  # a broken llama.cpp shows up when loading; here it only disables the control
            self.panel.set_gpu_support(False, f"GPU offload unknown: {e}")
        last = self.ctx.setting("chat.last_model")
        starter = starter_model_path()
        candidate = Path(last) if last and Path(last).is_file() else starter
        self._fill_model_box()
        if candidate is not None:
            self.select_model(candidate, announce=False)
        else:
            self._set_status("No model yet: get one from Discover or open a GGUF file.")

    def _known_models(self) -> list[Path]:
        """The starter model, the Library's GGUF files, and files opened here before."""
        models: list[Path] = []
        starter = starter_model_path()
        if starter is not None:
            models.append(starter)
        models += [p for p in self._library_models if p not in models]
        for p in self.ctx.setting("chat.recent_models", []) or []:
            path = Path(p)
            if path.is_file() and path not in models:
                models.append(path)
        return models

    def refresh_library(self) -> None:
        """List the Library's models in the background (it walks folders), then refill the menu."""

        def list_gguf(report, cancel) -> list[Path]:
            from quantdesk.core import library

            return [e.path for e in library.list_models() if e.kind == "gguf"]

        handle = self.ctx.jobs.start(Job("Listing models for Chat", list_gguf))
        handle.finished.connect(self._library_listed)
        handle.failed.connect(lambda error, tb: log.warning("could not list the library: %s", error))

    def _library_listed(self, paths: list[Path]) -> None:
        if self.session.closed:
            return
        self._library_models = list(paths)
        self._fill_model_box()

    def _fill_model_box(self) -> None:
        self.model_box.blockSignals(True)
        self.model_box.clear()
        for path in self._known_models():
            self.model_box.addItem(theme.icon("model", "muted", 16), path.stem, str(path))
        self.model_box.addItem("Open a GGUF file…", OPEN_FILE)
        if self.model_path is not None:
            i = self.model_box.findData(str(self.model_path))
            if i >= 0:
                self.model_box.setCurrentIndex(i)
        self.model_box.blockSignals(False)

    def _model_chosen(self, index: int) -> None:
        data = self.model_box.itemData(index)
        if data == OPEN_FILE:
            path, _ = QFileDialog.getOpenFileName(self, "Open a model", str(Path.home()), "GGUF models (*.gguf)")
            if path:
                self.select_model(Path(path))
            else:
                self._fill_model_box()
            return
        if data:
            self.select_model(Path(data))

    def select_model(self, path: Path, announce: bool = True) -> None:
        """Use `path` for this chat (and new ones); it loads in the background when needed."""
        path = Path(path)
        try:
            self.session.select_model(path)  # the view follows in _model_selected
        except GGUFError as e:
            self.error.show_failure(e, doing="Cannot use this model")
            self._fill_model_box()
            return
        if announce:
            self._set_status(f"{path.stem} selected")
            if self.isVisible():
                self.preload()

    def _model_selected(self, facts: ModelFacts, settings: ChatSettings) -> None:
        """The session uses another model (picked here, or an opened conversation's): remember it
        among the recent files, show it in the menu, and show its settings in the panel."""
        path = facts.path
        recent = [str(path)] + [p for p in (self.ctx.setting("chat.recent_models", []) or []) if p != str(path)]
        if path != starter_model_path():
            self.ctx.set_setting("chat.recent_models", recent[:10])
        self.ctx.set_setting("chat.last_model", str(path))
        self._fill_model_box()
        self.panel.set_model(facts)
        self.panel.set_settings(settings)
        self._update_placeholder()

    def preload(self) -> None:
        """Load the selected model now so the first reply starts at once."""
        self.session.preload()

    def on_shown(self) -> None:
        if self.ctx.setting("chat.preload", True):
            QTimer.singleShot(100, self.preload)
        self.composer.edit.setFocus()

    def _wont_fit(self, message: str) -> None:
        """The model was not loaded because it cannot fit: say so and show the settings that help."""
        self.error.show_error(message)
        self.panel_button.setChecked(True)

    def _show_failure(self, error: BaseException, details: str, doing: str) -> None:
        self.error.show_failure(error, details, doing=doing)

    # ----------------------------------------------------------------------------- settings
    def _toggle_panel(self, on: bool) -> None:
        self.panel.setVisible(on)
        self.ctx.set_setting("chat.panel_visible", on)
        self._fit_panes()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_panes()

    def _fit_panes(self) -> None:
        """On a narrow window the conversation list makes room for the transcript (min 520 px)."""
        room = self.width() - (self.panel.width() if not self.panel.isHidden() else 0)
        self.conv_pane.setVisible(room - self.conv_pane.width() >= 520)

    def _settings_changed(self) -> None:
        self.session.settings_changed()

    def _settings_restored(self, settings: ChatSettings) -> None:
        """An opened conversation brings its own settings."""
        self.panel.set_settings(settings)

    def _reset_settings(self) -> None:
        if self.facts is not None:
            self.panel.set_settings(default_settings(self.facts))
            self.session.settings_changed()

    # ------------------------------------------------------------------------ conversations
    def refresh_conversations(self) -> None:
        self.conv_model.clear()
        convs = self.store.conversations(self.search.text())
        for conv in convs:
            item = QStandardItem(conv.title)
            item.setData(conv.id, ID_ROLE)
            item.setToolTip(conv.title)
            self.conv_model.appendRow(item)
            if conv.id == self.conversation_id:
                self.conv_list.setCurrentIndex(item.index())
        searching = bool(self.search.text().strip())
        self.conv_empty.setText("No chats match." if searching else "No chats yet. Your conversations are saved here.")
        self.conv_empty.setVisible(not convs)
        self.conv_list.setVisible(bool(convs))

    def _conversation_clicked(self, index: QModelIndex) -> None:
        cid = index.data(ID_ROLE)
        if cid is not None and cid != self.conversation_id:
            self.open_conversation(int(cid))

    def new_chat(self) -> None:
        self.session.new_chat()  # a reply still streaming stops, and is saved to its own conversation
        self.transcript.clear()
        self.title_label.setText(UNTITLED)
        self.conv_list.clearSelection()
        self.footer.setText("")
        self._update_placeholder()
        self.composer.edit.setFocus()

    def open_conversation(self, conversation_id: int) -> None:
        conv = self.session.open_conversation(conversation_id)  # its model and settings come with it
        if conv is None:
            return
        self.title_label.setText(conv.title)
        self.transcript.clear()
        for m in self.store.messages(conversation_id):
            w = self._add_message_widget(m.id, m.role, m.content)
            if m.role == "assistant":
                stats = dict(m.stats)
                w.set_stats(stats)
                if not m.complete and not stats:
                    w.stats.setText("interrupted: the app closed before this reply finished")
        self._update_placeholder()
        self.transcript.scroll_to_bottom()

    def _conversation_updated(self, conversation_id: int) -> None:
        """A message named the conversation, or a reply ended: its title and place in the list."""
        if conversation_id == self.conversation_id:
            conv = self.store.conversation(conversation_id)
            if conv is not None:
                self.title_label.setText(conv.title)
        self.refresh_conversations()

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        self.store.rename(conversation_id, title)
        if conversation_id == self.conversation_id:
            conv = self.store.conversation(conversation_id)
            assert conv is not None  # the open conversation is in the store
            self.title_label.setText(conv.title)
        self.refresh_conversations()

    def delete_conversation(self, conversation_id: int) -> None:
        if conversation_id == self.conversation_id:
            self.new_chat()
        self.store.delete(conversation_id)
        self.refresh_conversations()

    def export_conversation(self, conversation_id: int, path: Path) -> Path:
        """Write Markdown (.md) or JSON (.json) by the file's suffix, atomically."""
        path = Path(path)
        text = (
            self.store.export_json(conversation_id)
            if path.suffix.lower() == ".json"
            else self.store.export_markdown(conversation_id)
        )
        renames.write_text(path, text)
        return path

    def _conversation_menu(self, pos) -> None:
        index = self.conv_list.indexAt(pos)
        if not index.isValid():
            return
        cid = int(index.data(ID_ROLE))
        menu = QMenu(self)
        menu.addAction(theme.icon("edit", "text", 16), "Rename…", lambda: self._ask_rename(cid))
        menu.addAction(theme.icon("export", "text", 16), "Export as Markdown…", lambda: self._ask_export(cid, "md"))
        menu.addAction(theme.icon("export", "text", 16), "Export as JSON…", lambda: self._ask_export(cid, "json"))
        menu.addSeparator()
        menu.addAction(theme.icon("trash", "error", 16), "Delete", lambda: self._ask_delete(cid))
        menu.exec(self.conv_list.viewport().mapToGlobal(pos))

    def _ask_rename(self, cid: int) -> None:
        conv = self.store.conversation(cid)
        title, ok = QInputDialog.getText(self, "Rename chat", "Title:", text=conv.title if conv else "")
        if ok:
            self.rename_conversation(cid, title)

    def _ask_export(self, cid: int, fmt: str) -> None:
        conv = self.store.conversation(cid)
        name = "".join(ch for ch in (conv.title if conv else "chat") if ch.isalnum() or ch in " -_").strip() or "chat"
        filters = "Markdown (*.md)" if fmt == "md" else "JSON (*.json)"
        path, _ = QFileDialog.getSaveFileName(self, "Export chat", str(Path.home() / f"{name}.{fmt}"), filters)
        if path:
            if not path.lower().endswith(f".{fmt}"):
                path += f".{fmt}"
            try:
                self.export_conversation(cid, Path(path))
            except OSError as e:
                self.error.show_failure(e, str(e), doing="Could not export the chat", after="Pick another folder.")

    def _ask_delete(self, cid: int) -> None:
        conv = self.store.conversation(cid)
        answer = QMessageBox.question(
            self, "Delete chat", f"Delete “{conv.title if conv else 'this chat'}”? This cannot be undone."
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_conversation(cid)

    # ------------------------------------------------------------------------------ messages
    def _add_message_widget(self, message_id: int, role: str, text: str) -> MessageWidget:
        author = self.model_path.stem if role == "assistant" and self.model_path else ""
        w = MessageWidget(message_id, role, text, author)
        w.copy_requested.connect(self._copy_message)
        w.regenerate_requested.connect(self.regenerate)
        w.edit_requested.connect(self.edit_message)
        return self.transcript.add(w)

    def _copy_message(self, message_id: int) -> None:
        for w in self.transcript.messages:
            if w.message_id == message_id:
                copy_text(w.text)
                self._set_status("Copied")

    def _update_placeholder(self) -> None:
        if self.transcript.messages:
            self.transcript.set_placeholder(None)
            return
        if self.model_path is None:
            empty = EmptyState(
                "No model to chat with",
                "Download a model in Discover, or open a GGUF file from the model menu above.",
                action="Go to Discover",
                on_action=lambda: self.ctx.show_page("discover"),
            )
        else:
            empty = EmptyState(
                f"Chat with {self.model_path.stem}",
                "It runs on this computer: nothing you type leaves it. Type a message below; "
                "the model and its settings are in the panel at the top right.",
            )
            for text in SUGGESTIONS:
                b = QPushButton(text)
                b.setCursor(Qt.CursorShape.PointingHandCursor)
                b.setToolTip("Send this message")
                b.clicked.connect(lambda _checked=False, t=text: self.send(t))
                row = QHBoxLayout()
                row.addStretch(1)
                row.addWidget(b)
                row.addStretch(1)
                empty.extra.addLayout(row)
            empty.extra.insertSpacing(0, 12)
        empty.setMinimumHeight(320)
        self.transcript.set_placeholder(empty)

    def _widget(self, conversation_id: int, message_id: int | None) -> MessageWidget | None:
        """The widget showing `message_id`, when its conversation is the one on screen."""
        if message_id is None or conversation_id != self.conversation_id:
            return None
        for w in self.transcript.messages:
            if w.message_id == message_id:
                return w
        return None

    def _message_added(self, conversation_id: int, message: StoredMessage) -> None:
        if conversation_id == self.conversation_id:
            self._add_message_widget(message.id, message.role, message.content)

    def _messages_removed(self, conversation_id: int, message_id: int) -> None:
        if conversation_id == self.conversation_id:
            self.transcript.remove_from(message_id)

    def _reply_started(self, conversation_id: int, message_id: int) -> None:
        """The empty reply, shown at once (its actions wait until it has ended)."""
        if conversation_id == self.conversation_id:
            w = self._add_message_widget(message_id, "assistant", "")
            w.set_actions_enabled(False)
            self.transcript.scroll_to_bottom()

    def _reply_progress(self, conversation_id: int, message_id: int, text: str, tokens: int) -> None:
        w = self._widget(conversation_id, message_id)
        if w is not None:  # a reply left behind by a new chat goes on in the store only
            w.set_text(text)
            self.footer.setText(f"{tokens} tokens so far")

    def _reply_ended(self, conversation_id: int, message_id: int, text: str, stats: dict[str, Any]) -> None:
        w = self._widget(conversation_id, message_id)
        if w is not None:
            w.set_text(text if text else "(no reply)")
            w.set_stats(stats)
            w.set_actions_enabled(True)

    def edit_message(self, message_id: int) -> None:
        text = self.session.start_edit(message_id)
        if text is not None:
            self.composer.edit.setPlainText(text)
            self.composer.edit.setFocus()
            self.edit_notice.show()

    def _end_edit(self) -> None:
        """Cancel edit: the session forgets the edit, then _edit_ended clears the composer."""
        self.session.cancel_edit()
        self.edit_notice.hide()

    def _edit_ended(self) -> None:
        self.composer.edit.clear()
        self.edit_notice.hide()

    def send(self, text: str | None = None) -> bool:
        """Send the composer's text (or `text`); returns False when there is nothing to do."""
        text = (self.composer.edit.toPlainText() if text is None else text).strip()
        if not self.session.can_send(text):
            return False
        self.error.hide()
        self.composer.edit.clear()
        return self.session.send(text)

    def regenerate(self, message_id: int) -> None:
        """Replace the reply `message_id` (and anything after it) with a new one."""
        self.session.regenerate(message_id)

    def stop(self) -> None:
        """Stop the reply (within a token) or the loading that precedes it."""
        self.session.stop()

    def busy(self) -> bool:
        """Loading or replying (tests and the window wait on this)."""
        return self.session.busy

    # --------------------------------------------------------------------------------- misc
    def _theme_changed(self) -> None:
        """Icons and the messages' own colours are painted for one look: repaint them for the new one."""
        self.new_button.setIcon(theme.icon("plus"))
        self.panel_button.setIcon(theme.icon("panel"))
        self.composer.set_generating(self.composer.generating)
        self._fill_model_box()
        if self.conversation_id is not None and self.session.idle:
            self.open_conversation(self.conversation_id)

    def _set_status(self, text: str) -> None:
        self.status.setText(text or self.session.ready_text())

    def _set_footer(self, text: str) -> None:
        self.footer.setText(text)

    def _update_controls(self) -> None:
        replying = self.session.replying
        self.composer.set_generating(replying)
        self.model_box.setEnabled(self.session.idle)
        streaming = self._widget(self.session.reply_conversation, self.session.reply_id)
        for w in self.transcript.messages:
            if w is not streaming:
                w.set_actions_enabled(not replying)

    def shutdown(self) -> None:
        """Window closing: stop, wait for the worker, free the model, close the database."""
        self.session.shutdown()
