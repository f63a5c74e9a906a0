"""A request's conversation in one shape, whichever API it came in by, and the messages that the
model's template renders from it.

Both wire formats (OpenAI's chat messages, Anthropic's content blocks) map into `Turn`s. Turns
that are plain text pass to the template exactly as Chat would pass them, so a request without
tools gets Chat's prompt. Tool calls and tool results have no place in most templates, so they
are written as text in one format for every model (quantdesk.server.tools): a call as a
<tool_call> block in the assistant's turn, a result as a <tool_response> block in a user turn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # a JSON schema of the arguments object


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON object, as text (OpenAI's shape; Anthropic's input is its parsed form)


@dataclass
class Turn:
    role: str  # "system" | "user" | "assistant" | "tool"
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str = ""


@dataclass
class ToolUse:
    """The tools offered and how the model may use them."""

    tools: list[Tool]
    choice: str = "auto"  # "auto" | "required" | "none"
    forced: str | None = None  # this tool must be called

    @property
    def active(self) -> bool:
        return bool(self.tools) and self.choice != "none"

    @property
    def must_call(self) -> bool:
        return self.active and (self.choice == "required" or self.forced is not None)


def tool_instructions(use: ToolUse) -> str:
    """The system prompt's part that offers the tools (the Hermes / Qwen format, which most
    instruction-tuned models have seen)."""
    lines = [
        "You can call tools. They are described as JSON schemas inside <tools></tools>:",
        "<tools>",
    ]
    for t in use.tools:
        spec = {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        lines.append(json.dumps(spec, ensure_ascii=False))
    lines += [
        "</tools>",
        "To call a tool, reply with a JSON object inside <tool_call></tool_call> tags, one block per call:",
        TOOL_CALL_OPEN,
        '{"name": "<tool name>", "arguments": {<the arguments>}}',
        TOOL_CALL_CLOSE,
        "Each tool's result comes back to you inside <tool_response></tool_response>.",
    ]
    if use.forced is not None:
        lines.append(f"Call the tool {use.forced} now.")
    elif use.choice == "required":
        lines.append("Call one of the tools now.")
    else:
        lines.append("When no tool is needed, answer normally.")
    return "\n".join(lines)


def _call_block(call: ToolCall) -> str:
    try:
        arguments: Any = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        arguments = call.arguments
    body = json.dumps({"name": call.name, "arguments": arguments}, ensure_ascii=False)
    return f"{TOOL_CALL_OPEN}\n{body}\n{TOOL_CALL_CLOSE}"


def prompt_messages(turns: list[Turn], system_prompt: str, use: ToolUse | None) -> list[dict[str, str]]:
    """The role/content messages the template renders.

    The request's own system message wins; without one the model's saved system prompt (Chat's
    setting) is used. Offered tools are described at the end of the system message.
    """
    out: list[dict[str, str]] = []
    tool_results = False  # the last message is a user turn made of tool results
    for t in turns:
        if t.role == "tool":
            block = f"<tool_response>\n{t.content}\n</tool_response>"
            if tool_results:
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block})
            tool_results = True
            continue
        tool_results = False
        if t.role == "assistant" and t.tool_calls:
            blocks = "\n".join(_call_block(c) for c in t.tool_calls)
            out.append({"role": "assistant", "content": f"{t.content}\n{blocks}" if t.content else blocks})
        else:
            out.append({"role": t.role, "content": t.content})
    if not any(m["role"] == "system" for m in out) and system_prompt.strip():
        out.insert(0, {"role": "system", "content": system_prompt})
    if use is not None and use.active:
        text = tool_instructions(use)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{text}"}
        else:
            out.insert(0, {"role": "system", "content": text})
    return out
