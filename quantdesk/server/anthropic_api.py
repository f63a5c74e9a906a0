"""The Anthropic Messages API: POST /v1/messages, with its content blocks, tools and streaming
events (message_start, content_block_start/delta/stop, message_delta, message_stop, ping).

The conversation goes through the same ChatJob as OpenAI's chat completions, so both APIs give
the same reply. Errors use Anthropic's shape ({"type": "error", "error": {...}}), which is what
its clients read.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from quantdesk.server.conversation import Tool, ToolCall, ToolUse, Turn
from quantdesk.server.errors import ApiError, bad_request
from quantdesk.server.fields import Fields, text_of
from quantdesk.server.generation import Finished, Sampling, Started, Text
from quantdesk.server.openai_api import context
from quantdesk.server.service import ChatJob, chat_events, collect
from quantdesk.server.tools import CallFilter, call_grammar, parse_calls, schema_grammar
from quantdesk.server.transport import SSE_HEADERS, ApiResponse, Body, Head, dumps, note, read_json, sse


def _system(raw: Any) -> str:
    if raw is None:
        return ""
    return text_of(raw, "system")


def _turns(raw: Any) -> list[Turn]:
    if not isinstance(raw, list) or not raw:
        raise bad_request("'messages' must be a non-empty list", param="messages")
    turns: list[Turn] = []
    for i, m in enumerate(raw):
        param = f"messages.{i}"
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise bad_request(f"{param}: each message needs a role of user or assistant", param=param)
        content = m.get("content")
        if isinstance(content, str):
            turns.append(Turn(m["role"], content))
            continue
        if not isinstance(content, list):
            raise bad_request(f"{param}.content must be a string or a list of blocks", param=param)
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                texts.append(str(block.get("text", "")))
            elif kind == "tool_use" and m["role"] == "assistant":
                calls.append(
                    ToolCall(
                        str(block.get("id", "")),
                        str(block.get("name", "")),
                        json.dumps(block.get("input", {}), ensure_ascii=False),
                    )
                )
            elif kind == "tool_result" and m["role"] == "user":
                result = text_of(block.get("content"), f"{param}.content")
                if block.get("is_error"):
                    result = f"Error: {result}"
                turns.append(Turn("tool", result, tool_call_id=str(block.get("tool_use_id", ""))))
            elif kind in ("thinking", "redacted_thinking"):
                continue
            else:
                text_of([block], f"{param}.content")  # says which block type is not supported
        if texts or calls:
            turns.append(Turn(m["role"], "".join(texts), tool_calls=calls))
    return turns


def _tools(body: dict[str, Any]) -> ToolUse | None:
    raw = body.get("tools")
    if not raw:
        return None
    if not isinstance(raw, list):
        raise bad_request("'tools' must be a list", param="tools")
    tools = []
    for i, t in enumerate(raw):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not t["name"]:
            raise bad_request(f"tools.{i} needs a name and an input_schema", param="tools")
        schema = t.get("input_schema") or {"type": "object", "properties": {}}
        tools.append(Tool(t["name"], str(t.get("description") or ""), schema))
    use = ToolUse(tools)
    choice = body.get("tool_choice") or {"type": "auto"}
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        use.choice = "auto"
    elif kind == "any":
        use.choice = "required"
    elif kind == "none":
        use.choice = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        use.choice, use.forced = "required", choice["name"]
    else:
        raise bad_request("'tool_choice.type' must be auto, any, tool or none", param="tool_choice")
    return use


def parse_messages(body: dict[str, Any]) -> ChatJob:
    f = Fields(body)
    model = f.model()
    max_tokens = f.integer("max_tokens", 1)
    if max_tokens is None:
        raise bad_request("'max_tokens' is required", param="max_tokens")
    turns = _turns(body.get("messages"))
    system = _system(body.get("system"))
    if system:
        turns.insert(0, Turn("system", system))
    sampling = Sampling(
        temperature=f.number("temperature", 0.0, 1.0),
        top_p=f.number("top_p", 0.0, 1.0),
        top_k=f.integer("top_k", 0),
        max_tokens=max_tokens,
        stop=f.strings("stop_sequences", most=16),
    )
    job = ChatJob(model=model, turns=turns, sampling=sampling, tool_use=_tools(body), stream=f.boolean("stream"))
    if job.tool_use is not None and job.tool_use.must_call:
        job.sampling.grammar = call_grammar(job.tool_use)
    else:
        output = body.get("output_config")
        fmt = output.get("format") if isinstance(output, dict) else None
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            job.sampling.grammar = schema_grammar(fmt.get("schema"), "output_config.format")
    return job


_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


def _stop_reason(done: Finished, called: bool) -> str:
    if called:
        return "tool_use"
    if done.stop_sequence is not None:
        return "stop_sequence"
    return _STOP_REASONS.get(done.finish_reason, "end_turn")


def _tool_block(call: ToolCall) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": "toolu_" + call.id.removeprefix("call_"),
        "name": call.name,
        "input": json.loads(call.arguments),
    }


def anthropic_sse_error(e: ApiError) -> bytes:
    return sse(e.anthropic_body(), event="error")


async def messages(request: Request) -> Response:
    ctx = context(request)
    job = parse_messages(await read_json(request, ctx.max_body_bytes))
    note(request, model=job.model)
    message_id = "msg_" + uuid.uuid4().hex
    active_tools = job.tool_use is not None and job.tool_use.active

    def message(
        content: list[dict[str, Any]], stop: str | None, stop_sequence: str | None, usage: dict[str, int]
    ) -> dict[str, Any]:
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": job.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": stop_sequence,
            "usage": usage,
        }

    async def whole() -> Body:
        done = await collect(chat_events(ctx.registry, job))
        text, calls = done.text, list[ToolCall]()
        if active_tools:
            assert job.tool_use is not None
            text, calls = parse_calls(done.text, job.tool_use.tools)
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text or not calls else []
        content += [_tool_block(c) for c in calls]
        note(request, prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens)
        usage = {"input_tokens": done.prompt_tokens, "output_tokens": done.completion_tokens}
        yield Head()
        yield dumps(message(content, _stop_reason(done, bool(calls)), done.stop_sequence, usage))

    async def streamed() -> Body:
        filt = CallFilter(job.tool_use.tools) if active_tools and job.tool_use is not None else None
        index = -1  # the open content block, -1: none yet
        text_open = False

        def event(kind: str, **data: Any) -> bytes:
            return sse({"type": kind, **data}, event=kind)

        def open_text() -> list[bytes]:
            nonlocal index, text_open
            if text_open:
                return []
            index += 1
            text_open = True
            return [event("content_block_start", index=index, content_block={"type": "text", "text": ""})]

        async with contextlib.aclosing(chat_events(ctx.registry, job)) as events:
            async for ev in events:
                if isinstance(ev, Started):
                    yield Head(media_type="text/event-stream", headers=SSE_HEADERS)
                    usage = {"input_tokens": ev.prompt_tokens, "output_tokens": 0}
                    yield event("message_start", message=message([], None, None, usage))
                    yield event("ping")
                elif isinstance(ev, Text):
                    text = filt.feed(ev.text) if filt is not None else ev.text
                    if text:
                        for b in open_text():
                            yield b
                        yield event("content_block_delta", index=index, delta={"type": "text_delta", "text": text})
                elif isinstance(ev, Finished):
                    calls: list[ToolCall] = []
                    if filt is not None:
                        rest, calls = filt.finish()
                        if rest:
                            for b in open_text():
                                yield b
                            yield event("content_block_delta", index=index, delta={"type": "text_delta", "text": rest})
                    if not calls and not text_open:
                        for b in open_text():
                            yield b
                    if text_open:
                        yield event("content_block_stop", index=index)
                    for call in calls:
                        index += 1
                        block = _tool_block(call)
                        start = dict(block, input={})
                        yield event("content_block_start", index=index, content_block=start)
                        delta = {"type": "input_json_delta", "partial_json": call.arguments}
                        yield event("content_block_delta", index=index, delta=delta)
                        yield event("content_block_stop", index=index)
                    stop = {"stop_reason": _stop_reason(ev, bool(calls)), "stop_sequence": ev.stop_sequence}
                    yield event("message_delta", delta=stop, usage={"output_tokens": ev.completion_tokens})
                    yield event("message_stop")
                    note(request, prompt_tokens=ev.prompt_tokens, completion_tokens=ev.completion_tokens)

    return ApiResponse(streamed if job.stream else whole, sse_error=anthropic_sse_error)
