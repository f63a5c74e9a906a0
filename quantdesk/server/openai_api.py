"""The OpenAI API: /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings and the
stateless basics of /v1/responses, in the shapes the official clients parse.

Requests are checked field by field (quantdesk.server.fields) into a ChatJob or Sampling; a
field this server cannot honour (n > 1, images, a stored previous response) is a 400 that says
so, never silently ignored.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import struct
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from quantdesk.server.conversation import Tool, ToolCall, ToolUse, Turn
from quantdesk.server.errors import ApiError, bad_request, unknown_model
from quantdesk.server.fields import Fields, text_of
from quantdesk.server.generation import Finished, Sampling, Started, Text, TokenLogprob
from quantdesk.server.service import ChatJob, ServerContext, chat_events, collect, embed, text_events
from quantdesk.server.tools import CallFilter, call_grammar, parse_calls, schema_grammar
from quantdesk.server.transport import SSE_HEADERS, ApiResponse, Body, Head, dumps, note, read_json, sse

OWNER = "quantdesk"


def context(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.quantdesk
    return ctx


# -- models ------------------------------------------------------------------------------------
def _model_object(model_id: str, size: int, loaded: bool, created: int) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": created,
        "owned_by": OWNER,
        "loaded": loaded,
        "size_bytes": size,
    }


async def list_models(request: Request) -> Response:
    ctx = context(request)
    entries = await asyncio.to_thread(ctx.registry.catalogue.entries)
    loaded = ctx.registry.loaded_ids()
    created = int(time.time())
    data = [_model_object(e.id, e.size, e.id in loaded, created) for e in entries]
    return JSONResponse({"object": "list", "data": data})


async def get_model(request: Request) -> Response:
    ctx = context(request)
    model_id = request.path_params["model"]
    entry = await asyncio.to_thread(ctx.registry.catalogue.find, model_id)
    if entry is None:
        raise unknown_model(model_id)
    return JSONResponse(_model_object(entry.id, entry.size, entry.id in ctx.registry.loaded_ids(), int(time.time())))


# -- parsing -------------------------------------------------------------------------------------
def sampling_from(f: Fields, max_tokens_names: tuple[str, ...] = ("max_completion_tokens", "max_tokens")) -> Sampling:
    """The sampler fields every text endpoint shares."""
    max_tokens = None
    for name in max_tokens_names:
        max_tokens = f.integer(name, 1)
        if max_tokens is not None:
            break
    s = Sampling(
        temperature=f.number("temperature", 0.0, 2.0),
        top_p=f.number("top_p", 0.0, 1.0),
        top_k=f.integer("top_k", 0),
        min_p=f.number("min_p", 0.0, 1.0),
        repeat_penalty=f.number("repeat_penalty", 0.0, 10.0),
        presence_penalty=f.number("presence_penalty", -2.0, 2.0),
        frequency_penalty=f.number("frequency_penalty", -2.0, 2.0),
        seed=f.integer("seed", -(2**63), 2**63 - 1),
        max_tokens=max_tokens,
        stop=f.strings("stop", most=16),
    )
    if s.seed is not None:
        s.seed &= 0xFFFFFFFF  # llama.cpp's seed is 32 bits
    n = f.integer("n", 1)
    if n is not None and n != 1:
        raise bad_request("this server writes one choice per request; 'n' must be 1", param="n")
    return s


def _tools(f: Fields) -> ToolUse | None:
    raw = f.body.get("tools")
    if raw is None:
        if f.body.get("tool_choice") not in (None, "none", "auto"):
            raise bad_request("'tool_choice' needs 'tools'", param="tool_choice")
        return None
    if not isinstance(raw, list):
        raise bad_request("'tools' must be a list", param="tools")
    tools = []
    for i, t in enumerate(raw):
        fn = t.get("function") if isinstance(t, dict) and t.get("type", "function") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise bad_request(f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ...}}}}", param="tools")
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(params, dict):
            raise bad_request(f"tools[{i}].function.parameters must be a JSON schema object", param="tools")
        tools.append(Tool(fn["name"], str(fn.get("description") or ""), params))
    choice = f.body.get("tool_choice", "auto")
    use = ToolUse(tools)
    if choice in ("none", "auto", "required"):
        use.choice = choice
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict) and choice["function"].get("name"):
        use.choice, use.forced = "required", str(choice["function"]["name"])
    else:
        raise bad_request(
            "'tool_choice' must be 'none', 'auto', 'required' or {'type': 'function', 'function': {'name': ...}}",
            param="tool_choice",
        )
    return use


def _turns(raw: Any) -> list[Turn]:
    if not isinstance(raw, list) or not raw:
        raise bad_request("'messages' must be a non-empty list of messages", param="messages")
    turns = []
    for i, m in enumerate(raw):
        param = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad_request(f"{param} must be an object with 'role' and 'content'", param=param)
        role = m.get("role")
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant", "tool"):
            raise bad_request(
                f"{param}.role must be system, developer, user, assistant or tool, not {role!r}", param=param
            )
        turn = Turn(role, text_of(m.get("content"), f"{param}.content"))
        if role == "assistant" and m.get("tool_calls"):
            calls = m["tool_calls"]
            if not isinstance(calls, list):
                raise bad_request(f"{param}.tool_calls must be a list", param=param)
            for c in calls:
                fn = c.get("function") if isinstance(c, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise bad_request(f"{param}.tool_calls entries need function.name", param=param)
                turn.tool_calls.append(ToolCall(str(c.get("id", "")), fn["name"], str(fn.get("arguments") or "{}")))
        if role == "tool":
            turn.tool_call_id = str(m.get("tool_call_id", ""))
        turns.append(turn)
    return turns


def _response_format(f: Fields, sampling: Sampling) -> None:
    fmt = f.body.get("response_format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return
    if kind == "json_object":
        from llama_cpp.llama_grammar import JSON_GBNF

        sampling.grammar = JSON_GBNF
        return
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise bad_request("response_format.json_schema.schema must be a JSON schema", param="response_format")
        sampling.grammar = schema_grammar(spec["schema"], "response_format")
        return
    raise bad_request("response_format.type must be text, json_object or json_schema", param="response_format")


def parse_chat(body: dict[str, Any]) -> tuple[ChatJob, bool]:
    """A /v1/chat/completions body -> the job and whether usage goes in the stream's last chunk."""
    f = Fields(body)
    job = ChatJob(model=f.model(), turns=_turns(body.get("messages")), sampling=sampling_from(f))
    job.stream = f.boolean("stream")
    job.sampling.logprobs = f.boolean("logprobs")
    top = f.integer("top_logprobs", 0, 20)
    if top:
        if not job.sampling.logprobs:
            raise bad_request("'top_logprobs' needs 'logprobs': true", param="top_logprobs")
        job.sampling.top_logprobs = top
    job.tool_use = _tools(f)
    _response_format(f, job.sampling)
    if job.tool_use is not None and job.tool_use.must_call:
        job.sampling.grammar = call_grammar(job.tool_use)
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return job, include_usage


# -- chat completions ----------------------------------------------------------------------------
def _chat_logprobs(entries: list[TokenLogprob]) -> dict[str, Any]:
    def one(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}

    return {
        "content": [dict(one(e.token, e.logprob), top_logprobs=[one(t, lp) for t, lp in e.top]) for e in entries],
        "refusal": None,
    }


def _call_dicts(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls]


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def chat_completions(request: Request) -> Response:
    ctx = context(request)
    job, include_usage = parse_chat(await read_json(request, ctx.max_body_bytes))
    note(request, model=job.model)
    reply_id = "chatcmpl-" + uuid.uuid4().hex
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return sse(
            {
                "id": reply_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": job.model,
                "choices": [choice],
            }
        )

    async def whole() -> Body:
        done = await collect(chat_events(ctx.registry, job))
        text, calls = done.text, list[ToolCall]()
        if job.tool_use is not None and job.tool_use.active:
            text, calls = parse_calls(done.text, job.tool_use.tools)
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
        if calls:
            message["tool_calls"] = _call_dicts(calls)
        note(request, prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens)
        yield Head()
        yield dumps(
            {
                "id": reply_id,
                "object": "chat.completion",
                "created": created,
                "model": job.model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": _chat_logprobs(done.logprobs) if job.sampling.logprobs else None,
                        "finish_reason": "tool_calls" if calls else done.finish_reason,
                    }
                ],
                "usage": _usage(done.prompt_tokens, done.completion_tokens),
            }
        )

    async def streamed() -> Body:
        calls_filter = CallFilter(job.tool_use.tools) if job.tool_use is not None and job.tool_use.active else None
        async with contextlib.aclosing(chat_events(ctx.registry, job)) as events:
            async for event in events:
                if isinstance(event, Started):
                    yield Head(media_type="text/event-stream", headers=SSE_HEADERS)
                    yield chunk({"role": "assistant", "content": ""})
                elif isinstance(event, Text):
                    text = calls_filter.feed(event.text) if calls_filter is not None else event.text
                    logprobs = _chat_logprobs(event.logprobs) if job.sampling.logprobs and event.logprobs else None
                    if text or logprobs:
                        yield chunk({"content": text}, logprobs=logprobs)
                elif isinstance(event, Finished):
                    finish = event.finish_reason
                    if calls_filter is not None:
                        rest, calls = calls_filter.finish()
                        if rest:
                            yield chunk({"content": rest})
                        if calls:
                            deltas = [dict(d, index=i) for i, d in enumerate(_call_dicts(calls))]
                            yield chunk({"tool_calls": deltas})
                            finish = "tool_calls"
                    logprobs = _chat_logprobs(event.logprobs) if job.sampling.logprobs and event.logprobs else None
                    yield chunk({}, finish, logprobs)
                    if include_usage:
                        usage = _usage(event.prompt_tokens, event.completion_tokens)
                        yield sse(
                            {"id": reply_id, "object": "chat.completion.chunk", "created": created, "model": job.model}
                            | {"choices": [], "usage": usage}
                        )
                    note(request, prompt_tokens=event.prompt_tokens, completion_tokens=event.completion_tokens)
                    yield b"data: [DONE]\n\n"

    return ApiResponse(streamed if job.stream else whole, sse_error=openai_sse_error)


def openai_sse_error(e: ApiError) -> bytes:
    return sse(e.openai_body())


# -- completions ---------------------------------------------------------------------------------
async def completions(request: Request) -> Response:
    ctx = context(request)
    body = await read_json(request, ctx.max_body_bytes)
    f = Fields(body)
    model = f.model()
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise bad_request("'prompt' must be a string (one prompt per request)", param="prompt")
    sampling = sampling_from(f, ("max_tokens",))
    if sampling.max_tokens is None:
        sampling.max_tokens = 16  # OpenAI's default for this endpoint
    logprobs = f.integer("logprobs", 0, 5)
    if logprobs is not None:
        sampling.logprobs, sampling.top_logprobs = True, logprobs
    if f.boolean("echo"):
        raise bad_request("'echo' is not supported", param="echo")
    if f.has("suffix"):
        raise bad_request("'suffix' (fill in the middle) is not supported", param="suffix")
    stream = f.boolean("stream")
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    note(request, model=model)
    reply_id = "cmpl-" + uuid.uuid4().hex
    created = int(time.time())

    def text_logprobs(entries: list[TokenLogprob], offset: int) -> dict[str, Any] | None:
        if not sampling.logprobs:
            return None
        offsets, at = [], offset
        for e in entries:
            offsets.append(at)
            at += len(e.token)
        return {
            "tokens": [e.token for e in entries],
            "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": [dict(e.top) for e in entries],
            "text_offset": offsets,
        }

    def obj(text: str, finish: str | None, logprobs: Any) -> dict[str, Any]:
        choice = {"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish}
        return {"id": reply_id, "object": "text_completion", "created": created, "model": model, "choices": [choice]}

    async def whole() -> Body:
        done = await collect(text_events(ctx.registry, model, prompt, sampling))
        note(request, prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens)
        yield Head()
        result = obj(done.text, done.finish_reason, text_logprobs(done.logprobs, 0))
        result["usage"] = _usage(done.prompt_tokens, done.completion_tokens)
        yield dumps(result)

    async def streamed() -> Body:
        sent = 0
        async with contextlib.aclosing(text_events(ctx.registry, model, prompt, sampling)) as events:
            async for event in events:
                if isinstance(event, Started):
                    yield Head(media_type="text/event-stream", headers=SSE_HEADERS)
                elif isinstance(event, Text):
                    yield sse(obj(event.text, None, text_logprobs(event.logprobs, sent)))
                    sent += len(event.text)
                elif isinstance(event, Finished):
                    yield sse(obj("", event.finish_reason, text_logprobs(event.logprobs, sent)))
                    if include_usage:
                        yield sse(
                            obj("", None, None)
                            | {"choices": [], "usage": _usage(event.prompt_tokens, event.completion_tokens)}
                        )
                    note(request, prompt_tokens=event.prompt_tokens, completion_tokens=event.completion_tokens)
                    yield b"data: [DONE]\n\n"

    return ApiResponse(streamed if stream else whole, sse_error=openai_sse_error)


# -- embeddings ----------------------------------------------------------------------------------
async def embeddings(request: Request) -> Response:
    ctx = context(request)
    body = await read_json(request, ctx.max_body_bytes)
    f = Fields(body)
    model = f.model()
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
        raise bad_request("'input' must be a string or a non-empty list of strings", param="input")
    if len(inputs) > 2048:
        raise bad_request("'input' may hold at most 2048 texts", param="input")
    encoding = f.string("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise bad_request("'encoding_format' must be float or base64", param="encoding_format")
    if f.has("dimensions"):
        raise bad_request("'dimensions' is not supported: these models embed at their own size", param="dimensions")
    note(request, model=model)

    async def whole() -> Body:
        result = await embed(ctx.registry, model, inputs)
        note(request, prompt_tokens=result.prompt_tokens)
        data = []
        for i, vector in enumerate(result.vectors):
            value: Any = vector
            if encoding == "base64":
                value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
            data.append({"object": "embedding", "index": i, "embedding": value})
        yield Head()
        yield dumps(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
            }
        )

    return ApiResponse(whole)


# -- responses (stateless) -----------------------------------------------------------------------
def _responses_turns(body: dict[str, Any]) -> list[Turn]:
    turns: list[Turn] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise bad_request("'instructions' must be a string", param="instructions")
        turns.append(Turn("system", instructions))
    raw = body.get("input")
    if isinstance(raw, str):
        turns.append(Turn("user", raw))
        return turns
    if not isinstance(raw, list) or not raw:
        raise bad_request("'input' must be a string or a non-empty list of messages", param="input")
    for i, item in enumerate(raw):
        param = f"input[{i}]"
        if not isinstance(item, dict) or item.get("type", "message") != "message":
            kind = item.get("type") if isinstance(item, dict) else type(item).__name__
            raise bad_request(f"{param}: only message items are supported here, not {kind!r}", param=param)
        role = "system" if item.get("role") == "developer" else item.get("role")
        if role not in ("system", "user", "assistant"):
            raise bad_request(f"{param}.role must be system, developer, user or assistant", param=param)
        turns.append(Turn(role, text_of(item.get("content"), f"{param}.content")))
    return turns


def parse_responses(body: dict[str, Any]) -> ChatJob:
    f = Fields(body)
    if f.has("previous_response_id") or f.has("conversation"):
        raise bad_request(
            "this server keeps no responses: send the whole conversation in 'input' instead of 'previous_response_id'",
            param="previous_response_id",
        )
    if body.get("tools"):
        raise bad_request("tools are not supported on /v1/responses here; use /v1/chat/completions", param="tools")
    job = ChatJob(model=f.model(), turns=_responses_turns(body), sampling=sampling_from(f, ("max_output_tokens",)))
    job.stream = f.boolean("stream")
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        job.sampling.grammar = schema_grammar(fmt.get("schema"), "text.format")
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        from llama_cpp.llama_grammar import JSON_GBNF

        job.sampling.grammar = JSON_GBNF
    return job


async def responses(request: Request) -> Response:
    ctx = context(request)
    body = await read_json(request, ctx.max_body_bytes)
    job = parse_responses(body)
    note(request, model=job.model)
    response_id = "resp_" + uuid.uuid4().hex
    item_id = "msg_" + uuid.uuid4().hex
    created = int(time.time())

    def response_object(status: str, text: str | None, done: Finished | None) -> dict[str, Any]:
        output = []
        if text is not None:
            output.append(
                {
                    "type": "message",
                    "id": item_id,
                    "status": "completed" if status == "completed" else "incomplete",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            )
        usage = None
        if done is not None:
            usage = {
                "input_tokens": done.prompt_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": done.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": done.prompt_tokens + done.completion_tokens,
            }
        return {
            "id": response_id,
            "object": "response",
            "created_at": created,
            "status": status,
            "model": job.model,
            "output": output,
            "usage": usage,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": job.sampling.max_tokens,
            "temperature": job.sampling.temperature,
            "top_p": job.sampling.top_p,
            "parallel_tool_calls": False,
            "tool_choice": "none",
            "tools": [],
            "store": False,
            "text": {"format": {"type": "text"}},
            "metadata": {},
        }

    def status_of(done: Finished) -> str:
        return "incomplete" if done.finish_reason == "length" else "completed"

    async def whole() -> Body:
        done = await collect(chat_events(ctx.registry, job))
        note(request, prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens)
        yield Head()
        yield dumps(response_object(status_of(done), done.text, done))

    async def streamed() -> Body:
        seq = 0

        def event(kind: str, **data: Any) -> bytes:
            nonlocal seq
            seq += 1
            return sse({"type": kind, "sequence_number": seq, **data}, event=kind)

        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        parts: list[str] = []
        async with contextlib.aclosing(chat_events(ctx.registry, job)) as events:
            async for ev in events:
                if isinstance(ev, Started):
                    yield Head(media_type="text/event-stream", headers=SSE_HEADERS)
                    yield event("response.created", response=response_object("in_progress", None, None))
                    yield event("response.in_progress", response=response_object("in_progress", None, None))
                    item = {
                        "type": "message",
                        "id": item_id,
                        "status": "in_progress",
                        "role": "assistant",
                        "content": [],
                    }
                    yield event("response.output_item.added", output_index=0, item=item)
                    part = {"type": "output_text", "text": "", "annotations": []}
                    yield event("response.content_part.added", part=part, **where)
                elif isinstance(ev, Text):
                    parts.append(ev.text)
                    yield event("response.output_text.delta", delta=ev.text, logprobs=[], **where)
                elif isinstance(ev, Finished):
                    text = ev.text
                    yield event("response.output_text.done", text=text, logprobs=[], **where)
                    part = {"type": "output_text", "text": text, "annotations": []}
                    yield event("response.content_part.done", part=part, **where)
                    final = response_object(status_of(ev), text, ev)
                    yield event("response.output_item.done", output_index=0, item=final["output"][0])
                    kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
                    note(request, prompt_tokens=ev.prompt_tokens, completion_tokens=ev.completion_tokens)
                    yield event(kind, response=final)

    def responses_sse_error(e: ApiError) -> bytes:
        return sse({"type": "error", "code": e.code, "message": e.message, "param": e.param}, event="error")

    return ApiResponse(streamed if job.stream else whole, sse_error=responses_sse_error)
