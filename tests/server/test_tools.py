"""Tool calls read out of replies, the streaming hold-back, and the messages a template renders:
plain functions, no server."""

from __future__ import annotations

import json

import pytest

from quantdesk.server.conversation import Tool, ToolCall, ToolUse, Turn, prompt_messages
from quantdesk.server.errors import ApiError
from quantdesk.server.generation import _held_back, _stop_at
from quantdesk.server.tools import CallFilter, call_grammar, parse_calls, schema_grammar

WEATHER = Tool("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}})


def test_calls_are_read_from_blocks_and_bare_json():
    text, calls = parse_calls(
        'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>', [WEATHER]
    )
    assert text == "Let me look."
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Oslo"})]
    _, calls = parse_calls('{"name": "get_weather", "parameters": {"city": "Rome"}}', [WEATHER])
    assert json.loads(calls[0].arguments) == {"city": "Rome"}
    for not_a_call in ('<tool_call>{"name": "other", "arguments": {}}</tool_call>', "<tool_call>{oops", "Just text."):
        text, calls = parse_calls(not_a_call, [WEATHER])
        assert calls == [] and text == not_a_call


def test_the_stream_holds_back_only_what_may_be_a_call():
    f = CallFilter([WEATHER])
    sent = "".join(
        f.feed(p) for p in ["Sure", ", it is <tool", "_call>", '{"name": "get_weather", ', '"arguments": {}}']
    )
    assert sent == "Sure, it is "
    rest, calls = f.finish()
    assert rest == "" and calls[0].name == "get_weather"
    f = CallFilter([WEATHER])
    assert "".join(f.feed(p) for p in ["<to", "day is fine"]) == "<today is fine"
    assert f.finish() == ("", [])
    f = CallFilter([WEATHER])
    assert f.feed('{"a": 1}') == ""  # maybe a bare call: decided at the end
    assert f.finish() == ('{"a": 1}', [])


def test_grammars():
    grammar = call_grammar(ToolUse([WEATHER], "required"))
    assert grammar.startswith('root ::= "<tool_call>\\n" call')
    assert '"\\"get_weather\\""' in grammar
    with pytest.raises(ApiError) as e:
        call_grammar(ToolUse([WEATHER], "required", forced="nope"))
    assert e.value.status == 400 and e.value.param == "tool_choice"
    assert "root ::=" in schema_grammar({"type": "object", "properties": {"n": {"type": "integer"}}}, "response_format")
    with pytest.raises(ApiError):
        schema_grammar("not a schema", "response_format")


def test_prompt_messages_keep_plain_turns_as_chat_has_them():
    turns = [Turn("user", "Hi"), Turn("assistant", "Hello"), Turn("user", "Weather?")]
    assert prompt_messages(turns, "", None) == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Weather?"},
    ]
    with_saved = prompt_messages(turns, "Be brief.", None)
    assert with_saved[0] == {"role": "system", "content": "Be brief."}  # the model's saved system prompt
    own = prompt_messages([Turn("system", "Be long."), *turns], "Be brief.", None)
    assert [m["content"] for m in own if m["role"] == "system"] == ["Be long."]  # the request's wins


def test_tool_turns_become_text_every_template_takes():
    turns = [
        Turn("user", "Weather in Oslo and Rome?"),
        Turn("assistant", "", tool_calls=[ToolCall("c1", "get_weather", '{"city": "Oslo"}')]),
        Turn("tool", "4 C", tool_call_id="c1"),
        Turn("tool", "20 C", tool_call_id="c2"),
    ]
    messages = prompt_messages(turns, "", ToolUse([WEATHER]))
    assert messages[0]["role"] == "system" and "<tools>" in messages[0]["content"]
    assert "get_weather" in messages[0]["content"]
    assert messages[2] == {
        "role": "assistant",
        "content": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>',
    }
    assert messages[3]["role"] == "user"
    assert messages[3]["content"] == "<tool_response>\n4 C\n</tool_response>\n<tool_response>\n20 C\n</tool_response>"
    assert prompt_messages(turns, "", ToolUse([WEATHER], "none"))[0]["role"] == "user"  # "none": no tools offered


def test_stop_sequences_match_across_pieces():
    assert _stop_at("one, two", [","]) == (3, ",")
    assert _stop_at("abc", ["x"]) is None
    assert _held_back("the end is ne", ["near"]) == 2
    assert _held_back("nothing", ["near"]) == 0
