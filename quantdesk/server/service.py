"""What every endpoint does with a parsed request: take the model's turn, run the work in a worker
thread, and hand the events to the endpoint's own wire format.

`chat_events` serves OpenAI's chat completions and Responses and Anthropic's Messages alike, so
the three give the same reply for the same conversation and settings.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

from quantdesk.core.jobs import CancelToken
from quantdesk.server.conversation import ToolUse, Turn, prompt_messages
from quantdesk.server.errors import ApiError
from quantdesk.server.generation import (
    Embedded,
    Emit,
    Event,
    Failed,
    Finished,
    Sampling,
    Text,
    TokenLogprob,
    Worker,
    run_chat,
    run_embeddings,
    run_text_completion,
)
from quantdesk.server.registry import CHAT, EMBED, LoadedModel, Registry
from quantdesk.server.requestlog import RequestLog


@dataclass
class ServerContext:
    """What the endpoints share: set on the Starlette app as app.state.quantdesk."""

    registry: Registry
    log: RequestLog
    max_body_bytes: int


@dataclass
class ChatJob:
    """A chat request in the one shape both APIs parse into."""

    model: str
    turns: list[Turn]
    sampling: Sampling = field(default_factory=Sampling)
    tool_use: ToolUse | None = None
    stream: bool = False


async def _events(
    registry: Registry, model_id: str, kind: str, work: Callable[[LoadedModel], Callable[[Emit, CancelToken], None]]
) -> AsyncGenerator[Event, None]:
    """The events of `work` run on the model's turn. Leaving early (the client went away) cancels
    the worker; the model's lock keeps the next request waiting until that token is done."""
    async with registry.lease(model_id, kind) as model:
        worker = Worker(model.lock, work(model), f"{kind} {model_id}")
        worker.start()
        try:
            while True:
                event = await worker.next()
                if isinstance(event, Failed):
                    raise event.error
                yield event
                if isinstance(event, (Finished, Embedded)):
                    return
        finally:
            worker.cancel.cancel()


def chat_events(registry: Registry, job: ChatJob) -> AsyncGenerator[Event, None]:
    def work(model: LoadedModel) -> Callable[[Emit, CancelToken], None]:
        def run(emit: Emit, cancel: CancelToken) -> None:
            assert model.engine is not None
            settings = registry.current_settings(model)
            messages = prompt_messages(job.turns, settings.system_prompt, job.tool_use)
            run_chat(model.engine, settings, messages, job.sampling, emit, cancel)

        return run

    return _events(registry, job.model, CHAT, work)


def text_events(registry: Registry, model_id: str, prompt: str, sampling: Sampling) -> AsyncGenerator[Event, None]:
    def work(model: LoadedModel) -> Callable[[Emit, CancelToken], None]:
        def run(emit: Emit, cancel: CancelToken) -> None:
            assert model.engine is not None
            run_text_completion(model.engine, registry.current_settings(model), prompt, sampling, emit, cancel)

        return run

    return _events(registry, model_id, CHAT, work)


async def embed(registry: Registry, model_id: str, inputs: list[str]) -> Embedded:
    def work(model: LoadedModel) -> Callable[[Emit, CancelToken], None]:
        return lambda emit, cancel: run_embeddings(model.embedder, inputs, emit, cancel)

    async with contextlib.aclosing(_events(registry, model_id, EMBED, work)) as events:
        async for event in events:
            if isinstance(event, Embedded):
                return event
    raise ApiError(500, "the embedding ended without a result")


async def collect(events: AsyncGenerator[Event, None]) -> Finished:
    """A whole reply (non-streaming requests), with every token's log-probability when asked."""
    logprobs: list[TokenLogprob] = []
    async with contextlib.aclosing(events) as stream:
        async for event in stream:
            if isinstance(event, Text):
                logprobs += event.logprobs
            if isinstance(event, Finished):
                event.logprobs = logprobs + event.logprobs
                return event
    raise ApiError(500, "the reply ended without finishing")
