"""The pieces of the chat view: a message, the transcript that holds them, and the composer."""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QFontMetrics, QGuiApplication, QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from quantdesk.core.units import human_duration
from quantdesk.ui import theme
from quantdesk.ui.chat import markdown
from quantdesk.ui.widgets import label

READABLE_WIDTH = 720  # px: about 75 characters of body text


def stats_line(stats: dict) -> str:
    """'42 tokens · 61.3 tok/s · 0.31 s to first token'"""
    if not stats or not stats.get("tokens"):
        return ""
    parts = [f"{int(stats['tokens'])} tokens"]
    if stats.get("tokens_per_second"):
        parts.append(f"{stats['tokens_per_second']:.1f} tok/s")
    ttft = stats.get("time_to_first_token_s")
    if ttft:
        parts.append(f"{ttft:.2f} s to first token" if ttft < 10 else f"{human_duration(ttft)} to first token")
    if stats.get("finish_reason") == "stopped":
        parts.append("stopped")
    elif stats.get("finish_reason") == "length":
        parts.append("hit the token limit")
    if stats.get("dropped_messages"):
        parts.append(f"{stats['dropped_messages']} oldest messages left out to fit the context")
    return " · ".join(parts)


class MessageText(QTextBrowser):
    """Rich text that is exactly as tall as its content (the transcript scrolls, not the message)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setOpenExternalLinks(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().setDocumentMargin(0)
        self.viewport().setAutoFillBackground(False)
        self.setStyleSheet("QTextBrowser { background: transparent; border: none; padding: 0; }")
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextBrowserInteraction | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self._text = ""

    def set_markdown(self, text: str) -> None:
        if text == self._text:
            return
        self._text = text
        markdown.render_into(self.document(), text)
        self._fit()

    def set_plain(self, text: str) -> None:
        self._text = text
        self.setPlainText(text)
        self._fit()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        doc = self.document()
        doc.setTextWidth(max(50, self.viewport().width()))
        height = math.ceil(doc.size().height()) + 2
        if height != self.height():
            self.setFixedHeight(height)


class MessageWidget(QFrame):
    """One message: the text, and under it the stats and actions (copy, regenerate, edit)."""

    copy_requested = Signal(int)
    regenerate_requested = Signal(int)
    edit_requested = Signal(int)

    def __init__(self, message_id: int, role: str, text: str = "", author: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.message_id = message_id
        self.role = role
        self.text = text
        main = QVBoxLayout(self)
        main.setContentsMargins(0, 0, 0, 0)
        main.setSpacing(2)
        outer = QHBoxLayout()
        outer.setContentsMargins(0, 0, 0, 0)
        main.addLayout(outer)
        self.bubble = QFrame()
        col = QVBoxLayout(self.bubble)
        col.setSpacing(4)
        c = theme.colors()
        if role == "user":
            self.bubble.setObjectName("UserBubble")
            self.bubble.setStyleSheet(f"#UserBubble {{ background: {c['user_bubble']}; border-radius: 12px; }}")
            col.setContentsMargins(14, 10, 14, 10)
            outer.addStretch(1)
            outer.addWidget(self.bubble, 0)
        else:
            col.setContentsMargins(0, 4, 0, 4)
            outer.addWidget(self.bubble, 1)
            if author:
                who = label(author, "Small")
                col.addWidget(who)
        self.view = MessageText()
        self.view.setAccessibleName("Your message" if role == "user" else "Reply")
        col.addWidget(self.view)

        foot = QHBoxLayout()
        foot.setSpacing(2)
        self.stats = label("", "Small", wrap=True)
        if role == "user":
            foot.addStretch(1)
        self.copy_button = self._action("copy", "Copy", self._copy)
        foot.addWidget(self.copy_button)
        self.regenerate_button: QToolButton | None = None
        self.edit_button: QToolButton | None = None
        if role == "assistant":
            self.regenerate_button = self._action("regenerate", "Regenerate", self._regenerate)
            foot.addWidget(self.regenerate_button)
            foot.addSpacing(8)
            foot.addWidget(self.stats, 1)
        else:
            self.edit_button = self._action("edit", "Edit and continue from here", self._edit)
            foot.addWidget(self.edit_button)
        (main if role == "user" else col).addLayout(foot)
        self.set_text(text)

    # bound methods, not lambdas: a lambda holding `self` keeps the widget alive past its window
    def _copy(self) -> None:
        self.copy_requested.emit(self.message_id)

    def _regenerate(self) -> None:
        self.regenerate_requested.emit(self.message_id)

    def _edit(self) -> None:
        self.edit_requested.emit(self.message_id)

    def _action(self, icon: str, tip: str, slot) -> QToolButton:
        b = QToolButton()
        b.setIcon(theme.icon(icon, "muted", 16))
        b.setToolTip(tip)
        b.setAccessibleName(tip)
        b.setProperty("flat", True)
        b.setCursor(Qt.CursorShape.PointingHandCursor)
        b.clicked.connect(slot)
        return b

    def set_text(self, text: str) -> None:
        self.text = text
        if self.role == "user":
            self.view.set_plain(text)
            # a short message gets a snug bubble rather than a full-width one
            fm = QFontMetrics(self.view.font())
            widest = max((fm.horizontalAdvance(line) for line in text.splitlines() or [""]), default=0)
            self.bubble.setMaximumWidth(min(int(READABLE_WIDTH * 0.85), widest + 40))
        else:
            self.view.set_markdown(text or "…")

    def set_stats(self, stats: dict) -> None:
        self.stats.setText(stats_line(stats))

    def set_actions_enabled(self, enabled: bool) -> None:
        for b in (self.regenerate_button, self.edit_button):
            if b is not None:
                b.setEnabled(enabled)


class Transcript(QScrollArea):
    """The messages in a centred column of readable width; follows the bottom while streaming."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Transcript")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        inner = QWidget()
        inner.setObjectName("TranscriptInner")
        row = QHBoxLayout(inner)
        row.setContentsMargins(24, 24, 24, 24)
        row.addStretch(1)
        self.column = QWidget()
        self.column.setMaximumWidth(READABLE_WIDTH)
        self.column.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.layout_ = QVBoxLayout(self.column)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.setSpacing(16)
        self.layout_.addStretch(1)
        row.addWidget(self.column, 100)
        row.addStretch(1)
        self.setWidget(inner)
        self._follow = True
        self.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        self.verticalScrollBar().rangeChanged.connect(self._on_range)
        self.messages: list[MessageWidget] = []
        self.placeholder: QWidget | None = None

    def _on_scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._follow = value >= bar.maximum() - 24

    def _on_range(self, _min: int, maximum: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(maximum)

    def scroll_to_bottom(self) -> None:
        self._follow = True
        QTimer.singleShot(0, lambda: self.verticalScrollBar().setValue(self.verticalScrollBar().maximum()))

    def clear(self) -> None:
        for m in self.messages:
            m.setParent(None)
            m.deleteLater()
        self.messages = []
        self.set_placeholder(None)

    def set_placeholder(self, widget: QWidget | None) -> None:
        if self.placeholder is not None:
            self.placeholder.setParent(None)
            self.placeholder.deleteLater()
        self.placeholder = widget
        if widget is not None:
            self.layout_.insertWidget(0, widget)

    def add(self, message: MessageWidget) -> MessageWidget:
        self.set_placeholder(None)
        self.layout_.insertWidget(self.layout_.count() - 1, message)
        self.messages.append(message)
        return message

    def remove_from(self, message_id: int) -> None:
        keep = []
        for m in self.messages:
            if m.message_id >= message_id:
                m.setParent(None)
                m.deleteLater()
            else:
                keep.append(m)
        self.messages = keep


class ComposerEdit(QPlainTextEdit):
    """Enter sends, Shift+Enter is a new line, Esc stops; grows with its text up to a limit."""

    send = Signal()
    stop = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("ComposerEdit")
        self.setPlaceholderText("Type a message…")
        self.setToolTip("Enter sends · Shift+Enter starts a new line · Esc stops the reply")
        self.setAccessibleName("Message")
        self.setTabChangesFocus(True)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.document().setDocumentMargin(6)
        self.textChanged.connect(self._grow)
        self._grow()

    def keyPressEvent(self, e: QKeyEvent) -> None:
        if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (e.modifiers() & Qt.KeyboardModifier.ShiftModifier):
            self.send.emit()
            return
        if e.key() == Qt.Key.Key_Escape:
            self.stop.emit()
            return
        super().keyPressEvent(e)

    def _grow(self) -> None:
        fm = QFontMetrics(self.font())
        lines = max(1, int(self.document().size().height()))
        self.setVerticalScrollBarPolicy(
            Qt.ScrollBarPolicy.ScrollBarAsNeeded if lines > 8 else Qt.ScrollBarPolicy.ScrollBarAlwaysOff
        )
        self.setFixedHeight(min(8, lines) * fm.lineSpacing() + 20)


class Composer(QFrame):
    """The message box with its Send / Stop button."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Composer")
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 6, 6, 6)
        row.setSpacing(8)
        self.edit = ComposerEdit()
        row.addWidget(self.edit, 1)
        self.button = QPushButton()
        self.button.setFixedSize(36, 36)
        self.button.setCursor(Qt.CursorShape.PointingHandCursor)
        row.addWidget(self.button, 0, Qt.AlignmentFlag.AlignBottom)
        self.edit.installEventFilter(self)
        self.set_generating(False)

    def set_generating(self, on: bool) -> None:
        """While a reply streams the button is Stop (Esc); otherwise Send (Enter)."""
        self.generating = on
        c = theme.colors()
        if on:
            self.button.setIcon(theme.icon("stop", "text", 18))
            self.button.setToolTip("Stop (Esc)")
            self.button.setAccessibleName("Stop")
            self.button.setStyleSheet("QPushButton { border-radius: 18px; }")
        else:
            self.button.setIcon(theme.icon("send", "accent_text", 18))
            self.button.setToolTip("Send (Enter)")
            self.button.setAccessibleName("Send")
            self.button.setStyleSheet(
                f"QPushButton {{ border-radius: 18px; background: {c['accent']}; border-color: {c['accent']}; }}"
                f"QPushButton:disabled {{ background: {c['border']}; border-color: {c['border']}; }}"
            )

    def eventFilter(self, obj, event) -> bool:
        if obj is self.edit and event.type() in (QEvent.Type.FocusIn, QEvent.Type.FocusOut):
            self.setProperty("focused", event.type() == QEvent.Type.FocusIn)
            self.style().unpolish(self)
            self.style().polish(self)
        return False


def copy_text(text: str) -> None:
    QGuiApplication.clipboard().setText(text)
