"""One chat session: load the model, reply, save, in that order, without Qt and without threads.

The window's Chat page used to keep this state machine in its widget; here it is plain Python, so
it can be tested with the real model and no window. The session owns the ChatEngine and the
conversation Store and decides everything about a turn:

- its state (`ChatState`): no model, ready, loading, replying, stopping;
- a message sent while the model still loads: its reply waits (`pending`) and starts when the
  load ends, or is abandoned if the load fails or is stopped;
- which conversation and message a streaming reply belongs to (`reply_conversation`,
  `reply_id`), so a new chat or another chat opened mid-reply still saves it in the right place;
- saving the reply as it streams (every few tokens, by the store's streaming writer) and when it
  ends, stopped, finished or failed;
- stop, regenerate and edit-and-continue, and whether a changed setting needs a reload.

It never runs a job itself: `start_job(job, callbacks)` is injected. The window passes one that
runs the job with ctx.jobs in a worker and relays the handle's signals to `callbacks` in the UI
thread; a test passes one that runs the job in its own thread when it says so. Whatever runs it,
exactly one of `callbacks.finished`, `failed` or `cancelled` must be called once, in the thread
that owns the session. What the view needs to know goes out through the plain callbacks of
`ChatEvents`; the settings in force are read from `settings()` (the window's settings panel), so
a reply always uses what the user sees.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from quantdesk.core.chat.engine import (
    ChatEngine,
    ChatSettings,
    ModelFacts,
    Reply,
    ReplyStream,
    default_settings,
    estimate_memory,
    read_facts,
)
from quantdesk.core.chat.store import Conversation, Store, StoredMessage
from quantdesk.core.fit import Verdict
from quantdesk.core.gguf.index import GGUFError
from quantdesk.core.jobs import Job, Progress

IDLE_HINT = "Enter sends · Shift+Enter for a new line"  # the status line before any model is loaded


class ChatState(enum.Enum):
    NO_MODEL = "no model"  # nothing selected: nothing to chat with
    READY = "ready"  # a model is selected and nothing runs (it loads with the next message if it must)
    LOADING = "loading"  # the model loads (a preload, or for a reply that waits: see `pending`)
    REPLYING = "replying"  # a reply streams
    STOPPING = "stopping"  # Stop was asked of the reply (or of the load a reply waits for); it ends soon


@dataclass(frozen=True)
class JobCallbacks:
    """Where the job's runner reports back: progress any number of times, then exactly one end."""

    progress: Callable[[Progress], None]
    finished: Callable[[Any], None]
    failed: Callable[[BaseException, str], None]  # the exception, its traceback text
    cancelled: Callable[[], None]


class Waitable(Protocol):
    """What `start_job` returns: something to wait on when the app closes (a JobHandle in the window)."""

    def wait(self, timeout: float | None = None) -> bool: ...


StartJob = Callable[[Job[Any], JobCallbacks], Waitable]


def _nothing(*_args: Any) -> None:
    """The default for every event nobody listens to."""


@dataclass
class ChatEvents:
    """What the session tells its view. Each is called in the session's thread, at once."""

    state_changed: Callable[[], None] = _nothing  # `state`, `replying` or `reply_id` may have changed
    status: Callable[[str], None] = _nothing  # the status line ("Loading model…", the ready line)
    footer: Callable[[str], None] = _nothing  # the line under the reply ("12 tokens so far", why none came)
    failed: Callable[[BaseException, str, str], None] = _nothing  # error, details, what failed ("The reply failed")
    wont_fit: Callable[[str], None] = _nothing  # the model does not fit in memory with these settings: why
    model_selected: Callable[[ModelFacts, ChatSettings], None] = _nothing  # show these settings for the new model
    settings_restored: Callable[[ChatSettings], None] = _nothing  # an opened conversation's own settings: show them
    message_added: Callable[[int, StoredMessage], None] = _nothing  # conversation, the user's message
    reply_started: Callable[[int, int], None] = _nothing  # conversation, the (still empty) reply's message id
    reply_progress: Callable[[int, int, str, int], None] = _nothing  # conversation, message, text so far, tokens
    reply_ended: Callable[[int, int, str, dict[str, Any]], None] = _nothing  # conversation, message, text, stats
    messages_removed: Callable[[int, int], None] = _nothing  # conversation, the first message id removed
    conversation_updated: Callable[[int], None] = _nothing  # its title or place in the list may have changed
    edit_ended: Callable[[], None] = _nothing  # the edit was sent or given up: the composer's copy can go


class ChatSession:
    """The load → reply → save state machine of one chat view (see the module's docstring)."""

    def __init__(
        self,
        store: Store,
        engine: ChatEngine,
        start_job: StartJob,
        settings: Callable[[], ChatSettings],
        events: ChatEvents | None = None,
    ):
        self.store = store
        self.engine = engine
        self.settings = settings  # the settings in force, read at each step (the window's panel)
        self.events = events or ChatEvents()
        self._start_job = start_job
        self.model_path: Path | None = None  # the selected model (loaded or not)
        self.facts: ModelFacts | None = None
        self.conversation_id: int | None = None  # the open conversation; None: a new chat not saved yet
        self.editing_id: int | None = None  # the user message being edited: sending replaces it and what follows
        self.pending = False  # a reply waits for the model to finish loading
        self.reply_id: int | None = None  # the reply being written (streaming, or waiting for the load)
        self.reply_conversation = 0  # the conversation that reply belongs to (not always the open one)
        self.stream: ReplyStream | None = None  # the last reply's text as it grows
        self.closed = False
        self._load: Job[ModelFacts] | None = None
        self._reply: Job[Reply] | None = None
        self._waits: dict[Job[Any], Waitable] = {}  # the running jobs, to wait for on shutdown

    # ------------------------------------------------------------------------------- state
    @property
    def state(self) -> ChatState:
        if self._reply is not None:
            return ChatState.STOPPING if self._reply.cancel_token.cancelled else ChatState.REPLYING
        if self._load is not None:
            stopping = self.pending and self._load.cancel_token.cancelled
            return ChatState.STOPPING if stopping else ChatState.LOADING
        return ChatState.NO_MODEL if self.model_path is None else ChatState.READY

    @property
    def idle(self) -> bool:
        """No job at all: neither loading nor generating."""
        return self._load is None and self._reply is None

    @property
    def busy(self) -> bool:
        """Loading or replying (the window and tests wait on this)."""
        return not self.idle

    @property
    def replying(self) -> bool:
        """A reply is on its way (streaming, stopping, or waiting for the model to load)."""
        return self._reply is not None or self.pending

    def ready_text(self) -> str:
        """The status line when nothing runs: the loaded model and where it runs."""
        if not self.engine.loaded or self.engine.model_path is None:
            return IDLE_HINT
        settings = self.settings()
        threads = settings.resolved_threads()
        where = "CPU"
        if settings.gpu_layers != 0:  # the panel reports 0 where this llama.cpp cannot offload
            layers = "all layers" if settings.gpu_layers < 0 else f"{settings.gpu_layers} layers"
            where = f"{layers} on the GPU"
        return (
            f"{self.engine.model_path.stem} ready · {self.engine.context_size():,} tokens of context · "
            f"{threads} thread{'s' if threads != 1 else ''} · {where}"
        )

    def _status(self, text: str) -> None:
        self.events.status(text or self.ready_text())

    # ------------------------------------------------------------------------------ models
    def select_model(self, path: str | Path) -> ModelFacts:
        """Use `path` for this chat and new ones; it loads when needed. Raises GGUFError (one line).

        The view is told the settings to show for it (those saved for the file, over its defaults)
        before the open conversation is set to this model with the settings then in force."""
        path = Path(path)
        facts = read_facts(path)
        self.model_path, self.facts = path, facts
        self.events.model_selected(
            facts, ChatSettings.from_dict(self.store.model_settings(path), default_settings(facts))
        )
        if self.conversation_id is not None:
            self.store.set_conversation_model(self.conversation_id, path, self.settings().to_dict())
        self.events.state_changed()
        return facts

    def preload(self) -> None:
        """Load the selected model now so that the first reply starts at once."""
        if self.closed or self.model_path is None or not self.idle:
            return
        if self.engine.needs_reload(self.model_path, self.settings()):
            self._start_load()

    def settings_changed(self) -> None:
        """The user changed a setting: save it for the model and the conversation; a template
        applies at once, a setting that shapes the load (context, threads, GPU layers, KV cache)
        makes the next message reload the model."""
        if self.model_path is None:
            return
        settings = self.settings()
        self.store.save_model_settings(self.model_path, settings.to_dict())
        if self.conversation_id is not None:
            self.store.set_conversation_model(self.conversation_id, self.model_path, settings.to_dict())
        if self.engine.loaded and self.engine.template_override != settings.template_override and self.idle:
            self.engine.set_template(settings.template_override)
        if self.engine.loaded and self.engine.needs_reload(self.model_path, settings):
            self._status("Settings changed: the model reloads with the next message")

    def _start_load(self) -> bool:
        """Start loading the selected model; False (and `wont_fit`) when it cannot fit in memory."""
        assert self.model_path is not None
        settings = self.settings()
        verdict = estimate_memory(self.facts, settings).verdict if self.facts is not None else Verdict.FITS
        if verdict is Verdict.WONT_FIT:
            self.events.wont_fit(
                f"{self.model_path.name} will not fit in free memory with these settings. Lower the context "
                "length or pick a smaller KV cache type in the model settings, or close other programs."
            )
            return False
        if verdict is Verdict.TIGHT:
            self._status(f"Loading {self.model_path.stem}… memory is tight: other programs may slow down")
        else:
            self._status(f"Loading {self.model_path.stem}…")
        job = self.engine.load_job(self.model_path, settings)
        self._load = job
        self.events.state_changed()
        self._run(
            job,
            JobCallbacks(
                progress=lambda p: None,  # loading says nothing worth showing until it ends
                finished=lambda facts: self._loaded(job),
                failed=lambda error, tb: self._load_failed(job, error, tb),
                cancelled=lambda: self._load_cancelled(job),
            ),
        )
        return True

    def _run(self, job: Job[Any], callbacks: JobCallbacks) -> None:
        """Start `job`; its waitable is kept only while it runs (a runner may end it before returning)."""
        waitable = self._start_job(job, callbacks)
        if job is self._load or job is self._reply:
            self._waits[job] = waitable

    def _end_job(self, job: Job[Any]) -> bool:
        """Forget an ending job; False when its end no longer matters (closed, or not the job running)."""
        self._waits.pop(job, None)
        if self.closed or (job is not self._load and job is not self._reply):
            return False
        if job is self._load:
            self._load = None
        else:
            self._reply = None
        return True

    def _loaded(self, job: Job[ModelFacts]) -> None:
        if not self._end_job(job):
            return
        self._status(self.ready_text())
        self.events.state_changed()
        if not self.pending:
            return
        if self.model_path is not None and self.engine.needs_reload(self.model_path, self.settings()):
            if not self._start_load():  # the model or its settings changed while it loaded
                self.pending = False
                self._abandon_reply("The model was not loaded.")
                self.events.state_changed()
            return
        self.pending = False
        self._start_reply()

    def _load_failed(self, job: Job[ModelFacts], error: BaseException, tb: str) -> None:
        if not self._end_job(job):
            return
        self.pending = False
        self._status("")
        self.events.failed(error, tb, "Could not load the model")
        self._abandon_reply("The model did not load, so there is no reply.")
        self.events.state_changed()

    def _load_cancelled(self, job: Job[ModelFacts]) -> None:
        if not self._end_job(job):
            return
        self.pending = False
        self._status("Loading cancelled")
        self._abandon_reply("Stopped before the model finished loading.")
        self.events.state_changed()

    # ------------------------------------------------------------------------ conversations
    def _leave_current(self) -> None:
        """Before another conversation shows: stop a running reply; its end is still saved where it belongs."""
        if self.replying:
            self.stop()

    def new_chat(self) -> None:
        """An empty chat; it is saved as a conversation with its first message."""
        self._leave_current()
        self.cancel_edit()
        self.conversation_id = None

    def open_conversation(self, conversation_id: int) -> Conversation | None:
        """Make `conversation_id` the open one, with its model (if the file is still there) and its
        settings; None when it does not exist. The view then shows `store.messages(...)`."""
        conv = self.store.conversation(conversation_id)
        if conv is None:
            return None
        self._leave_current()
        self.cancel_edit()
        self.conversation_id = conversation_id
        if conv.model_path and Path(conv.model_path).is_file() and Path(conv.model_path) != self.model_path:
            try:
                self.select_model(Path(conv.model_path))
            except GGUFError as e:
                self.events.failed(e, "", "Cannot use this model")
        if conv.settings and self.facts is not None:
            self.events.settings_restored(ChatSettings.from_dict(conv.settings, default_settings(self.facts)))
        return conv

    # ----------------------------------------------------------------------------- messages
    def can_send(self, text: str) -> bool:
        """Whether `send(text)` would send: some text, a model, and no reply on its way."""
        return bool(text.strip()) and not self.replying and self.model_path is not None

    def start_edit(self, message_id: int) -> str | None:
        """Edit a message of the open conversation: returns its text for the composer, or None
        (a reply is on its way, or no such message). The next `send` replaces it and all after it."""
        if self.replying or self.conversation_id is None:
            return None
        for m in self.store.messages(self.conversation_id):
            if m.id == message_id:
                self.editing_id = message_id
                return m.content
        return None

    def cancel_edit(self) -> None:
        """Give up the edit (if any): the message stays as it was."""
        if self.editing_id is not None:
            self.editing_id = None
            self.events.edit_ended()

    def send(self, text: str) -> bool:
        """Send a user message (replacing the one being edited) and start its reply, loading the
        model first if needed; returns False when there is nothing to do (see `can_send`)."""
        text = text.strip()
        if not self.can_send(text):
            return False
        assert self.model_path is not None
        if self.conversation_id is None:
            self.conversation_id = self.store.create_conversation(self.model_path, self.settings().to_dict())
        cid = self.conversation_id
        if self.editing_id is not None:
            self.store.delete_from(cid, self.editing_id)
            self.events.messages_removed(cid, self.editing_id)
            self.cancel_edit()  # done: the edited message is about to be sent
        mid = self.store.add_message(cid, "user", text)
        self.events.message_added(cid, StoredMessage(mid, "user", text))
        self.events.conversation_updated(cid)  # its first message names it
        self._begin_reply()
        return True

    def regenerate(self, message_id: int) -> None:
        """Replace the reply `message_id` (and anything after it) with a new one."""
        if self.replying or self.conversation_id is None:
            return
        self.store.delete_from(self.conversation_id, message_id)
        self.events.messages_removed(self.conversation_id, message_id)
        self._begin_reply()

    def _begin_reply(self) -> None:
        """Add the (empty) reply to the open conversation, then generate it, loading the model first if needed."""
        assert self.conversation_id is not None and self.model_path is not None
        settings = self.settings()
        self.store.set_conversation_model(self.conversation_id, self.model_path, settings.to_dict())
        self.reply_conversation = self.conversation_id
        self.reply_id = self.store.add_message(self.conversation_id, "assistant", "", complete=False)
        self.events.reply_started(self.reply_conversation, self.reply_id)
        if self._load is not None:  # the model is loading already (e.g. preloading at start)
            self.pending = True
            self.events.state_changed()
            return
        if self.engine.needs_reload(self.model_path, settings):
            self.pending = True
            if not self._start_load():
                self.pending = False
                self._abandon_reply("The model was not loaded.")
            self.events.state_changed()
            return
        self._start_reply()

    def _start_reply(self) -> None:
        assert self.reply_id is not None
        history = [m.as_chat() for m in self.store.messages(self.reply_conversation) if m.id != self.reply_id]
        stream = self.stream = ReplyStream()
        stream.listeners.append(self.store.streaming_writer(self.reply_id))  # saved as it streams, in the worker
        settings = self.settings()
        if self.engine.template_override != settings.template_override:
            self.engine.set_template(settings.template_override)
        job = self.engine.generate_job(history, settings, stream)
        self._reply = job
        self._status("Generating…")
        self.events.state_changed()
        self._run(
            job,
            JobCallbacks(
                progress=lambda p: self._reply_progress(job),
                finished=lambda reply: self._reply_finished(job, reply),
                failed=lambda error, tb: self._reply_failed(job, error, tb),
                cancelled=lambda: self._reply_finished(job, None),  # stopped before its first token
            ),
        )

    def _reply_progress(self, job: Job[Reply]) -> None:
        if job is self._reply and self.stream is not None and self.reply_id is not None:
            self.events.reply_progress(self.reply_conversation, self.reply_id, self.stream.text, self.stream.tokens)

    def _reply_finished(self, job: Job[Reply], reply: Reply | None) -> None:
        """The reply ended (or was stopped, `reply` None when before it began): save it whole."""
        if not self._end_job(job):
            return
        text = reply.text if reply is not None else (self.stream.text if self.stream else "")
        stats: dict[str, Any] = reply.stats.to_dict() if reply is not None else {}
        stats["finish_reason"] = reply.finish_reason if reply is not None else "stopped"
        if reply is not None and reply.dropped_messages:
            stats["dropped_messages"] = reply.dropped_messages
        cid, mid = self.reply_conversation, self.reply_id
        if mid is not None:
            self.store.update_message(mid, text, complete=True, stats=stats)
        self.reply_id = None
        if mid is not None:
            self.events.reply_ended(cid, mid, text, stats)
        self.events.footer("")
        stopped = stats["finish_reason"] == "stopped"
        self._status("Stopped. " + self.ready_text() if stopped else self.ready_text())
        self.events.state_changed()
        self.events.conversation_updated(cid)

    def _reply_failed(self, job: Job[Reply], error: BaseException, tb: str) -> None:
        """The reply failed: keep what came (marked as an error), or drop the empty reply; the
        conversation and the user's message stay."""
        if not self._end_job(job):
            return
        self.events.failed(error, tb, "The reply failed")
        partial = self.stream.text if self.stream else ""
        if self.reply_id is not None:
            if partial:
                self.store.update_message(self.reply_id, partial, complete=True, stats={"finish_reason": "error"})
            else:
                self.store.delete_from(self.reply_conversation, self.reply_id)
                self.events.messages_removed(self.reply_conversation, self.reply_id)
        self.reply_id = None
        self._status("")
        self.events.state_changed()

    def _abandon_reply(self, why: str) -> None:
        """Remove the empty reply when none will come, and say why under it."""
        if self.reply_id is not None:
            self.store.delete_from(self.reply_conversation, self.reply_id)
            self.events.messages_removed(self.reply_conversation, self.reply_id)
        self.reply_id = None
        self.events.footer(why)

    def stop(self) -> None:
        """Stop the reply (within a token: it keeps what came) or the loading a reply waits for.
        A preload is not stopped: no reply waits for it."""
        if self._reply is not None:
            self._reply.cancel()
            self._status("Stopping…")
            self.events.state_changed()
        elif self._load is not None and self.pending:
            self._load.cancel()
            self.events.state_changed()

    def shutdown(self, timeout: float = 10.0) -> None:
        """The app closes: stop, wait for the jobs, save what the reply has so far, free the model,
        close the database. Ends that arrive later are ignored."""
        if self.closed:
            return
        self.stop()
        for waitable in list(self._waits.values()):
            waitable.wait(timeout)
        self.closed = True
        # Only a reply that was streaming has text to keep; one still waiting for the load has none
        # (`stream` is then the previous reply's): it stays empty and incomplete, shown as interrupted.
        if self._reply is not None and self.reply_id is not None and self.stream is not None:
            self.store.update_message(
                self.reply_id, self.stream.text, complete=True, stats={"finish_reason": "stopped"}
            )
        self.engine.unload()
        self.store.close()
