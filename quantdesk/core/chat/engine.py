"""The chat engine: one GGUF model loaded in llama.cpp (through llama-cpp-python), replies streamed.

No Qt here. Loading and generating are Jobs (quantdesk.core.jobs), so the window runs them in its
worker and the CLI runs them in place. A reply streams into a `ReplyStream`: the worker appends
text as tokens arrive and the reader (the UI on each throttled progress signal, the CLI on each
token, the conversation store every few tokens) reads it, so throttling the UI never loses text.

Prompts are built by llama-cpp-python's create_chat_completion from the chat template stored in
the GGUF (tokenizer.chat_template), or from an override template (quantdesk.core.chat.templates). We use
that exact path rather than our own prompt builder so that a reply here is the reply llama.cpp
users get with the same settings — a test checks it token for token.

Stop is not an error: a stopped reply keeps what was generated and says `finish_reason ==
"stopped"`. Generation checks for Stop between tokens, so it ends within one token.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import psutil

from quantdesk.core import fit
from quantdesk.core.errors import QuantdeskError
from quantdesk.core.fit import FitEstimate, Machine, ModelSize, size_from_metadata
from quantdesk.core.gguf.index import GGUFError, read_metadata
from quantdesk.core.jobs import CancelToken, Job, Progress, ProgressCallback

if TYPE_CHECKING:  # llama_cpp is imported when a model loads, not at startup
    from llama_cpp import Llama
    from llama_cpp.llama_types import ChatCompletionRequestMessage, CreateChatCompletionStreamResponse

# KV cache types a user can pick; quantized V cache needs flash attention in llama.cpp.
KV_CACHE_TYPES = tuple(fit.KV_BYTES_PER_ELEMENT)  # "f16", "q8_0", "q4_0"
_KV_GGML_TYPE = {"f16": 1, "q8_0": 8, "q4_0": 2}  # ggml_type numbers

DEFAULT_CONTEXT = fit.DEFAULT_CONTEXT


class ChatError(QuantdeskError):
    """A model could not be loaded or used; the message says why in one line."""


@dataclass
class ChatSettings:
    """Everything that shapes a reply, saved per model file and per conversation."""

    system_prompt: str = ""
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int = -1  # -1: a new random seed for every reply
    max_tokens: int = 1024
    context_length: int = DEFAULT_CONTEXT
    threads: int = 0  # 0: the number of physical cores
    gpu_layers: int = 0  # -1: "auto", as many as fit in free VRAM (quantdesk.core.fit.gpu_layers_that_fit); 999: all
    kv_cache_type: str = "f16"
    template_override: str = ""  # a key of quantdesk.core.chat.templates.TEMPLATES, or "" for the GGUF's own

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, base: ChatSettings | None = None) -> ChatSettings:
        """Known keys of `data` over `base` (or the defaults); unknown or mistyped keys are ignored."""
        result = replace(base) if base is not None else cls()
        for f in fields(cls):
            if data and f.name in data:
                default = getattr(result, f.name)
                try:
                    value = type(default)(data[f.name])
                except (TypeError, ValueError):
                    continue
                setattr(result, f.name, value)
        return result

    def load_key(self) -> tuple:
        """The settings that need a reload when they change (the rest apply to the next reply)."""
        return (self.context_length, self.resolved_threads(), self.gpu_layers, self.kv_cache_type)

    def resolved_threads(self) -> int:
        return self.threads if self.threads > 0 else (psutil.cpu_count(logical=False) or os.cpu_count() or 1)


@dataclass
class ModelFacts:
    """What the GGUF says about itself that chat needs: for defaults and the memory estimate."""

    path: Path
    name: str
    architecture: str
    size: ModelSize  # what the fit model weighs (quantdesk.core.fit)
    has_template: bool
    sampling: dict[str, float] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return self.size.weights_bytes

    @property
    def context_train(self) -> int:
        """The context the model was trained for (0: the file does not say)."""
        return self.size.max_context or 0


def read_facts(path: str | Path) -> ModelFacts:
    """Read the metadata chat needs. Raises GGUFError with a one-line message.

    This reads only the header index (quantdesk.core.gguf.index), because the full reader
    (gguf.reader.open_gguf) parses the whole vocabulary and takes seconds on a 50k-token model —
    too slow for picking a model in the window.
    """
    path = Path(path)
    meta = read_metadata(path)
    sampling = {}
    for key in ("temp", "top_p", "top_k", "min_p"):
        value = meta.get(f"general.sampling.{key}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            sampling[key] = float(value)
    return ModelFacts(
        path=path,
        name=str(meta.get("general.name", path.stem)),
        architecture=str(meta.get("general.architecture", "unknown")),
        size=size_from_metadata(meta, path.stat().st_size),
        has_template="tokenizer.chat_template" in meta,
        sampling=sampling,
    )


def default_settings(facts: ModelFacts) -> ChatSettings:
    """Sensible settings for this model: its own sampling hints, a context that fits its training."""
    s = ChatSettings(gpu_layers=fit.default_gpu_layers(Machine.now()))  # "auto" where a GPU can take layers
    s.context_length = fit.default_context(facts.size)
    hints = facts.sampling
    if "temp" in hints:
        s.temperature = hints["temp"]
    if "top_p" in hints:
        s.top_p = hints["top_p"]
    if "top_k" in hints:
        s.top_k = int(hints["top_k"])
    if "min_p" in hints:
        s.min_p = hints["min_p"]
    return s


# -- memory -----------------------------------------------------------------------------------
def estimate_memory(facts: ModelFacts, settings: ChatSettings, machine: Machine | None = None) -> FitEstimate:
    """Where the model will live with these settings: the fit model's verdict and figures, the
    same as every other page gives for this file and context."""
    return fit.estimate(facts.size, settings.context_length, machine, settings.gpu_layers, settings.kv_cache_type)


# -- replies ----------------------------------------------------------------------------------
@dataclass
class ReplyStats:
    tokens: int = 0
    time_to_first_token_s: float = 0.0
    generation_s: float = 0.0  # from the first token to the last

    @property
    def tokens_per_second(self) -> float:
        if self.tokens <= 1 or self.generation_s <= 0:
            return 0.0
        return (self.tokens - 1) / self.generation_s

    def to_dict(self) -> dict[str, float]:
        d = asdict(self)
        d["tokens_per_second"] = self.tokens_per_second
        return d


@dataclass
class Reply:
    text: str
    finish_reason: str  # "stop" (the model ended), "length" (max tokens), "stopped" (the user)
    stats: ReplyStats
    dropped_messages: int = 0  # oldest messages left out so the conversation fits the context


class ReplyStream:
    """The text of a reply as it grows, written by the worker and read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: list[str] = []
        self.tokens = 0
        self.listeners: list[Callable[[str, int], None]] = []  # called in the worker: (text, tokens)

    def append(self, piece: str) -> None:
        with self._lock:
            self._parts.append(piece)
            self.tokens += 1
            text = "".join(self._parts) if self.listeners else ""
        for listener in self.listeners:
            listener(text, self.tokens)

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(self._parts)


Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


def with_system_prompt(messages: Iterable[Message], system_prompt: str) -> list[Message]:
    msgs = [m for m in messages if m.get("role") != "system"]
    if system_prompt.strip():
        msgs.insert(0, {"role": "system", "content": system_prompt})
    return msgs


class ChatEngine:
    """One loaded model. Not thread-safe by itself: the UI runs one engine job at a time."""

    def __init__(self) -> None:
        self._llm: Llama | None = None
        self.model_path: Path | None = None
        self.loaded_key: tuple | None = None
        self.template_override = ""

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    @property
    def llm(self) -> Llama | None:
        """The llama_cpp.Llama object (benchmarks and tests compare against it)."""
        return self._llm

    # -- loading ----------------------------------------------------------------------------
    @staticmethod
    def _resolve_gpu_layers(facts: ModelFacts, settings: ChatSettings) -> int:
        """A manual count goes to llama.cpp as is; "auto" (-1) becomes the count that fits."""
        if settings.gpu_layers != fit.AUTO_LAYERS:
            return settings.gpu_layers
        return fit.gpu_layers_that_fit(
            facts.size, settings.context_length, Machine.now().vram_free_bytes, settings.kv_cache_type
        )

    def load(
        self,
        path: str | Path,
        settings: ChatSettings,
        report: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> ModelFacts:
        """Load `path` with `settings` (unloading any previous model). Raises ChatError."""
        report = report or (lambda p: None)
        cancel = cancel or CancelToken()
        path = Path(path)
        try:
            facts = read_facts(path)
        except GGUFError as e:
            raise ChatError(str(e)) from None
        report(Progress(0, 0, "", f"Loading {path.name}", "Loading"))
        self.unload()
        cancel.check()
        import llama_cpp

        kwargs: dict[str, Any] = dict(
            model_path=str(path),
            n_ctx=settings.context_length,
            n_threads=settings.resolved_threads(),
            n_threads_batch=settings.resolved_threads(),
            n_gpu_layers=self._resolve_gpu_layers(facts, settings),
            verbose=False,
        )
        if settings.kv_cache_type != "f16":
            if settings.kv_cache_type not in _KV_GGML_TYPE:
                raise ChatError(
                    f"unknown KV cache type {settings.kv_cache_type!r}; pick one of {', '.join(KV_CACHE_TYPES)}"
                )
            kwargs.update(
                type_k=_KV_GGML_TYPE[settings.kv_cache_type],
                type_v=_KV_GGML_TYPE[settings.kv_cache_type],
                flash_attn=True,
            )  # llama.cpp needs flash attention for a quantized V cache
        import jinja2

        try:
            # llama.cpp prints its load log on the C stderr; verbose=False keeps most of it quiet.
            llm = llama_cpp.Llama(**kwargs)
        except (ValueError, RuntimeError, OSError) as e:
            raise ChatError(f"{path.name}: llama.cpp could not load it ({e})") from None
        except jinja2.TemplateError as e:  # llama-cpp-python compiles the file's chat template while loading
            raise ChatError(f"{path.name}: its chat template is not valid Jinja ({e}); the file is damaged") from None
        if cancel.cancelled:  # loading itself cannot be interrupted; honour the cancel right after
            llm.close()
            cancel.check()
        self._llm = llm
        self.model_path = path
        self.loaded_key = settings.load_key()
        self.set_template(settings.template_override)
        report(Progress(1, 1, "", f"Loaded {path.name}", "Loading"))
        return facts

    def load_job(self, path: str | Path, settings: ChatSettings) -> Job[ModelFacts]:
        return Job(f"Loading {Path(path).name}", lambda report, cancel: self.load(path, settings, report, cancel))

    def set_template(self, key: str) -> None:
        """Use a built-in template instead of the GGUF's own ('' goes back to the GGUF's)."""
        from quantdesk.core.chat import templates

        if self._llm is None:
            return
        self.template_override = key
        self._llm.chat_handler = templates.chat_handler(self._llm, key) if key else None

    def unload(self) -> None:
        if self._llm is not None:
            self._llm.close()
        self._llm = None
        self.model_path = None
        self.loaded_key = None

    def needs_reload(self, path: str | Path, settings: ChatSettings) -> bool:
        return not self.loaded or self.model_path != Path(path) or self.loaded_key != settings.load_key()

    def context_size(self) -> int:
        return self._llm.n_ctx() if self._llm is not None else 0

    def count_tokens(self, text: str) -> int:
        if self._llm is None:
            return 0
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    # -- generating -------------------------------------------------------------------------
    def completion_kwargs(self, settings: ChatSettings) -> dict[str, Any]:
        """The sampling arguments for create_chat_completion (shared with the tests and bench)."""
        return dict(
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=settings.top_k,
            min_p=settings.min_p,
            repeat_penalty=settings.repeat_penalty,
            max_tokens=settings.max_tokens if settings.max_tokens > 0 else None,
            seed=settings.seed if settings.seed >= 0 else int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF,
        )

    def generate(
        self,
        messages: list[Message],
        settings: ChatSettings,
        stream: ReplyStream | None = None,
        report: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Reply:
        """Stream a reply to `messages` into `stream`; returns it whole. Stop ends it within a token."""
        if self._llm is None:
            raise ChatError("no model is loaded")
        stream = stream or ReplyStream()
        report = report or (lambda p: None)
        cancel = cancel or CancelToken()
        msgs, dropped = self.fit_context(with_system_prompt(messages, settings.system_prompt), settings.max_tokens)
        stats = ReplyStats()
        finish = "stop"
        t0 = time.perf_counter()
        t_first = t_last = 0.0
        next_report = 0.0  # progress goes out at most ~30 times a second: readers are throttled anyway
        import jinja2

        try:  # the prompt is rendered here, by the model's own template: a file's template can fail
            # stream=True returns the chunk iterator (the stubs have no overload on `stream`); our
            # role/content dicts are the shape of llama-cpp-python's message TypedDicts.
            chunks = cast(
                "Iterator[CreateChatCompletionStreamResponse]",
                self._llm.create_chat_completion(
                    messages=cast("list[ChatCompletionRequestMessage]", msgs),
                    stream=True,
                    **self.completion_kwargs(settings),
                ),
            )
        except (jinja2.TemplateError, ValueError, TypeError) as e:  # its raise_exception() raises ValueError
            raise ChatError(
                f"the model's chat template failed on this conversation ({type(e).__name__}: {e}); "
                "choose a built-in template in the chat settings"
            ) from None
        try:
            for chunk in chunks:
                if cancel.cancelled:
                    finish = "stopped"
                    break
                choice = chunk["choices"][0]
                piece = choice.get("delta", {}).get("content")
                if isinstance(piece, str) and piece:
                    t_last = time.perf_counter()
                    if not t_first:
                        t_first = t_last
                    stream.append(piece)
                    if t_last >= next_report:
                        next_report = t_last + 0.03
                        report(Progress(stream.tokens, settings.max_tokens, "tokens", "Generating", "Generating"))
                if reason := choice.get("finish_reason"):
                    finish = reason
        except ValueError as e:  # llama-cpp-python says "Requested tokens ... exceed context window"
            raise ChatError(
                f"the conversation no longer fits the model's context ({e}); start a new chat "
                "or raise the context length"
            ) from None
        finally:
            with contextlib.suppress(Exception):
                chunks.close()  # type: ignore[attr-defined]  # a generator at runtime; the stubs say Iterator
        report(Progress(stream.tokens, settings.max_tokens, "tokens", "Generating", "Generating"))
        text = stream.text
        stats.tokens = self.count_tokens(text) if text else 0
        stats.time_to_first_token_s = (t_first - t0) if t_first else 0.0
        stats.generation_s = (t_last - t_first) if t_first else 0.0
        return Reply(text=text, finish_reason=finish, stats=stats, dropped_messages=dropped)

    def fit_context(self, messages: list[Message], max_tokens: int) -> tuple[list[Message], int]:
        """Leave out the oldest turns (never the system prompt or the last message) until the prompt
        leaves room for a reply: a long conversation keeps going instead of failing at the limit.

        The size is estimated from the messages' own token counts plus a few tokens of template per
        message; llama.cpp still refuses a prompt that does not fit, which becomes a ChatError.
        """
        n_ctx = self.context_size()
        room_for_reply = min(max_tokens if max_tokens > 0 else n_ctx // 4, n_ctx // 2)
        budget = n_ctx - room_for_reply
        sizes = [self.count_tokens(m.get("content", "")) + 8 for m in messages]
        msgs = list(messages)
        dropped = 0
        first = 1 if msgs and msgs[0].get("role") == "system" else 0
        while sum(sizes) > budget and len(msgs) - first > 1:
            del msgs[first], sizes[first]
            dropped += 1
        return msgs, dropped

    def generate_job(self, messages: list[Message], settings: ChatSettings, stream: ReplyStream) -> Job[Reply]:
        return Job(
            "Generating a reply", lambda report, cancel: self.generate(messages, settings, stream, report, cancel)
        )
