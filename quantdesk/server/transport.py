"""HTTP plumbing shared by the endpoints: bounded JSON bodies, error answers, SSE, and the one
response class that notices a client going away.

`ApiResponse` runs a reply's body (an async generator of a `Head`, then bytes) while it watches
the connection. The head comes only when the reply can start, after the model is loaded, the
request's turn has come and the prompt is known to fit, so even a streamed request gets a real
400 or 503 status. If the client disconnects at any point (waiting in the queue, or mid-stream)
the body is cancelled at once, which frees its place in the queue and stops generation within a
token. Starlette's StreamingResponse does watch for that too, but only for older ASGI servers and
only once the headers are out.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from quantdesk.server.errors import ApiError, bad_request, internal

log = logging.getLogger(__name__)

LOG_KEY = "quantdesk.log"  # scope["state"][LOG_KEY]: what the request log says of this request


@dataclass
class Head:
    status: int = 200
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
Body = AsyncGenerator[Head | bytes, None]


def is_anthropic(path: str) -> bool:
    return path.startswith("/v1/messages")


def error_body(e: ApiError, path: str) -> dict[str, Any]:
    return e.anthropic_body() if is_anthropic(path) else e.openai_body()


def error_response(e: ApiError, path: str) -> JSONResponse:
    return JSONResponse(error_body(e, path), status_code=e.status, headers=e.headers)


def note(scope_or_request: Scope | Request, **fields: Any) -> None:
    """Add to what the request log will say of this request (model, tokens, note)."""
    scope = scope_or_request.scope if isinstance(scope_or_request, Request) else scope_or_request
    scope.setdefault("state", {}).setdefault(LOG_KEY, {}).update(fields)


def dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return head.encode("ascii") + b"data: " + dumps(data) + b"\n\n"


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The request's JSON object, read up to `limit` bytes (413 beyond, 400 when it is not JSON)."""
    too_big = ApiError(413, f"the request body is larger than this server accepts ({limit:,} bytes)", code="too_large")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return parse_json_body(b"".join(chunks))


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """A request body's JSON object; 400 for anything else (not JSON, not an object, nested
    deeper than Python's parser goes)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request(
            f"We could not parse the JSON body of your request ({e}). The body must be a JSON object.",
            code="invalid_json",
        ) from None
    except RecursionError:
        raise bad_request("the JSON body of your request is nested too deeply to read", code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object", code="invalid_json")
    return body


class ApiResponse(Response):
    """A reply produced by `make()` while the connection is watched (see the module's text).

    `sse_error` turns an error that comes after the head (the stream has started) into the
    stream's own error event; before the head an error is a normal JSON answer with its status.
    """

    def __init__(self, make: Callable[[], Body], sse_error: Callable[[ApiError], bytes] | None = None) -> None:
        super().__init__()
        self.make = make
        self.sse_error = sse_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        started = False
        finished = False  # after the last byte, uvicorn reports a disconnect that is no news

        async def safe_send(message: dict[str, Any]) -> None:
            with contextlib.suppress(OSError, RuntimeError):  # the client has gone; nothing to tell it
                await send(message)

        async def fail(e: ApiError) -> None:
            nonlocal finished
            finished = True
            note(scope, note=e.message)
            if not started:
                body = dumps(error_body(e, path))
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in e.headers.items()]
                await safe_send({"type": "http.response.start", "status": e.status, "headers": headers})
                await safe_send({"type": "http.response.body", "body": body, "more_body": False})
            else:
                if self.sse_error is not None:
                    await safe_send({"type": "http.response.body", "body": self.sse_error(e), "more_body": True})
                await safe_send({"type": "http.response.body", "body": b"", "more_body": False})

        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        if not finished:
                            note(scope, note="client disconnected")
                        group.cancel_scope.cancel()
                        return

            group.start_soon(watch)
            try:
                async with contextlib.aclosing(self.make()) as parts:
                    async for part in parts:
                        if isinstance(part, Head):
                            headers = [(b"content-type", part.media_type.encode("latin-1"))]
                            headers += [
                                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in part.headers.items()
                            ]
                            await send({"type": "http.response.start", "status": part.status, "headers": headers})
                            started = True
                        else:
                            await send({"type": "http.response.body", "body": part, "more_body": True})
                finished = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except ApiError as e:
                await fail(e)
            except OSError:  # uvicorn's ClientDisconnected: the client left while we wrote
                note(scope, note="client disconnected")
            except Exception as e:
                log.exception("request %s failed", path)
                await fail(internal(e))
            finally:
                group.cancel_scope.cancel()
