"""Errors as the clients expect them: the OpenAI error shape with the right HTTP status.

OpenAI clients read `{"error": {"message", "type", "param", "code"}}` and pick an exception by
the status (400 BadRequestError, 401 AuthenticationError, 404 NotFoundError, 503 ...). Anthropic
clients read `{"type": "error", "error": {"type", "message"}}`, so /v1/messages answers in that
shape. Either way the message is a sentence for the person using the client; a bug of ours is
"an internal error" with the exception's type and text, never a traceback.
"""

from __future__ import annotations

from typing import Any

# OpenAI's `type` for a status; Anthropic's names for the same statuses.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    503: "server_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    503: "overloaded_error",
}


class ApiError(Exception):
    """An answer other than success: status, the sentence, and the OpenAI `code` and `param`."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    def openai_body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": _OPENAI_TYPES.get(self.status, "server_error"),
                "param": self.param,
                "code": self.code,
            }
        }

    def anthropic_body(self) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {"type": _ANTHROPIC_TYPES.get(self.status, "api_error"), "message": self.message},
        }


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, code=code, param=param)


def unknown_model(name: str) -> ApiError:
    return ApiError(
        404,
        f"The model '{name}' does not exist; GET /v1/models lists the models this server has",
        code="model_not_found",
        param="model",
    )


def overloaded(message: str, retry_after_s: int = 2) -> ApiError:
    return ApiError(503, message, code="overloaded", headers={"Retry-After": str(retry_after_s)})


def context_too_long(n_ctx: int, prompt_tokens: int, completion_tokens: int | None) -> ApiError:
    """OpenAI's wording for the same failure, with the counts a client needs to trim its request."""
    if completion_tokens is None:
        detail = f"However, your messages resulted in {prompt_tokens} tokens."
    else:
        detail = (
            f"However, you requested {prompt_tokens + completion_tokens} tokens "
            f"({prompt_tokens} in the messages, {completion_tokens} in the completion)."
        )
    return ApiError(
        400,
        f"This model's maximum context length is {n_ctx} tokens. {detail} "
        "Please reduce the length of the messages or completion.",
        code="context_length_exceeded",
        param="messages",
    )


def internal(e: BaseException) -> ApiError:
    """Our bug, said without a traceback (the server log keeps the details)."""
    return ApiError(500, f"an internal error ({type(e).__name__}: {e}); the server log has the details")
