"""One request run against a loaded model in a worker thread, its results read by the event loop.

The prompt is Chat's prompt. Chat asks llama-cpp-python's create_chat_completion, which picks the
model's chat handler (the GGUF's template, or the built-in template chosen in Chat's settings),
renders the messages, tokenizes them and calls create_completion. We call that same handler but
hand it a stand-in for the Llama object that only records the create_completion arguments
(`capture_completion`). So the server renders every prompt exactly as Chat does, while it still
learns the prompt's length before generating (for a 400 with the counts, and for usage in a
stream) and can add what a request asks for (a grammar, log-probabilities, stop sequences).

A worker thread owns the model while it generates (the model's lock: llama.cpp contexts are
not thread-safe) and posts events to the event loop with call_soon_threadsafe, which never
blocks generation. Each request gets a new thread that ends with it, as Chat's jobs do: llama.cpp
computes with OpenMP, which keeps a pool of threads for every live thread that has computed, and
with two pools alive on a machine with few cores generation runs two to five times slower
(bench/server.py measured it); a thread that ends frees its pool. The client going away sets
the worker's cancel token; generation checks it between tokens, so the model is free again
within one token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from quantdesk.core.chat.engine import ChatEngine, ChatSettings
from quantdesk.core.jobs import CancelToken
from quantdesk.server.errors import ApiError, context_too_long, internal

log = logging.getLogger(__name__)


@dataclass
class Sampling:
    """What a request asks of the sampler; None means "the model's saved setting" (Chat's)."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    max_tokens: int | None = None  # None: the saved setting, cut to the room left in the context
    stop: list[str] = field(default_factory=list)
    logprobs: bool = False
    top_logprobs: int = 0
    grammar: str = ""  # GBNF the reply must match ("" for free text)


def completion_kwargs(engine: ChatEngine, settings: ChatSettings, sampling: Sampling) -> dict[str, Any]:
    """Chat's sampling arguments for the model's saved settings, with the request's on top."""
    kwargs = engine.completion_kwargs(settings)
    for name in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed"):
        value = getattr(sampling, name)
        if value is not None:
            kwargs[name] = value
    kwargs["presence_penalty"] = sampling.presence_penalty or 0.0
    kwargs["frequency_penalty"] = sampling.frequency_penalty or 0.0
    return kwargs


# -- events a worker posts ---------------------------------------------------------------------
@dataclass
class TokenLogprob:
    token: str
    logprob: float
    top: list[tuple[str, float]]


@dataclass
class Started:
    """The request has the model and its prompt fits: a stream may send its headers now."""

    prompt_tokens: int


@dataclass
class Text:
    text: str
    logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass
class Finished:
    text: str
    finish_reason: str  # "stop", "length", or "cancelled" (the client went away)
    prompt_tokens: int
    completion_tokens: int
    stop_sequence: str | None = None  # the request's stop sequence that ended the reply
    logprobs: list[TokenLogprob] = field(default_factory=list)  # those not yet sent with a Text


@dataclass
class Embedded:
    vectors: list[list[float]]
    prompt_tokens: int


@dataclass
class Failed:
    error: ApiError


Event = Started | Text | Finished | Embedded | Failed
Emit = Callable[[Event], None]


class Worker:
    """Runs `work(emit, cancel)` in its own thread while holding `lock`; events go to the loop."""

    def __init__(self, lock: threading.Lock, work: Callable[[Emit, CancelToken], None], name: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._lock = lock
        self._work = work
        self.cancel = CancelToken()
        self._thread = threading.Thread(target=self._run, name=f"quantdesk-server: {name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _emit(self, event: Event) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the event loop has closed (the server is stopping): nobody is listening
            self.cancel.cancel()

    def _run(self) -> None:
        try:
            with self._lock:
                if not self.cancel.cancelled:  # gave up while waiting for the model
                    self._work(self._emit, self.cancel)
        except ApiError as e:
            self._emit(Failed(e))
        except Exception as e:  # our bug, or llama.cpp failing: said to the client without a traceback
            log.exception("generation failed")
            self._emit(Failed(internal(e)))

    async def next(self) -> Event:
        return await self._queue.get()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


# -- Chat's prompt -----------------------------------------------------------------------------
class _CompletionCapture:
    """Stands in for the Llama object in a chat handler: everything goes to the real model
    except create_completion, whose arguments are kept instead of run."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        self.kwargs: dict[str, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)

    def create_completion(self, **kwargs: Any) -> Iterator[Any]:
        self.kwargs = kwargs
        return iter(())


def chat_handler(llm: Any) -> Any:
    """The handler Llama.create_chat_completion would use (llama_cpp/llama.py does this lookup)."""
    from llama_cpp import llama_chat_format

    return (
        llm.chat_handler
        or llm._chat_handlers.get(llm.chat_format)
        or llama_chat_format.get_chat_completion_handler(llm.chat_format)
    )


def capture_completion(llm: Any, messages: list[dict[str, str]], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The create_completion arguments Chat's create_chat_completion call would make for these
    messages: the prompt as tokens, the template's stop text and stop tokens, the sampling."""
    import jinja2

    capture = _CompletionCapture(llm)
    try:
        chat_handler(llm)(
            llama=capture,
            messages=messages,
            functions=None,
            function_call=None,
            tools=None,
            tool_choice=None,
            temperature=kwargs["temperature"],
            top_p=kwargs["top_p"],
            top_k=kwargs["top_k"],
            min_p=kwargs["min_p"],
            typical_p=1.0,
            logprobs=None,
            top_logprobs=None,
            stream=True,
            stop=[],  # the request's own stop sequences are matched by run_completion
            seed=kwargs["seed"],
            response_format=None,
            max_tokens=kwargs["max_tokens"],
            presence_penalty=kwargs["presence_penalty"],
            frequency_penalty=kwargs["frequency_penalty"],
            repeat_penalty=kwargs["repeat_penalty"],
            tfs_z=1.0,
            mirostat_mode=0,
            mirostat_tau=5.0,
            mirostat_eta=0.1,
            model=None,
            logits_processor=None,
            grammar=None,
            logit_bias=None,
        )
    except (jinja2.TemplateError, ValueError, TypeError) as e:  # a template's raise_exception() is a ValueError
        raise ApiError(
            400,
            f"the model's chat template failed on these messages ({type(e).__name__}: {e}); "
            "choose a built-in template for this model in Chat's settings",
            param="messages",
        ) from None
    if capture.kwargs is None:
        raise ApiError(500, "the model's chat handler did not build a prompt")
    return capture.kwargs


# -- log-probabilities ---------------------------------------------------------------------------
class LogprobRecorder:
    """Log-probabilities of each generated token, read from the logits as llama.cpp samples.

    llama-cpp-python only reports logprobs for a model loaded with logits_all (a copy of the
    logits for every position: hundreds of MB), which Chat's engine is not. A logits processor
    sees each step's logits instead; the token chosen at a step is known at the next step (the
    last input id), and the very last one is matched to the text that remains.
    """

    def __init__(self, llm: Any, top: int) -> None:
        self._llm = llm
        self._top = top
        self._pending: np.ndarray | None = None  # log-softmax of the step whose token is not known yet
        self._calls = 0
        self.entries: list[TokenLogprob] = []
        self._taken = 0

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self._pending is not None and self._calls > 0:
            self._resolve(int(input_ids[-1]))
        self._calls += 1
        logits = np.asarray(scores, dtype=np.float64)
        peak = float(logits.max())
        self._pending = logits - (peak + math.log(float(np.exp(logits - peak).sum())))
        return scores

    def _text(self, token: int) -> str:
        return cast(bytes, self._llm.detokenize([token])).decode("utf-8", errors="replace")

    def _resolve(self, token: int) -> None:
        assert self._pending is not None
        lp = self._pending
        top: list[tuple[str, float]] = []
        if self._top > 0:
            best = np.argpartition(-lp, self._top)[: self._top]
            best = best[np.argsort(-lp[best])]
            top = [(self._text(int(t)), float(lp[t])) for t in best]
        self.entries.append(TokenLogprob(self._text(token), float(lp[token]), top))
        self._pending = None

    def take(self) -> list[TokenLogprob]:
        """The entries resolved since the last take()."""
        out = self.entries[self._taken :]
        self._taken = len(self.entries)
        return out

    def finish(self, text: str) -> list[TokenLogprob]:
        """Resolve the last step from the text not yet covered, keep only tokens inside `text`,
        and return those not yet taken."""
        covered = sum(len(e.token) for e in self.entries)
        if self._pending is not None and covered < len(text):
            rest = text[covered:]
            candidates = np.argpartition(-self._pending, 32)[:32]
            match = next((int(t) for t in candidates if self._text(int(t)) == rest), None)
            if match is None:
                ids = self._llm.tokenize(rest.encode("utf-8"), add_bos=False, special=True)
                match = int(ids[0]) if ids else None
            if match is not None:
                self._resolve(match)
        kept: list[TokenLogprob] = []
        length = 0
        for e in self.entries:
            if length >= len(text):
                break
            kept.append(e)
            length += len(e.token)
        self.entries = kept
        return self.take()


# -- running a completion ------------------------------------------------------------------------
def _stop_at(text: str, stops: list[str]) -> tuple[int, str] | None:
    """Where the first of `stops` starts in `text`, and which one."""
    hits = [(text.find(s), s) for s in stops if s and s in text]
    return min(hits) if hits else None


def _held_back(text: str, stops: list[str]) -> int:
    """How many characters at the end of `text` could be the start of a stop sequence."""
    longest = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:n]):
                longest = n
                break
    return longest


def run_completion(
    llm: Any, kwargs: dict[str, Any], sampling: Sampling, emit: Emit, cancel: CancelToken, explicit_max: bool
) -> None:
    """Generate from create_completion arguments (a token prompt), posting Started, Text and
    Finished. Raises ApiError when the prompt, or the prompt and max_tokens, exceed the context."""
    prompt: list[int] = kwargs["prompt"]
    n_ctx = int(llm.n_ctx())
    room = n_ctx - len(prompt)
    if room <= 0:
        raise context_too_long(n_ctx, len(prompt), None)
    if explicit_max and sampling.max_tokens is not None:
        if len(prompt) + sampling.max_tokens > n_ctx:
            raise context_too_long(n_ctx, len(prompt), sampling.max_tokens)
        max_tokens = sampling.max_tokens
    else:
        max_tokens = min(kwargs.get("max_tokens") or room, room)
    kwargs = dict(kwargs, max_tokens=max_tokens, stream=True)
    if sampling.grammar:
        from llama_cpp import LlamaGrammar

        kwargs["grammar"] = LlamaGrammar.from_string(sampling.grammar, verbose=False)
    recorder = None
    if sampling.logprobs:
        from llama_cpp import LogitsProcessorList

        recorder = LogprobRecorder(llm, sampling.top_logprobs)
        kwargs["logits_processor"] = LogitsProcessorList([recorder])
    stops = [s for s in sampling.stop if s]
    emit(Started(len(prompt)))

    pieces: list[str] = []
    held = ""  # text that may be the start of one of the request's stop sequences
    finish = "length"
    stop_sequence: str | None = None

    def send(text: str) -> None:
        if text:
            pieces.append(text)
            emit(Text(text, recorder.take() if recorder is not None else []))

    chunks = llm.create_completion(**kwargs)
    try:
        for chunk in chunks:
            if cancel.cancelled:
                finish = "cancelled"
                break
            choice = chunk["choices"][0]
            if choice["text"]:
                held += choice["text"]
                hit = _stop_at(held, stops) if stops else None
                if hit is not None:
                    send(held[: hit[0]])
                    held, finish, stop_sequence = "", "stop", hit[1]
                    break
                keep = _held_back(held, stops) if stops else 0
                send(held[: len(held) - keep])
                held = held[len(held) - keep :]
            if choice["finish_reason"]:
                finish = choice["finish_reason"]
        send(held)
    finally:
        with contextlib.suppress(Exception):
            chunks.close()
    text = "".join(pieces)
    completion_tokens = len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)) if text else 0
    rest = recorder.finish(text) if recorder is not None else []
    emit(Finished(text, finish, len(prompt), completion_tokens, stop_sequence, rest))


def run_chat(
    engine: ChatEngine,
    settings: ChatSettings,
    messages: list[dict[str, str]],
    sampling: Sampling,
    emit: Emit,
    cancel: CancelToken,
) -> None:
    """A chat reply: Chat's prompt for `messages`, the request's sampling over the saved settings."""
    llm = engine.llm
    if llm is None:
        raise ApiError(503, "the model was unloaded; send the request again", code="model_unloaded")
    kwargs = completion_kwargs(engine, settings, sampling)
    captured = capture_completion(llm, messages, kwargs)
    run_completion(llm, captured, sampling, emit, cancel, explicit_max=sampling.max_tokens is not None)


def run_text_completion(
    engine: ChatEngine, settings: ChatSettings, prompt: str, sampling: Sampling, emit: Emit, cancel: CancelToken
) -> None:
    """A plain completion of `prompt` (no chat template), tokenized as create_completion does."""
    llm = engine.llm
    if llm is None:
        raise ApiError(503, "the model was unloaded; send the request again", code="model_unloaded")
    kwargs = completion_kwargs(engine, settings, sampling)
    kwargs.update(prompt=llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True), stop=[])
    run_completion(llm, kwargs, sampling, emit, cancel, explicit_max=sampling.max_tokens is not None)


def run_embeddings(llm: Any, inputs: list[str], emit: Emit, cancel: CancelToken) -> None:
    """Unit-length embeddings of each input (a model loaded for embeddings)."""
    n_ctx = int(llm.n_ctx())
    total = 0
    for i, text in enumerate(inputs):
        n = len(llm.tokenize(text.encode("utf-8"), add_bos=True, special=False))
        if n > n_ctx:
            raise ApiError(
                400,
                f"input {i} is {n} tokens long; this model embeds at most {n_ctx} tokens at a time",
                param="input",
                code="context_length_exceeded",
            )
        total += n
    vectors: list[list[float]] = []
    for text in inputs:  # one at a time: a cancelled request stops between inputs
        if cancel.cancelled:
            return
        vectors.append([float(x) for x in llm.embed(text, normalize=True, truncate=False)])
    emit(Embedded(vectors, total))
