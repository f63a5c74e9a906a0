"""Errors in the OpenAI shape with the right status, the API key, CORS and the body limit."""

from __future__ import annotations

import time

import httpx2 as httpx
import openai
import pytest

from quantdesk.core.errors import UsageError
from quantdesk.server.runner import Server, ServerConfig


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"])
    assert "Traceback" not in response.text
    return body["error"]


def post(server: Server, path: str, **kwargs) -> httpx.Response:
    return httpx.post(server.address + path, timeout=60, **kwargs)


def test_malformed_json_is_400(server):
    for body in (b"{not json", b"[1, 2]", b"\xff\xfe", b"[" * 100_000):  # the last: too deep for json.loads
        r = post(server, "/v1/chat/completions", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400
        assert error_of(r)["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "body, param",
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "starter", "messages": "hi"}, "messages"),
        ({"model": "starter", "messages": [{"role": "robot", "content": "hi"}]}, "messages[0]"),
        ({"model": "starter", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, "temperature"),
        ({"model": "starter", "messages": [{"role": "user", "content": "hi"}], "temperature": 9}, "temperature"),
        ({"model": "starter", "messages": [{"role": "user", "content": "hi"}], "n": 2}, "n"),
        ({"model": "starter", "messages": [{"role": "user", "content": "hi"}], "tools": "x"}, "tools"),
        (
            {"model": "starter", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content",
        ),
    ],
)
def test_bad_fields_are_400_naming_the_field(server, body, param):
    r = post(server, "/v1/chat/completions", json=body)
    assert r.status_code == 400
    assert error_of(r)["param"] == param


def test_unknown_model_is_404(server):
    client = openai.OpenAI(base_url=server.address + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert e.value.code == "model_not_found"
    assert httpx.get(server.address + "/v1/models/no-such-model").status_code == 404
    assert error_of(httpx.get(server.address + "/v1/nothing-here"))["code"] == "unknown_url"


@pytest.mark.parametrize("stream", [False, True])
def test_context_too_long_is_400_with_the_counts(server, stream):
    r = post(
        server,
        "/v1/chat/completions",
        json={"model": "starter", "stream": stream, "messages": [{"role": "user", "content": "hello " * 6000}]},
    )
    assert r.status_code == 400
    error = error_of(r)
    assert error["code"] == "context_length_exceeded"
    assert "maximum context length is 4096 tokens" in error["message"]
    assert "resulted in 60" in error["message"]  # ~6000 tokens: the count is said
    r = post(
        server,
        "/v1/chat/completions",
        json={"model": "starter", "max_tokens": 4090, "messages": [{"role": "user", "content": "hello " * 20}]},
    )
    assert r.status_code == 400
    assert "in the completion" in error_of(r)["message"]


def test_never_a_traceback_for_our_own_bug(server, monkeypatch):
    from quantdesk.server import generation

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(generation, "capture_completion", broken)
    r = post(server, "/v1/chat/completions", json={"model": "starter", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 500
    message = error_of(r)["message"]
    assert "internal error" in message and "a bug" in message


def test_bad_key_is_401_and_the_right_one_works(serve):
    server = serve(api_key="s3cret")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"x-api-key": "wrong"}):
        r = httpx.get(server.address + "/v1/models", headers=headers)
        assert r.status_code == 401
        assert error_of(r)["code"] == "invalid_api_key"
    assert httpx.get(server.address + "/health").status_code == 200  # tells nothing, stays open
    wrong = openai.OpenAI(base_url=server.address + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    right = openai.OpenAI(base_url=server.address + "/v1", api_key="s3cret", max_retries=0)
    assert any(m.id == "starter" for m in right.models.list())
    assert httpx.get(server.address + "/v1/models", headers={"x-api-key": "s3cret"}).status_code == 200
    r = httpx.post(server.address + "/v1/messages", json={}, headers={"x-api-key": "nope"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


def test_off_this_machine_needs_a_key():
    with pytest.raises(UsageError, match="API key"):
        Server(ServerConfig(host="0.0.0.0"))
    with pytest.raises(UsageError):
        Server(ServerConfig(host="192.168.1.10"))
    Server(ServerConfig(host="0.0.0.0", api_key="k"))  # built, never started: tests bind 127.0.0.1 only
    for host in ("127.0.0.1", "localhost", "::1"):
        Server(ServerConfig(host=host))


def test_cors_is_off_unless_origins_are_listed(server, serve):
    preflight = {
        "Origin": "http://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    r = httpx.get(server.address + "/v1/models", headers={"Origin": "http://app.example"})
    assert "access-control-allow-origin" not in r.headers
    with_cors = serve(cors_origins=["http://app.example"], api_key="k")
    r = httpx.options(with_cors.address + "/v1/chat/completions", headers=preflight)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://app.example"
    r = httpx.get(with_cors.address + "/v1/models", headers={"Origin": "http://app.example", "x-api-key": "k"})
    assert r.headers["access-control-allow-origin"] == "http://app.example"
    r = httpx.options(with_cors.address + "/v1/chat/completions", headers=dict(preflight, Origin="http://evil.example"))
    assert r.headers.get("access-control-allow-origin") != "http://evil.example"


def test_request_bodies_are_bounded(serve):
    server = serve(max_body_bytes=2000)
    big = {"model": "starter", "messages": [{"role": "user", "content": "x" * 5000}]}
    r = post(server, "/v1/chat/completions", json=big)
    assert r.status_code == 413
    assert error_of(r)["code"] == "too_large"

    def chunks():  # no Content-Length: the limit holds while reading
        yield b'{"model": "starter", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}]}'

    assert post(server, "/v1/chat/completions", content=chunks()).status_code == 413


def test_every_request_is_logged(server):
    before = server.log.since(0)[-1].seq if server.log.since(0) else 0
    httpx.get(server.address + "/health")
    post(
        server, "/v1/chat/completions", json={"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}
    )
    # An entry is added once the response has gone out, so it can trail the client's view by a moment.
    deadline = time.monotonic() + 10
    while len(server.log.since(before)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    entries = server.log.since(before)
    assert [(e.method, e.path, e.status) for e in entries] == [
        ("GET", "/health", 200),
        ("POST", "/v1/chat/completions", 404),
    ]
    assert entries[1].model == "no-such-model" and "does not exist" in entries[1].note
