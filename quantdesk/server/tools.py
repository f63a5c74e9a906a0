"""Tool calls and structured replies: grammars that force them, and reading calls out of a reply.

When a call is required (OpenAI's tool_choice "required" or a named function, Anthropic's "any" or
"tool") the reply is generated under a GBNF grammar that only admits a <tool_call> block whose
JSON names one of the tools and matches its parameter schema, so the call always parses. With
"auto" the model is free, and a reply that holds <tool_call> blocks (or is only such a JSON object)
becomes tool calls. Grammars come from llama-cpp-python's JSON-schema converter (the port of
llama.cpp's json-schema-to-grammar); response_format json_schema uses the same converter.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from quantdesk.server.conversation import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, Tool, ToolCall, ToolUse
from quantdesk.server.errors import bad_request

_EMPTY_OBJECT: dict[str, Any] = {"type": "object", "properties": {}}


def new_call_id(prefix: str = "call_") -> str:
    return prefix + secrets.token_hex(12)


def _converter() -> Any:
    from llama_cpp.llama_grammar import SchemaConverter

    return SchemaConverter(prop_order={"name": 0, "arguments": 1}, allow_fetch=False, dotall=False, raw_pattern=False)


def schema_grammar(schema: Any, param: str) -> str:
    """GBNF for replies that are JSON matching `schema`. Raises ApiError 400 for a schema the
    converter cannot express."""
    if not isinstance(schema, dict):
        raise bad_request("the JSON schema must be an object", param=param)
    try:
        converter = _converter()
        converter.visit(converter.resolve_refs(schema, "schema"), "")
        return str(converter.format_grammar())
    except Exception as e:  # the converter raises plain exceptions (ValueError, KeyError, ...) for what it lacks
        raise bad_request(f"this JSON schema cannot be enforced: {type(e).__name__}: {e}", param=param) from None


def call_grammar(use: ToolUse, param: str = "tools") -> str:
    """GBNF for one <tool_call> block calling `use.forced`, or any of the tools."""
    chosen = [t for t in use.tools if use.forced is None or t.name == use.forced]
    if not chosen:
        raise bad_request(f"tool_choice names {use.forced!r}, which is not among the tools", param="tool_choice")
    schema = {
        "anyOf": [
            {
                "type": "object",
                "properties": {"name": {"const": t.name}, "arguments": t.parameters or _EMPTY_OBJECT},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for t in chosen
        ]
    }
    try:
        converter = _converter()
        converter.visit(converter.resolve_refs(schema, "tools"), "call")
        rules = str(converter.format_grammar())
    except Exception as e:
        raise bad_request(
            f"a tool's parameters schema cannot be enforced: {type(e).__name__}: {e}", param=param
        ) from None
    return f'root ::= "{TOOL_CALL_OPEN}\\n" call "\\n{TOOL_CALL_CLOSE}"\n{rules}'


_BLOCK = re.compile(re.escape(TOOL_CALL_OPEN) + r"\s*(.*?)\s*(?:" + re.escape(TOOL_CALL_CLOSE) + r"|$)", re.S)


def _as_call(data: Any, names: set[str]) -> ToolCall | None:
    if not isinstance(data, dict) or data.get("name") not in names:
        return None
    arguments = data.get("arguments", data.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(new_call_id(), str(data["name"]), json.dumps(arguments, ensure_ascii=False))


def parse_calls(text: str, tools: list[Tool]) -> tuple[str, list[ToolCall]]:
    """The reply's text outside tool-call blocks, and the calls in it (blocks that do not parse,
    or name no offered tool, stay text)."""
    names = {t.name for t in tools}
    calls: list[ToolCall] = []
    kept: list[str] = []
    last = 0
    for match in _BLOCK.finditer(text):
        try:
            call = _as_call(json.loads(match.group(1)), names)
        except ValueError:
            call = None
        if call is None:
            continue
        calls.append(call)
        kept.append(text[last : match.start()])
        last = match.end()
    kept.append(text[last:])
    if not calls:
        stripped = text.strip()
        if stripped.startswith("{"):  # some models answer with the bare JSON object
            try:
                call = _as_call(json.loads(stripped), names)
            except ValueError:
                call = None
            if call is not None:
                return "", [call]
        return text, []
    return "".join(kept).strip(), calls


class CallFilter:
    """Streams a reply's text while it cannot be a tool call and holds back what may be one, so
    a stream never shows a call's JSON as text. finish() gives the rest and the calls."""

    def __init__(self, tools: list[Tool]) -> None:
        self.tools = tools
        self._held = ""
        self._started = False  # some text has been sent: a bare JSON call is no longer possible
        self._in_call = False

    def feed(self, piece: str) -> str:
        self._held += piece
        if self._in_call:
            return ""
        if not self._started:
            head = self._held.lstrip()
            if not head or TOOL_CALL_OPEN.startswith(head):
                return ""
            if head.startswith("{"):
                self._in_call = True  # maybe a bare JSON call; decided at the end
                return ""
        at = self._held.find(TOOL_CALL_OPEN)
        if at >= 0:
            out, self._held, self._in_call = self._held[:at], self._held[at:], True
        else:
            keep = next(
                (n for n in range(len(TOOL_CALL_OPEN) - 1, 0, -1) if self._held.endswith(TOOL_CALL_OPEN[:n])), 0
            )
            out, self._held = self._held[: len(self._held) - keep], self._held[len(self._held) - keep :]
        self._started = self._started or bool(out)
        return out

    def finish(self) -> tuple[str, list[ToolCall]]:
        text, calls = parse_calls(self._held, self.tools)
        self._held = ""
        return text, calls
