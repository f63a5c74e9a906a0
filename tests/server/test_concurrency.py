"""Many clients at once: a fair queue per model, a bounded one (503 beyond it), and a client that
leaves mid-stream frees its place at once."""

from __future__ import annotations

import threading
import time

import httpx2 as httpx
import openai

PROMPTS = ["Name three colours.", "Name two animals."]
TOKENS = 16


def client_for(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.address + "/v1", api_key="unused", max_retries=0, timeout=300)


def test_eight_concurrent_streaming_clients_all_get_the_right_text(server):
    client = client_for(server)
    expected = {
        p: client.chat.completions.create(
            model="starter", messages=[{"role": "user", "content": p}], max_tokens=TOKENS, temperature=0
        )
        .choices[0]
        .message.content
        for p in PROMPTS
    }
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            stream = client_for(server).chat.completions.create(
                model="starter",
                messages=[{"role": "user", "content": PROMPTS[i % 2]}],
                max_tokens=TOKENS,
                temperature=0,
                stream=True,
            )
            results[i] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors
    assert {i: results[i] for i in range(8)} == {i: expected[PROMPTS[i % 2]] for i in range(8)}


def _busy(server) -> int:
    return sum(m.busy for m in server.registry.snapshot())


def _wait(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_client_that_disconnects_mid_stream_frees_the_model_at_once(server):
    httpx.post(  # the model is loaded before we measure
        server.address + "/v1/chat/completions",
        json={"model": "starter", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
        timeout=120,
    )
    body = {
        "model": "starter",
        "messages": [{"role": "user", "content": "Write a very long story about a lighthouse."}],
        "max_tokens": 3000,
        "temperature": 0.8,
        "stream": True,
    }
    with (
        httpx.Client(timeout=120) as http,
        http.stream("POST", server.address + "/v1/chat/completions", json=body) as r,
    ):
        assert r.status_code == 200
        lines = r.iter_lines()
        for _ in range(6):
            next(lines)
    left = time.monotonic()
    _wait(lambda: _busy(server) == 0, 5)
    model = next(m for (mid, kind), m in server.registry._models.items() if mid == "starter")
    assert model.lock.acquire(timeout=2)  # the worker stopped generating
    model.lock.release()
    assert time.monotonic() - left < 3
    assert any("client disconnected" in e.note for e in server.log.since(0))
    started = time.monotonic()
    client_for(server).chat.completions.create(
        model="starter", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert time.monotonic() - started < 10  # not stuck behind 3000 tokens


def test_the_queue_is_bounded_and_answers_503_with_retry_after(serve):
    server = serve(max_queue=1)
    long_body = {
        "model": "starter",
        "messages": [{"role": "user", "content": "Write a very long story about a lighthouse."}],
        "max_tokens": 3000,
        "stream": True,
    }
    with httpx.Client(timeout=120) as first_client, httpx.Client(timeout=120) as second_client:
        with first_client.stream("POST", server.address + "/v1/chat/completions", json=long_body) as first:
            lines = first.iter_lines()  # kept: a dropped iterator closes the response
            next(lines)  # generating
            waiting: dict[str, int] = {}

            def second() -> None:
                with second_client.stream("POST", server.address + "/v1/chat/completions", json=long_body) as r:
                    waiting["status"] = r.status_code

            t = threading.Thread(target=second, daemon=True)
            t.start()
            _wait(lambda: _busy(server) == 2)
            r = httpx.post(server.address + "/v1/chat/completions", json=long_body, timeout=30)
            assert r.status_code == 503
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["code"] == "overloaded"
        # the first client left: the second gets its turn
        t.join(60)
        assert waiting["status"] == 200
    _wait(lambda: _busy(server) == 0, 10)
