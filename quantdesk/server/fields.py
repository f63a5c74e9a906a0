"""Reading a request's JSON fields with 400 answers that name the field, in both APIs.

Hand-written rather than a schema library: the rules are few, and each failure should say in a
sentence which field is wrong and what it may be.
"""

from __future__ import annotations

from typing import Any

from quantdesk.server.errors import bad_request


class Fields:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def has(self, name: str) -> bool:
        return self.body.get(name) is not None

    def number(self, name: str, low: float, high: float) -> float | None:
        value = self.body.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad_request(f"'{name}' must be a number", param=name)
        if not low <= value <= high:
            raise bad_request(f"'{name}' must be between {low:g} and {high:g}, not {value:g}", param=name)
        return float(value)

    def integer(self, name: str, low: int, high: int | None = None) -> int | None:
        value = self.body.get(name)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_request(f"'{name}' must be a whole number", param=name)
        if value < low or (high is not None and value > high):
            limit = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise bad_request(f"'{name}' must be {limit}, not {value}", param=name)
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.body.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise bad_request(f"'{name}' must be true or false", param=name)
        return value

    def string(self, name: str, required: bool = False) -> str | None:
        value = self.body.get(name)
        if value is None:
            if required:
                raise bad_request(f"'{name}' is required", param=name)
            return None
        if not isinstance(value, str):
            raise bad_request(f"'{name}' must be a string", param=name)
        return value

    def strings(self, name: str, most: int = 16) -> list[str]:
        """A string or a list of strings (OpenAI's `stop`, Anthropic's `stop_sequences`)."""
        value = self.body.get(name)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            if len(value) > most:
                raise bad_request(f"'{name}' may hold at most {most} sequences", param=name)
            return list(value)
        raise bad_request(f"'{name}' must be a string or a list of strings", param=name)

    def model(self) -> str:
        value = self.body.get("model")
        if not isinstance(value, str) or not value:
            raise bad_request("'model' is required: the id of a model from GET /v1/models", param="model")
        return value


def text_of(content: Any, param: str) -> str:
    """A message's content as text: a string, or a list of text parts (OpenAI's {"type": "text",
    "text"}, Anthropic's the same, Responses' "input_text"/"output_text")."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
                continue
            if not isinstance(part, dict):
                raise bad_request("each content part must be an object", param=param)
            kind = part.get("type")
            if kind in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif kind in ("image_url", "image", "input_image", "input_audio", "file", "input_file", "document"):
                raise bad_request(
                    f"content of type '{kind}' is not supported: these models read text only", param=param
                )
            else:
                raise bad_request(f"unknown content part type {kind!r}", param=param)
        return "".join(parts)
    raise bad_request("a message's content must be a string or a list of parts", param=param)
