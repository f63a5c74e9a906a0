"""Chat in the window with the real starter model: a turn, Stop, regenerate, edit, and the list."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QElapsedTimer, Qt, QTimer

from quantdesk.core import settings
from quantdesk.core.chat.session import ChatState
from quantdesk.ui.app import make_application
from quantdesk.ui.main_window import MainWindow


@pytest.fixture
def window(qtbot):
    make_application([])
    settings.set_value("chat.preload", False)
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1100, 700)
    w.show()
    qtbot.waitExposed(w)
    page = w.page("chat")
    s = page.panel.settings()
    s.temperature, s.max_tokens, s.threads, s.context_length, s.seed = 0.0, 8, 1, 1024, 0
    page.panel.set_settings(s)
    return w


def wait_idle(qtbot, page, timeout=30000):
    qtbot.waitUntil(lambda: not page.busy(), timeout=timeout)


def test_chat_turn_streams_into_the_view_and_is_saved(qtbot, window):
    page = window.page("chat")
    assert window.current_key() == "chat"
    assert page.model_path is not None and page.model_path.name.startswith("SmolLM2"), "starter model preselected"
    page.composer.edit.setFocus()
    qtbot.keyClicks(page.composer.edit, "What is the capital of France?")
    # the event loop must keep turning while the model loads and the reply streams
    gaps, clock = [], QElapsedTimer()
    clock.start()
    ticker = QTimer()
    ticker.timeout.connect(lambda: gaps.append(clock.restart()))
    ticker.start(10)
    qtbot.keyClick(page.composer.edit, Qt.Key.Key_Return)
    assert page.busy() and page.composer.generating
    wait_idle(qtbot, page)
    ticker.stop()
    reply = page.transcript.messages[-1]
    assert reply.role == "assistant" and reply.text.strip()
    assert "8 tokens" in reply.stats.text() and "tok/s" in reply.stats.text()
    assert max(gaps) < 1000, f"the window froze for {max(gaps)} ms"
    conv = page.store.conversations()[0]
    assert conv.title == "What is the capital of France?"
    saved = page.store.messages(conv.id)
    assert [m.role for m in saved] == ["user", "assistant"] and saved[1].content == reply.text
    assert saved[1].complete and saved[1].stats["tokens"] == 8
    assert page.conv_model.rowCount() == 1


def test_stop_regenerate_and_edit(qtbot, window):
    page = window.page("chat")
    s = page.panel.settings()
    s.max_tokens = 400
    page.panel.set_settings(s)
    assert page.send("Tell me a long story about a brave knight.")
    qtbot.waitUntil(lambda: page.session.stream is not None and page.session.stream.tokens >= 2, timeout=30000)
    qtbot.keyClick(page.composer.edit, Qt.Key.Key_Escape)
    wait_idle(qtbot, page)
    cid = page.conversation_id
    first = page.store.messages(cid)[-1]
    assert first.stats["finish_reason"] == "stopped" and first.stats["tokens"] < 50
    assert "stopped" in page.transcript.messages[-1].stats.text()

    s.max_tokens = 6
    page.panel.set_settings(s)
    page.regenerate(first.id)
    wait_idle(qtbot, page)
    msgs = page.store.messages(cid)
    assert len(msgs) == 2 and msgs[1].stats["finish_reason"] == "length"
    assert len(page.transcript.messages) == 2

    page.edit_message(msgs[0].id)
    assert page.composer.edit.toPlainText().startswith("Tell me a long story") and page.edit_notice.isVisibleTo(page)
    page.composer.edit.setPlainText("Say hello.")
    qtbot.keyClick(page.composer.edit, Qt.Key.Key_Return)
    wait_idle(qtbot, page)
    msgs = page.store.messages(cid)
    assert [m.role for m in msgs] == ["user", "assistant"] and msgs[0].content == "Say hello."
    assert [w.text for w in page.transcript.messages][0] == "Say hello."


def test_conversation_list_rename_search_export_delete(qtbot, window, tmp_path):
    page = window.page("chat")
    store = page.store
    a = store.create_conversation(page.model_path, title="Bread recipes")
    store.add_message(a, "user", "How long do I knead?")
    store.add_message(a, "assistant", "About **ten** minutes.\n\n```python\nprint('knead')\n```")
    b = store.create_conversation(page.model_path, title="Cats")
    page.refresh_conversations()
    assert page.conv_model.rowCount() == 2
    page.open_conversation(a)
    assert [w.role for w in page.transcript.messages] == ["user", "assistant"]
    assert "ten" in page.transcript.messages[1].view.toPlainText()
    assert "**" not in page.transcript.messages[1].view.toPlainText(), "Markdown is rendered"
    cut = store.create_conversation(page.model_path, title="Cut short")
    store.add_message(cut, "user", "Tell me a story")
    store.add_message(cut, "assistant", "Once upon a", complete=False)  # what a killed app leaves
    page.open_conversation(cut)
    assert "interrupted" in page.transcript.messages[-1].stats.text()
    page.delete_conversation(cut)
    page.open_conversation(a)
    page.search.setText("knead")
    assert page.conv_model.rowCount() == 1
    page.search.clear()
    page.rename_conversation(a, "Kneading")
    assert page.title_label.full_text() == "Kneading"
    md = page.export_conversation(a, tmp_path / "chat.md").read_text(encoding="utf-8")
    assert md.startswith("# Kneading") and "print('knead')" in md
    assert '"title": "Kneading"' in page.export_conversation(a, tmp_path / "chat.json").read_text(encoding="utf-8")
    page.delete_conversation(a)
    assert store.conversation(a) is None and page.conversation_id is None and not page.transcript.messages
    assert page.conv_model.rowCount() == 1 and store.conversation(b) is not None


def test_ctrl_n_starts_a_new_chat(qtbot, window):
    page = window.page("chat")
    cid = page.store.create_conversation(page.model_path)
    page.store.add_message(cid, "user", "hello")
    page.open_conversation(cid)
    window.activateWindow()
    qtbot.waitUntil(lambda: window.isActiveWindow(), timeout=3000)
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert page.conversation_id is None and not page.transcript.messages
    assert page.composer.edit.hasFocus()
    qtbot.keyClick(page.composer.edit, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert page.search.hasFocus()


def test_settings_are_kept_per_model_file(qtbot, window):
    page = window.page("chat")
    page.panel.temperature.setValue(0.35)
    page.panel.system_prompt.setPlainText("Answer like a pirate.")
    saved = page.store.model_settings(page.model_path)
    assert saved["temperature"] == 0.35 and saved["system_prompt"] == "Answer like a pirate."
    second = MainWindow()
    qtbot.addWidget(second)
    again = second.page("chat").panel.settings()
    assert again.temperature == 0.35 and again.system_prompt == "Answer like a pirate."
    assert not second.page("chat").panel.gpu_layers.isEnabled() or second.page("chat").panel.gpu_note.text()


def test_new_chat_while_a_reply_streams_keeps_it_saved(qtbot, window):
    from quantdesk.ui.app import crash_reporter

    page = window.page("chat")
    s = page.panel.settings()
    s.max_tokens = 300
    page.panel.set_settings(s)
    errors = len(crash_reporter().shown)
    assert page.send("Tell me a long story about a dragon.")
    first = page.conversation_id
    qtbot.waitUntil(lambda: page.session.stream is not None and page.session.stream.tokens >= 2, timeout=30000)
    page.new_chat()
    wait_idle(qtbot, page)
    assert page.conversation_id is None and not page.transcript.messages
    saved = page.store.messages(first)
    assert saved[-1].role == "assistant" and saved[-1].content and saved[-1].stats["finish_reason"] == "stopped"
    assert len(crash_reporter().shown) == errors


def test_message_sent_while_the_model_preloads_is_answered(qtbot, window):
    page = window.page("chat")
    page.preload()
    assert page.session.state is ChatState.LOADING and not page.composer.generating, "preloading is not a reply"
    assert page.send("Hi!")
    assert page.composer.generating
    wait_idle(qtbot, page)
    msgs = page.store.messages(page.conversation_id)
    assert [m.role for m in msgs] == ["user", "assistant"] and msgs[1].content and msgs[1].complete


def test_shift_enter_is_a_new_line_not_a_send(qtbot, window):
    page = window.page("chat")
    edit = page.composer.edit
    edit.setFocus()
    qtbot.keyClicks(edit, "first line")
    qtbot.keyClick(edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(edit, "second line")
    assert edit.toPlainText() == "first line\nsecond line"
    assert not page.busy() and page.conversation_id is None
    qtbot.keyClick(edit, Qt.Key.Key_Escape)  # nothing to stop: nothing happens
    assert edit.toPlainText() == "first line\nsecond line"
