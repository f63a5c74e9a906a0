"""Which models the server has, which are loaded, and the queue in front of each.

Models are the Library's GGUF files under stable ids: the file name without .gguf (`starter` for
the built-in model). A model loads on its first request and stays until it has been idle for the
TTL. At most `max_loaded` are loaded at once, and only within the memory the fit model allows
(quantdesk.core.fit, with Chat's per-model settings): to make room the least recently used idle
model goes first. Requests that arrive while a model loads wait for that one load.

Each loaded model serves one request at a time. llama-cpp-python's Llama drives one sequence of
one llama.cpp context; batched decoding of several sequences is only reachable through its
low-level API with our own sampler, prompt cache and detokenizer, so we queue instead: requests
wait in arrival order (asyncio's Lock is first come, first served), at most `max_queue` of them
per model; beyond that the answer is 503 with Retry-After.

All state here is touched from the server's event loop only, except `snapshot()`, which the
window's Server page reads from its own thread under `_lock`. Loading, unloading and generating
run in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantdesk.core import fit, library, starter
from quantdesk.core.chat.engine import (
    ChatEngine,
    ChatError,
    ChatSettings,
    ModelFacts,
    default_settings,
    estimate_memory,
    read_facts,
)
from quantdesk.core.chat.store import Store
from quantdesk.core.errors import QuantdeskError, UsageError
from quantdesk.core.fit import FitEstimate, Machine, Verdict
from quantdesk.core.gguf.index import GGUFError
from quantdesk.server.errors import ApiError, overloaded, unknown_model

log = logging.getLogger(__name__)

STARTER_ID = "starter"
CHAT = "chat"
EMBED = "embed"
EMBED_MAX_CONTEXT = 2048  # longest input embedded at once (llama.cpp needs a batch that size)


@dataclass(frozen=True)
class CatalogueEntry:
    id: str
    path: Path
    size: int
    builtin: bool = False


def _ids_for(paths: list[tuple[Path, int, bool, str]]) -> list[CatalogueEntry]:
    """Stable ids for (path, size, builtin, name): the name, or for a second file of the same
    name "<its folder>/<name>"; a third of the same name in a same-named folder is left out."""
    out: list[CatalogueEntry] = []
    taken: set[str] = set()
    for path, size, builtin, name in paths:
        candidates = [STARTER_ID] if builtin else [name, f"{path.parent.name}/{name}"]
        model_id = next((c for c in candidates if c not in taken), None)
        if model_id is None:
            log.warning("no id left for %s: another file has its name", path)
            continue
        taken.add(model_id)
        out.append(CatalogueEntry(model_id, path, size, builtin))
    return out


class Catalogue:
    """Model ids -> files. By default the Library's GGUF models, looked at again every few
    seconds (a download or quantization appears without a restart); `only` narrows it to some
    Library ids or .gguf paths (`quantdesk serve --model`)."""

    def __init__(self, only: list[str] | None = None, refresh_s: float = 3.0) -> None:
        self.only = list(only or [])
        self.refresh_s = refresh_s
        self._entries: list[CatalogueEntry] = []
        self._read_at = -1e9
        self._lock = threading.Lock()

    def _scan(self) -> list[CatalogueEntry]:
        start = starter.starter_model_path()
        rows = [
            (e.path, e.size, e.builtin or (start is not None and e.path == start), e.name)
            for e in library.list_models()
            if e.kind == "gguf"
        ]
        entries = _ids_for(rows)
        if not self.only:
            return entries
        by_id = {e.id: e for e in entries}
        chosen: list[CatalogueEntry] = []
        for name in self.only:
            if name in by_id:
                chosen.append(by_id[name])
                continue
            path = Path(name).expanduser()
            if path.suffix.lower() == ".gguf" and path.is_file():
                known = next((e for e in entries if e.path.resolve() == path.resolve()), None)
                chosen.append(known or CatalogueEntry(path.stem, path.resolve(), path.stat().st_size))
                continue
            raise UsageError(
                f"no model {name!r}: give a Library model's id (`quantdesk models` lists them; "
                f"'{STARTER_ID}' is the built-in one) or a .gguf file"
            )
        return chosen

    def entries(self, fresh: bool = False) -> list[CatalogueEntry]:
        with self._lock:
            if fresh or time.monotonic() - self._read_at > self.refresh_s:
                self._entries = self._scan()
                self._read_at = time.monotonic()
            return list(self._entries)

    def find(self, model_id: str) -> CatalogueEntry | None:
        """The entry for `model_id`, looking at the disk again before saying there is none."""
        for fresh in (False, True):
            entry = next((e for e in self.entries(fresh) if e.id == model_id), None)
            if entry is not None:
                return entry
        return None


@dataclass
class LoadedModel:
    """One model in memory (or being loaded) for one purpose: chat (and completions) or embeddings."""

    entry: CatalogueEntry
    kind: str  # CHAT | EMBED
    ready: asyncio.Future[None]
    slot: asyncio.Lock = field(default_factory=asyncio.Lock)
    lock: threading.Lock = field(default_factory=threading.Lock)  # held by the thread using llama.cpp
    engine: ChatEngine | None = None  # CHAT
    embedder: Any = None  # EMBED: a llama_cpp.Llama loaded with embedding=True
    facts: ModelFacts | None = None
    settings: ChatSettings | None = None  # as loaded (context, threads, GPU layers)
    memory: FitEstimate | None = None
    interested: int = 0  # requests waiting for it to load, waiting in its queue, or being served
    served: int = 0  # requests that have had their turn
    loaded_at: float = 0.0
    last_used: float = field(default_factory=time.monotonic)

    @property
    def id(self) -> str:
        return self.entry.id

    @property
    def is_loaded(self) -> bool:
        return self.ready.done() and self.ready.exception() is None

    @property
    def llm(self) -> Any:
        return self.engine.llm if self.engine is not None else self.embedder


@dataclass(frozen=True)
class ModelStatus:
    """What the Server page shows for a loaded model."""

    id: str
    kind: str
    state: str  # "loading" | "loaded"
    memory_bytes: int
    context: int
    busy: int  # requests being served or waiting
    served: int
    idle_s: float


class Registry:
    def __init__(
        self,
        catalogue: Catalogue | None = None,
        max_loaded: int = 2,
        ttl_s: float = 900.0,
        max_queue: int = 32,
        machine: Callable[[], Machine] = Machine.now,
    ) -> None:
        if max_loaded < 1:
            raise UsageError("at most 0 models loaded would serve nothing; give --max-loaded 1 or more")
        self.catalogue = catalogue or Catalogue()
        self.max_loaded = max_loaded
        self.ttl_s = ttl_s
        self.max_queue = max_queue
        self.machine = machine
        self._models: dict[tuple[str, str], LoadedModel] = {}
        self._load_lock: asyncio.Lock | None = None  # one load (and its evictions) at a time
        self._lock = threading.Lock()  # guards _models for snapshot() from other threads
        self._store: Store | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.loads: dict[tuple[str, str], int] = {}  # how many times each model was loaded (tests, log)

    # -- per-model settings (Chat's) ---------------------------------------------------------------
    def _settings_for(self, path: Path, facts: ModelFacts) -> ChatSettings:
        """Chat's saved settings for this file over the defaults for the model."""
        if self._store is None:
            self._store = Store()
        return ChatSettings.from_dict(self._store.model_settings(path), default_settings(facts))

    def current_settings(self, model: LoadedModel) -> ChatSettings:
        """The settings a request starts from: saved settings read now (a change in Chat applies to
        the next request; context, threads and GPU layers to the next load)."""
        assert model.facts is not None and model.settings is not None
        now = self._settings_for(model.entry.path, model.facts)
        loaded = model.settings
        return ChatSettings.from_dict(
            {
                "context_length": loaded.context_length,
                "threads": loaded.threads,
                "gpu_layers": loaded.gpu_layers,
                "kv_cache_type": loaded.kv_cache_type,
            },
            now,
        )

    # -- status --------------------------------------------------------------------------------
    def snapshot(self) -> list[ModelStatus]:
        now = time.monotonic()
        with self._lock:
            models = list(self._models.values())
        return [
            ModelStatus(
                m.id,
                m.kind,
                "loaded" if m.is_loaded else "loading",
                m.memory.need_bytes if m.memory is not None else m.entry.size,
                m.settings.context_length if m.settings is not None else 0,
                m.interested,
                m.served,
                now - m.last_used,
            )
            for m in models
        ]

    def loaded_ids(self) -> set[str]:
        with self._lock:
            return {m.id for m in self._models.values() if m.is_loaded}

    # -- leases --------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lease(self, model_id: str, kind: str = CHAT) -> AsyncIterator[LoadedModel]:
        """The model `model_id`, loaded, and this request's turn to use it. Raises ApiError:
        404 for an unknown model, 503 when its queue is full or it cannot be loaded now."""
        key = (model_id, kind)
        model = self._models.get(key)
        if model is None:
            entry = await asyncio.to_thread(self.catalogue.find, model_id)
            if entry is None:
                raise unknown_model(model_id)
            model = self._models.get(key)  # another request may have started loading it meanwhile
            if model is None:
                model = self._begin_load(entry, kind)
        if model.interested > self.max_queue:
            raise overloaded(
                f"{model_id} has {model.interested} requests in hand, its queue's limit; try again shortly"
            )
        model.interested += 1
        try:
            await asyncio.shield(model.ready)
            async with model.slot:
                model.last_used = time.monotonic()
                model.served += 1
                yield model
        finally:
            model.interested -= 1
            model.last_used = time.monotonic()

    # -- loading -------------------------------------------------------------------------------
    def _begin_load(self, entry: CatalogueEntry, kind: str) -> LoadedModel:
        model = LoadedModel(entry, kind, asyncio.get_running_loop().create_future())
        with self._lock:
            self._models[(entry.id, kind)] = model
        task = asyncio.get_running_loop().create_task(self._load(model))
        self._tasks.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._tasks.discard)
        # A load nobody waits for any more (its clients left) must not warn "exception never retrieved".
        model.ready.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        return model

    async def _load(self, model: LoadedModel) -> None:
        if self._load_lock is None:
            self._load_lock = asyncio.Lock()
        try:
            async with self._load_lock:
                facts = await asyncio.to_thread(read_facts, model.entry.path)
                settings = await asyncio.to_thread(self._settings_for, model.entry.path, facts)
                if model.kind == EMBED:
                    settings.context_length = min(settings.context_length, EMBED_MAX_CONTEXT)
                model.facts, model.settings = facts, settings
                model.memory = await self._make_room(model, facts, settings)
                if model.kind == CHAT:
                    engine = ChatEngine()
                    await asyncio.to_thread(engine.load, model.entry.path, settings)
                    model.engine = engine
                else:
                    model.embedder = await asyncio.to_thread(_load_embedder, facts, settings)
                self.loads[(model.id, model.kind)] = self.loads.get((model.id, model.kind), 0) + 1
                model.loaded_at = model.last_used = time.monotonic()
                log.info("loaded %s (%s)", model.id, model.kind)
            model.ready.set_result(None)
        except (GGUFError, ChatError) as e:
            self._forget(model)
            model.ready.set_exception(ApiError(400, f"{model.id} cannot be loaded: {e}", code="model_load_failed"))
        except ApiError as e:
            self._forget(model)
            model.ready.set_exception(e)
        except QuantdeskError as e:
            self._forget(model)
            model.ready.set_exception(ApiError(400, f"{model.id} cannot be loaded: {e}", code="model_load_failed"))
        except Exception as e:
            log.exception("loading %s failed", model.id)
            self._forget(model)
            model.ready.set_exception(ApiError(500, f"{model.id} could not be loaded: an internal error ({e})"))

    async def _make_room(self, model: LoadedModel, facts: ModelFacts, settings: ChatSettings) -> FitEstimate:
        """Unload the least recently used idle models until `model` is within max_loaded and the
        fit model says it fits (TIGHT is accepted once nothing idle is left to unload)."""
        while True:  # loads run one at a time, so the loaded models are all that hold memory
            others = [m for m in self._models.values() if m is not model and m.is_loaded]
            estimate = estimate_memory(facts, settings, await asyncio.to_thread(self.machine))
            idle = sorted((m for m in others if m.interested == 0), key=lambda m: m.last_used)
            too_many = len(others) >= self.max_loaded
            short = estimate.verdict == Verdict.WONT_FIT or (estimate.verdict == Verdict.TIGHT and idle)
            if not too_many and not short:
                return estimate
            if not idle:
                if too_many:
                    raise overloaded(
                        f"{len(others)} models are loaded and busy (the limit is {self.max_loaded}); "
                        f"{model.id} can load when one is free"
                    )
                raise ApiError(
                    503,
                    f"{model.id} does not fit in memory now: it {estimate.explain()}",
                    code="insufficient_memory",
                )
            await self.unload(idle[0])

    def _forget(self, model: LoadedModel) -> None:
        with self._lock:
            if self._models.get((model.id, model.kind)) is model:
                del self._models[(model.id, model.kind)]

    async def unload(self, model: LoadedModel) -> None:
        """Take `model` out (new requests load it afresh) and free it once no thread uses it."""
        self._forget(model)
        await asyncio.to_thread(_close, model)
        log.info("unloaded %s (%s)", model.id, model.kind)

    async def unload_idle(self) -> None:
        """Unload what has been idle longer than the TTL (0: never)."""
        if self.ttl_s <= 0:
            return
        now = time.monotonic()
        for m in list(self._models.values()):
            if m.is_loaded and m.interested == 0 and now - m.last_used >= self.ttl_s:
                await self.unload(m)

    async def reaper(self) -> None:
        """Runs for the server's lifetime: the TTL's clock."""
        period = max(0.2, min(5.0, self.ttl_s / 4)) if self.ttl_s > 0 else 5.0
        while True:
            await asyncio.sleep(period)
            try:
                await self.unload_idle()
            except Exception:
                log.exception("unloading idle models failed")

    async def close(self) -> None:
        for m in list(self._models.values()):
            if m.ready.done():
                await self.unload(m)
        if self._store is not None:
            self._store.close()
            self._store = None


def _close(model: LoadedModel) -> None:
    with model.lock:  # a request cancelled mid-token finishes that token first
        if model.engine is not None:
            model.engine.unload()
        if model.embedder is not None:
            model.embedder.close()
        model.engine = model.embedder = None


def _load_embedder(facts: ModelFacts, settings: ChatSettings) -> Any:
    """The model loaded for embeddings: its own pooling, or the mean of its token vectors where the
    file names none (a chat model); one batch holds the longest input."""
    import llama_cpp

    from quantdesk.core.gguf.index import read_metadata

    pooling_key = f"{facts.architecture}.pooling_type"
    pooling = llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED
    if pooling_key not in read_metadata(facts.path):
        pooling = llama_cpp.LLAMA_POOLING_TYPE_MEAN
    layers = settings.gpu_layers
    if layers == fit.AUTO_LAYERS:
        layers = fit.gpu_layers_that_fit(
            facts.size, settings.context_length, Machine.now().vram_free_bytes, settings.kv_cache_type
        )
    try:
        return llama_cpp.Llama(
            model_path=str(facts.path),
            embedding=True,
            pooling_type=pooling,
            n_ctx=settings.context_length,
            n_batch=settings.context_length,
            n_ubatch=settings.context_length,
            n_threads=settings.resolved_threads(),
            n_threads_batch=settings.resolved_threads(),
            n_gpu_layers=layers,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as e:
        raise ChatError(f"llama.cpp could not load it for embeddings ({e})") from None
