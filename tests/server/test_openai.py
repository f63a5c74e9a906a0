"""The OpenAI API through the official `openai` client against a real server and the starter model."""

from __future__ import annotations

import json
import math

import httpx2 as httpx
import openai
import pytest

from quantdesk.core.chat.engine import ChatEngine, ChatSettings, default_settings, read_facts

MESSAGES = [{"role": "user", "content": "Name three colours."}]
TOKENS = 24


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.address + "/v1", api_key="unused", max_retries=0)


def greedy(client: openai.OpenAI, messages=MESSAGES, tokens: int = TOKENS) -> str:
    reply = client.chat.completions.create(model="starter", messages=messages, max_tokens=tokens, temperature=0)
    return reply.choices[0].message.content or ""


def test_models_lists_the_library_with_loaded_state(client):
    ids = {m.id: m for m in client.models.list()}
    assert "starter" in ids
    greedy(client, tokens=2)
    assert next(m for m in client.models.list() if m.id == "starter").loaded is True  # type: ignore[attr-defined]
    assert client.models.retrieve("starter").id == "starter"


def test_greedy_reply_equals_chat(client, starter_model):
    """The server's reply is Chat's: the same engine, template and per-model settings."""
    facts = read_facts(starter_model)
    settings = ChatSettings.from_dict({"temperature": 0.0, "max_tokens": TOKENS}, default_settings(facts))
    engine = ChatEngine()
    engine.load(starter_model, settings)
    try:
        expected = engine.generate(MESSAGES, settings).text
    finally:
        engine.unload()
    assert expected
    assert greedy(client) == expected


def test_streamed_chunks_join_to_the_reply_and_usage_comes_last(client):
    whole = client.chat.completions.create(model="starter", messages=MESSAGES, max_tokens=TOKENS, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model="starter",
            messages=MESSAGES,
            max_tokens=TOKENS,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_sampling_parameters_are_accepted_and_seeded_replies_repeat(client):
    kwargs = dict(
        model="starter",
        messages=MESSAGES,
        max_tokens=12,
        temperature=0.9,
        top_p=0.9,
        presence_penalty=0.5,
        frequency_penalty=0.5,
        seed=7,
        extra_body={"top_k": 20, "min_p": 0.02, "repeat_penalty": 1.2},
    )
    first = client.chat.completions.create(**kwargs).choices[0].message.content
    assert first == client.chat.completions.create(**kwargs).choices[0].message.content


def test_stop_sequence_ends_the_reply(client):
    free = greedy(client, tokens=40)
    cut = free[: free.index(",")] if "," in free else None
    reply = client.chat.completions.create(model="starter", messages=MESSAGES, max_tokens=40, temperature=0, stop=[","])
    assert reply.choices[0].finish_reason == "stop"
    if cut is not None:
        assert reply.choices[0].message.content == cut
    streamed = client.chat.completions.create(
        model="starter", messages=MESSAGES, max_tokens=40, temperature=0, stop=[","], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == reply.choices[0].message.content


def test_json_schema_reply_validates(client):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model="starter",
        messages=[{"role": "user", "content": "Describe a person as JSON."}],
        max_tokens=60,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    )
    data = json.loads(reply.choices[0].message.content or "")
    assert set(data) == {"name", "age"}
    assert isinstance(data["name"], str) and isinstance(data["age"], int)


def test_json_object_reply_is_an_object(client):
    reply = client.chat.completions.create(
        model="starter",
        messages=[{"role": "user", "content": "Give me a JSON object about cats."}],
        max_tokens=40,
        temperature=0,
        response_format={"type": "json_object"},
    )
    text = reply.choices[0].message.content or ""
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)
    else:  # cut by max_tokens: still the start of an object
        assert text.lstrip().startswith("{")


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.mark.parametrize("stream", [False, True])
def test_tool_choice_required_returns_a_parseable_call(client, stream):
    kwargs = dict(
        model="starter",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        max_tokens=60,
        temperature=0,
        tools=[WEATHER],
        tool_choice="required",
    )
    if not stream:
        reply = client.chat.completions.create(**kwargs)
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls"
        calls = choice.message.tool_calls
    else:
        chunks = list(client.chat.completions.create(stream=True, **kwargs))
        deltas = [t for c in chunks if c.choices for t in (c.choices[0].delta.tool_calls or [])]
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
            "tool_calls"
        ]
        assert not "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        calls = deltas
    assert calls and calls[0].function.name == "get_weather"
    assert isinstance(json.loads(calls[0].function.arguments)["city"], str)
    assert calls[0].id


def test_a_named_tool_choice_and_the_call_round_trip(client):
    reply = client.chat.completions.create(
        model="starter",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        max_tokens=60,
        temperature=0,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    call = reply.choices[0].message.tool_calls[0]
    follow_up = client.chat.completions.create(
        model="starter",
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 4, "sky": "cloudy"}'},
        ],
        max_tokens=16,
        temperature=0,
        tools=[WEATHER],
        tool_choice="none",
    )
    assert follow_up.choices[0].message.content
    assert follow_up.choices[0].finish_reason in ("stop", "length")


def test_logprobs(client):
    reply = client.chat.completions.create(
        model="starter", messages=MESSAGES, max_tokens=6, temperature=0, logprobs=True, top_logprobs=3
    )
    content = reply.choices[0].logprobs.content
    assert "".join(t.token for t in content) == reply.choices[0].message.content
    assert len(content) == reply.usage.completion_tokens
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        assert t.top_logprobs[0].logprob >= t.top_logprobs[-1].logprob
        assert t.token == t.top_logprobs[0].token  # greedy: the chosen token is the likeliest


def test_completions(client):
    whole = client.completions.create(model="starter", prompt="The capital of France is", max_tokens=8, temperature=0)
    assert whole.choices[0].text and whole.usage.completion_tokens > 0
    parts = client.completions.create(
        model="starter", prompt="The capital of France is", max_tokens=8, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in parts) == whole.choices[0].text


def test_embeddings(client):
    result = client.embeddings.create(model="starter", input=["a red apple", "a green apple", "tax law"])
    vectors = [d.embedding for d in result.data]
    assert len(vectors) == 3 and len({len(v) for v in vectors}) == 1
    for v in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-3)
    floats = httpx.post(
        client.base_url.join("embeddings").__str__(), json={"model": "starter", "input": "a red apple"}
    ).json()
    assert floats["data"][0]["embedding"] == pytest.approx(vectors[0], abs=1e-5)
    assert result.usage.prompt_tokens > 0


def test_responses_basics(client):
    reply = client.responses.create(model="starter", input="Say hello.", max_output_tokens=64, temperature=0)
    assert reply.output_text
    events = list(
        client.responses.create(model="starter", input="Say hello.", max_output_tokens=64, temperature=0, stream=True)
    )
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == reply.output_text
    assert events[-1].type in ("response.completed", "response.incomplete")
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="starter", input="Hi", previous_response_id="resp_123")
