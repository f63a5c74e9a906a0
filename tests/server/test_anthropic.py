"""The Anthropic Messages API through the official `anthropic` client, against a real server.

This client version no longer sends temperature; extra_body does, as any client may.
"""

from __future__ import annotations

import anthropic
import openai
import pytest

GREEDY = {"temperature": 0}
MESSAGES = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def client(server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.address, api_key="unused", max_retries=0)


def test_reply_equals_the_openai_reply(client, server):
    reply = client.messages.create(model="starter", max_tokens=24, messages=MESSAGES, extra_body=GREEDY)
    other = openai.OpenAI(base_url=server.address + "/v1", api_key="unused")
    expected = other.chat.completions.create(model="starter", messages=MESSAGES, max_tokens=24, temperature=0)
    assert reply.content[0].type == "text"
    assert reply.content[0].text == expected.choices[0].message.content
    assert reply.stop_reason == ("max_tokens" if expected.choices[0].finish_reason == "length" else "end_turn")
    assert reply.usage.input_tokens == expected.usage.prompt_tokens
    assert reply.usage.output_tokens == expected.usage.completion_tokens


def test_system_prompt_and_streaming_events(client):
    kwargs = dict(model="starter", max_tokens=24, system="Answer in French.", messages=MESSAGES, extra_body=GREEDY)
    whole = client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens
    kinds = [e.type for e in client.messages.create(stream=True, **kwargs)]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= set(kinds)


def test_stop_sequence(client):
    free = client.messages.create(model="starter", max_tokens=40, messages=MESSAGES, extra_body=GREEDY).content[0].text
    if "," not in free:
        pytest.skip("the reply has no comma to stop at")
    reply = client.messages.create(
        model="starter", max_tokens=40, messages=MESSAGES, stop_sequences=[","], extra_body=GREEDY
    )
    assert reply.stop_reason == "stop_sequence" and reply.stop_sequence == ","
    assert reply.content[0].text == free[: free.index(",")]


WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_when_a_tool_is_required(client, stream):
    kwargs = dict(
        model="starter",
        max_tokens=60,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER],
        tool_choice={"type": "any"},
        extra_body=GREEDY,
    )
    if stream:
        with client.messages.stream(**kwargs) as s:
            reply = s.get_final_message()
    else:
        reply = client.messages.create(**kwargs)
    assert reply.stop_reason == "tool_use"
    uses = [b for b in reply.content if b.type == "tool_use"]
    assert uses and uses[0].name == "get_weather" and isinstance(uses[0].input["city"], str)
    follow_up = client.messages.create(
        model="starter",
        max_tokens=16,
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": reply.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "Sunny, 21 C"}]},
        ],
        tools=[WEATHER],
        extra_body=GREEDY,
    )
    assert follow_up.content


def test_errors_in_anthropic_shape(client):
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="no-such-model", max_tokens=8, messages=MESSAGES)
    assert e.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="starter", max_tokens=8, messages=[{"role": "user", "content": "hi " * 6000}])
    assert "maximum context length is" in e.value.body["error"]["message"]
