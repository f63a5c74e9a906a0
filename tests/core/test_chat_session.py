"""The chat session's load → reply → save state machine, without Qt, with the real starter model.

Jobs run in the test's own thread when the test says so (`Jobs.run_next`), as a worker would run
them later: so a message can be sent while the model loads, and a reply can be stopped, or the
chat switched, from its own progress reports while it streams.
"""

from __future__ import annotations

import shutil
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from quantdesk.core import fit
from quantdesk.core.chat.engine import ChatEngine, ChatError, ChatSettings
from quantdesk.core.chat.session import ChatEvents, ChatSession, ChatState, JobCallbacks
from quantdesk.core.chat.store import Store, StoredMessage
from quantdesk.core.fit import Machine
from quantdesk.core.jobs import Cancelled, Job

GREEDY = ChatSettings(temperature=0.0, seed=0, max_tokens=8, context_length=512, threads=1)


class Jobs:
    """A job runner without threads: start() queues the job, run_next() runs it here and reports its end."""

    def __init__(self) -> None:
        self.queue: list[tuple[Job[Any], JobCallbacks]] = []
        self.started: list[str] = []

    def start(self, job: Job[Any], on: JobCallbacks) -> Jobs:
        self.queue.append((job, on))
        self.started.append(job.title)
        return self

    def wait(self, timeout: float | None = None) -> bool:
        return True  # nothing runs behind the test's back

    def run_next(self) -> None:
        job, on = self.queue.pop(0)
        try:
            result = job.run(on.progress)
        except Cancelled:
            on.cancelled()
        except BaseException as e:
            on.failed(e, traceback.format_exc())
        else:
            on.finished(result)

    def run_all(self) -> None:
        while self.queue:
            self.run_next()


class Chat:
    """A session, its job runner, the settings it reads, and a record of every event it sent."""

    def __init__(self, model: Path, settings: ChatSettings = GREEDY) -> None:
        self.jobs = Jobs()
        self.settings = replace(settings)
        self.seen: list[tuple[str, tuple[Any, ...]]] = []
        self.on_progress: list[Any] = []  # called with (text, tokens) on each reply_progress
        names = [name for name in ChatEvents.__dataclass_fields__]
        events = ChatEvents(**{name: self._recorder(name) for name in names})
        self.session = ChatSession(Store(), ChatEngine(), self.jobs.start, lambda: self.settings, events)
        self.session.select_model(model)

    def _recorder(self, name: str):
        def record(*args: Any) -> None:
            self.seen.append((name, args))
            if name == "reply_progress":
                for hook in list(self.on_progress):
                    hook(*args)

        return record

    def events(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.seen if n == name]

    def messages(self, conversation_id: int | None = None) -> list[StoredMessage]:
        cid = self.session.conversation_id if conversation_id is None else conversation_id
        assert cid is not None
        return self.session.store.messages(cid)


@pytest.fixture
def chat(starter_model: Path):
    c = Chat(starter_model)
    yield c
    c.session.shutdown()


def test_load_then_reply_saved_as_it_streams(chat: Chat) -> None:
    session = chat.session
    assert session.state is ChatState.READY and not session.engine.loaded
    session.preload()
    assert session.state is ChatState.LOADING and not session.replying, "preloading is not a reply"
    chat.jobs.run_next()
    assert session.state is ChatState.READY and session.engine.loaded
    assert chat.events("status")[-1][0].startswith(f"{session.model_path.stem} ready")

    chat.settings.max_tokens = 24
    saved_while_streaming: list[StoredMessage] = []
    chat.on_progress.append(lambda cid, mid, text, tokens: saved_while_streaming.append(chat.messages(cid)[-1]))
    assert session.send("Tell me a long story about a brave knight.")
    assert session.state is ChatState.REPLYING, "loaded already: the reply starts at once"
    assert chat.jobs.started == [f"Loading {session.model_path.name}", "Generating a reply"]
    cid = session.conversation_id
    assert cid is not None and session.store.conversation(cid).title == "Tell me a long story about a brave knight."
    chat.jobs.run_all()

    final = chat.messages()
    assert [m.role for m in final] == ["user", "assistant"]
    reply = final[1]
    assert reply.complete and reply.stats["finish_reason"] == "length" and reply.content.strip()
    partial = [m for m in saved_while_streaming if m.content]
    assert partial and not partial[-1].complete, "the growing reply is saved before it ends"
    assert all(reply.content.startswith(m.content) for m in partial)
    assert chat.events("reply_ended") == [(cid, reply.id, reply.content, reply.stats)]
    assert session.state is ChatState.READY and session.reply_id is None


def test_message_sent_while_loading_is_answered(chat: Chat) -> None:
    session = chat.session
    session.preload()
    assert session.send("Hi!")
    assert session.state is ChatState.LOADING and session.pending and session.replying
    waiting = chat.messages()
    assert [m.role for m in waiting] == ["user", "assistant"] and not waiting[1].complete and not waiting[1].content
    assert not session.send("Another one"), "one reply at a time"
    chat.jobs.run_next()  # the load ends: the waiting reply starts
    assert session.state is ChatState.REPLYING and not session.pending
    chat.jobs.run_all()
    msgs = chat.messages()
    assert [m.role for m in msgs] == ["user", "assistant"] and msgs[1].complete and msgs[1].content
    assert msgs[1].id == waiting[1].id, "the reply fills the row that waited"
    assert chat.jobs.started.count("Generating a reply") == 1


def test_stop_keeps_the_partial_reply(chat: Chat) -> None:
    session = chat.session
    chat.settings.max_tokens = 400

    def stop_at_two(cid: int, mid: int, text: str, tokens: int) -> None:
        if tokens >= 2 and session.state is ChatState.REPLYING:
            session.stop()
            assert session.state is ChatState.STOPPING and session.replying

    chat.on_progress.append(stop_at_two)
    assert session.send("Tell me a long story about a brave knight.")
    chat.jobs.run_all()
    reply = chat.messages()[-1]
    assert reply.role == "assistant" and reply.complete and reply.content
    assert reply.stats["finish_reason"] == "stopped" and reply.stats["tokens"] < 50
    assert chat.events("status")[-1][0].startswith("Stopped. ")
    assert session.state is ChatState.READY


def test_stop_while_the_model_loads_for_a_reply_abandons_it(chat: Chat) -> None:
    session = chat.session
    assert session.send("Hi!")
    assert session.state is ChatState.LOADING
    session.stop()
    assert session.state is ChatState.STOPPING
    chat.jobs.run_all()
    assert [m.role for m in chat.messages()] == ["user"], "the empty reply is removed, the message stays"
    assert chat.events("footer")[-1] == ("Stopped before the model finished loading.",)
    assert chat.events("status")[-1] == ("Loading cancelled",)
    assert session.state is ChatState.READY and not session.replying and not session.engine.loaded


def test_a_preload_is_not_stopped(chat: Chat) -> None:
    chat.session.preload()
    chat.session.stop()  # nothing waits for this load: Stop is for replies
    assert chat.session.state is ChatState.LOADING
    chat.jobs.run_all()
    assert chat.session.engine.loaded


def test_failed_reply_keeps_the_conversation(chat: Chat) -> None:
    session = chat.session
    chat.settings.context_length = 256
    assert session.send("word " * 2000)  # far longer than the context: llama.cpp refuses it
    chat.jobs.run_all()
    (error, details, doing), *_ = chat.events("failed")
    assert isinstance(error, ChatError) and "context" in str(error) and doing == "The reply failed"
    cid = session.conversation_id
    assert cid is not None and session.store.conversation(cid) is not None
    assert [m.role for m in chat.messages()] == ["user"], "no empty reply is left behind"
    assert chat.events("messages_removed")[-1][0] == cid
    assert session.state is ChatState.READY

    assert session.send("Hi!")  # the conversation goes on: the long message is left out to fit
    chat.jobs.run_all()
    msgs = chat.messages()
    assert [m.role for m in msgs] == ["user", "user", "assistant"] and msgs[2].content
    assert msgs[2].stats["dropped_messages"] == 1


def test_load_failure_abandons_the_reply(chat: Chat, tmp_path: Path, starter_model: Path) -> None:
    session = chat.session
    copy = tmp_path / "copy.gguf"
    shutil.copyfile(starter_model, copy)
    session.select_model(copy)
    copy.write_bytes(copy.read_bytes()[:1000])  # damaged after it was picked
    assert session.send("Hi!")
    chat.jobs.run_all()
    (error, _details, doing), *_ = chat.events("failed")
    assert isinstance(error, ChatError) and doing == "Could not load the model"
    assert [m.role for m in chat.messages()] == ["user"]
    assert chat.events("footer")[-1] == ("The model did not load, so there is no reply.",)
    assert session.state is ChatState.READY


@pytest.mark.parametrize("switch", ["new chat", "open another"])
def test_switching_chats_mid_reply_saves_to_the_right_one(chat: Chat, switch: str) -> None:
    session = chat.session
    assert session.send("Hi!")
    chat.jobs.run_all()
    other = session.conversation_id
    assert other is not None
    before = chat.messages(other)

    session.new_chat()
    chat.settings.max_tokens = 300
    switched: list[int | None] = []

    def leave(cid: int, mid: int, text: str, tokens: int) -> None:
        if tokens >= 2 and not switched:
            if switch == "new chat":
                session.new_chat()
            else:
                session.open_conversation(other)
            switched.append(session.conversation_id)
            assert session.state is ChatState.STOPPING, "leaving a chat stops its reply"

    chat.on_progress.append(leave)
    assert session.send("Tell me a long story about a dragon.")
    streaming = session.conversation_id
    chat.jobs.run_all()
    assert switched == [None if switch == "new chat" else other]
    assert session.conversation_id == switched[0]
    saved = chat.messages(streaming)
    assert [m.role for m in saved] == ["user", "assistant"]
    assert saved[1].content and saved[1].complete and saved[1].stats["finish_reason"] == "stopped"
    assert chat.messages(other) == before, "the other conversation is untouched"
    assert chat.events("reply_ended")[-1][:2] == (streaming, saved[1].id)


def test_regenerate_and_edit(chat: Chat) -> None:
    session = chat.session
    assert session.send("Tell me a long story about a brave knight.")
    chat.jobs.run_all()
    first = chat.messages()
    session.regenerate(first[1].id)
    assert session.start_edit(first[0].id) is None, "no editing while a reply is on its way"
    chat.jobs.run_all()
    again = chat.messages()
    assert [m.role for m in again] == ["user", "assistant"] and again[1].complete
    assert chat.events("messages_removed") == [(session.conversation_id, first[1].id)]
    assert len(chat.events("reply_started")) == 2, "the old reply went, a new one came"
    assert again[1].content == first[1].content, "greedy: the same reply again"

    assert session.start_edit(again[0].id) == "Tell me a long story about a brave knight."
    assert session.send("Say hello.")
    assert chat.events("edit_ended"), "the edit is done once sent"
    chat.jobs.run_all()
    edited = chat.messages()
    assert [(m.role, m.content) for m in edited][0] == ("user", "Say hello.") and len(edited) == 2
    assert session.editing_id is None

    assert session.start_edit(edited[0].id) is not None
    session.new_chat()  # a new chat gives the edit up
    assert session.editing_id is None and len(chat.events("edit_ended")) == 2


def test_a_changed_load_setting_reloads_with_the_next_message(chat: Chat) -> None:
    session = chat.session
    session.preload()
    chat.jobs.run_all()
    chat.settings.temperature = 0.5  # shapes the reply only
    session.settings_changed()
    assert not any("reloads" in s for (s,) in chat.events("status"))
    chat.settings.context_length = 1024
    session.settings_changed()
    assert chat.events("status")[-1] == ("Settings changed: the model reloads with the next message",)
    assert session.store.model_settings(session.model_path)["context_length"] == 1024
    assert session.send("Hi!")
    assert session.state is ChatState.LOADING and session.pending
    chat.jobs.run_all()
    assert session.engine.context_size() == 1024 and chat.messages()[-1].content


def test_a_model_that_cannot_fit_is_not_loaded(chat: Chat, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = Machine(ram_available_bytes=1_000_000, ram_total_bytes=2_000_000)
    monkeypatch.setattr(fit.Machine, "now", classmethod(lambda cls: tiny))
    session = chat.session
    assert session.send("Hi!")
    assert chat.events("wont_fit") and "will not fit" in chat.events("wont_fit")[0][0]
    assert chat.jobs.queue == [] and [m.role for m in chat.messages()] == ["user"]
    assert chat.events("footer")[-1] == ("The model was not loaded.",)
    assert session.state is ChatState.READY and not session.replying


def test_shutdown_keeps_a_streaming_reply(chat: Chat) -> None:
    session = chat.session
    chat.settings.max_tokens = 24
    assert session.send("Tell me a long story about a brave knight.")
    chat.jobs.run_next()  # the load
    job, on = chat.jobs.queue.pop(0)
    job.run(lambda p: None)  # the worker streamed the reply; its end is still on its way to the session
    store = session.store
    rid = session.reply_id
    session.shutdown()
    on.finished(None)  # arrives after the close: ignored
    assert session.closed and not session.engine.loaded
    reopened = Store(store.path)
    saved = next(m for m in reopened.messages(session.conversation_id) if m.id == rid)
    assert saved.complete and saved.content and saved.stats == {"finish_reason": "stopped"}
    reopened.close()
