"""Models load on first request (once, however many ask), leave after the TTL, at most N at once
(the least recently used goes) and only within the memory the fit model allows."""

from __future__ import annotations

import threading
import time

import httpx2 as httpx
import openai
import pytest

from quantdesk.core.fit import Machine

HI = [{"role": "user", "content": "Hi"}]


def ask(server, model: str = "starter", tokens: int = 2) -> openai.types.chat.ChatCompletion:
    client = openai.OpenAI(base_url=server.address + "/v1", api_key="unused", max_retries=0)
    return client.chat.completions.create(model=model, messages=HI, max_tokens=tokens, temperature=0)


def loaded(server) -> set[str]:
    return {m["id"] for m in httpx.get(server.address + "/v1/models").json()["data"] if m["loaded"]}


def test_concurrent_requests_for_an_unloaded_model_load_it_once(serve):
    server = serve()
    assert loaded(server) == set()
    errors: list[BaseException] = []

    def one() -> None:
        try:
            ask(server)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert server.registry.loads == {("starter", "chat"): 1}
    assert loaded(server) == {"starter"}


def test_just_in_time_load_of_a_second_model(serve, second_model):
    server = serve(max_loaded=2)
    ask(server)
    assert second_model in {m["id"] for m in httpx.get(server.address + "/v1/models").json()["data"]}
    assert ask(server, second_model).choices[0].message.content
    assert loaded(server) == {"starter", second_model}
    memory = {m.id: m.memory_bytes for m in server.registry.snapshot()}
    assert memory["starter"] > 90_000_000  # the fit model's figure: weights, KV cache, runtime


def test_least_recently_used_goes_first_beyond_max_loaded(serve, second_model):
    server = serve(max_loaded=1)
    ask(server)
    ask(server, second_model)
    assert loaded(server) == {second_model}
    ask(server)
    assert loaded(server) == {"starter"}
    assert server.registry.loads[("starter", "chat")] == 2


def test_idle_models_unload_after_the_ttl(serve):
    server = serve(ttl_s=1)
    ask(server)
    assert loaded(server) == {"starter"}
    deadline = time.monotonic() + 10
    while loaded(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert loaded(server) == set()
    assert ask(server).choices[0].message.content  # and it comes back on the next request
    assert server.registry.loads[("starter", "chat")] == 2


def test_a_model_that_does_not_fit_is_not_loaded(serve):
    server = serve()
    server.registry.machine = lambda: Machine(ram_available_bytes=50_000_000, ram_total_bytes=60_000_000)
    with pytest.raises(openai.InternalServerError) as e:
        ask(server)
    assert e.value.status_code == 503
    assert "does not fit in memory" in str(e.value)
    assert loaded(server) == set()


def test_health(server):
    assert httpx.get(server.address + "/health").json()["status"] == "ok"


def test_chat_settings_saved_for_a_model_apply_and_a_request_overrides_them(serve, starter_model):
    from quantdesk.core.chat.store import Store

    store = Store()
    store.save_model_settings(starter_model, {"max_tokens": 3, "temperature": 0.0, "system_prompt": "Reply in French."})
    store.close()
    server = serve()
    client = openai.OpenAI(base_url=server.address + "/v1", api_key="unused", max_retries=0)
    saved = client.chat.completions.create(model="starter", messages=HI)
    assert saved.usage.completion_tokens <= 3 and saved.choices[0].finish_reason == "length"
    own = client.chat.completions.create(model="starter", messages=HI, max_tokens=6)
    assert own.usage.completion_tokens == 6
    # the saved system prompt is in the prompt unless the request brings its own
    with_own_system = client.chat.completions.create(
        model="starter", messages=[{"role": "system", "content": "x"}, *HI], max_tokens=1
    )
    assert with_own_system.usage.prompt_tokens < saved.usage.prompt_tokens
