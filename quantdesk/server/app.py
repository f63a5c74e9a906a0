"""The ASGI application: routes, the API key, CORS, the request log and the error answers.

Starlette (a small, well-kept ASGI toolkit) on uvicorn. Middleware, outermost first:
- CORS, only when origins are listed (browsers elsewhere get no CORS headers at all);
- the request log, which sees every answer, refusals included;
- the API key, when one is set: `Authorization: Bearer KEY` (OpenAI clients) or `x-api-key: KEY`
  (Anthropic clients), compared in constant time; /health stays open, it tells nothing.
Any exception becomes an answer in the OpenAI (or, under /v1/messages, Anthropic) error shape;
a traceback goes to the log, never to the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quantdesk.server import anthropic_api, openai_api
from quantdesk.server.errors import ApiError, internal
from quantdesk.server.service import ServerContext
from quantdesk.server.transport import LOG_KEY, error_body, error_response

log = logging.getLogger(__name__)


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/health" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get("x-api-key", "")
        auth = headers.get("authorization", "")
        if not given and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode("utf-8"), self.key):
            what = "No API key was given" if not given else "The API key is not this server's"
            error = ApiError(
                401,
                f"{what}; send it as 'Authorization: Bearer KEY' or 'x-api-key: KEY'",
                code="invalid_api_key",
            )
            await error_response(error, scope["path"])(scope, receive, send)
            return
        await self.app(scope, receive, send)


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp, ctx: ServerContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        finally:
            seen: dict[str, Any] = scope.get("state", {}).get(LOG_KEY, {})
            client = scope.get("client")
            self.ctx.log.add(
                client=f"{client[0]}" if client else "",
                method=scope.get("method", ""),
                path=scope.get("path", ""),
                status=status,
                duration_ms=(time.perf_counter() - started) * 1000,
                model=str(seen.get("model", "")),
                prompt_tokens=int(seen.get("prompt_tokens", 0)),
                completion_tokens=int(seen.get("completion_tokens", 0)),
                note=str(seen.get("note", "")),
            )


async def health(request: Request) -> Response:
    ctx: ServerContext = request.app.state.quantdesk
    return JSONResponse({"status": "ok", "models_loaded": len(ctx.registry.loaded_ids())})


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if exc.status >= 400:
        request.scope.setdefault("state", {}).setdefault(LOG_KEY, {})["note"] = exc.message
    return error_response(exc, request.url.path)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Unknown request URL: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    e = ApiError(exc.status_code, message, code="unknown_url" if exc.status_code == 404 else None)
    return JSONResponse(error_body(e, request.url.path), status_code=e.status, headers=exc.headers)


async def _bug(request: Request, exc: Exception) -> Response:
    log.error("request %s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(internal(exc), request.url.path)


def build_app(
    ctx: ServerContext, api_key: str = "", cors_origins: list[str] | None = None, preload: list[str] | None = None
) -> Starlette:
    """The application; `preload`: model ids loaded at start-up, before the first request is taken."""
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", openai_api.list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", openai_api.get_model, methods=["GET"]),
        Route("/v1/chat/completions", openai_api.chat_completions, methods=["POST"]),
        Route("/v1/completions", openai_api.completions, methods=["POST"]),
        Route("/v1/embeddings", openai_api.embeddings, methods=["POST"]),
        Route("/v1/responses", openai_api.responses, methods=["POST"]),
        Route("/v1/messages", anthropic_api.messages, methods=["POST"]),
    ]
    middleware = []
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["*"],
                max_age=600,
            )
        )
    middleware.append(Middleware(RequestLogMiddleware, ctx=ctx))
    if api_key:
        middleware.append(Middleware(ApiKeyMiddleware, key=api_key))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for model_id in preload or []:
            log.info("loading %s", model_id)
            try:
                async with ctx.registry.lease(model_id):
                    pass
            except ApiError as e:
                log.error("%s was not loaded: %s", model_id, e.message)
        reaper = asyncio.get_running_loop().create_task(ctx.registry.reaper())
        try:
            yield
        finally:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
            await ctx.registry.close()

    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _bug},
        lifespan=lifespan,
    )
    app.state.quantdesk = ctx
    return app
