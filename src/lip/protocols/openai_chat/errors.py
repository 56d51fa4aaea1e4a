"""OpenAI Chat Completions errors both ways: a ProxyError in OpenAI's envelope (as an answer or as the
stream's last event) for a client; an upstream's error body or in-stream error object as a ProxyError."""

from __future__ import annotations

from typing import Any

import orjson

from lip.core.errors import ProxyError
from lip.core.sse import encode
from lip.protocols import openai_envelope
from lip.protocols.codecs import ErrorFields, json_error_fields


def render_error(error: ProxyError) -> tuple[int, bytes]:
    return openai_envelope.render_error(error)


def stream_error(error: ProxyError) -> bytes:
    """The event a client's stream ends with when the upstream fails after the first byte."""
    return encode(orjson.dumps(openai_envelope.error_body(error)))


def error_fields(raw: bytes) -> ErrorFields:
    """What an upstream's error body says (``{"error": {message, type, param, code}}`` and its kin)."""
    return json_error_fields(raw)


def stream_error_of(chunk: dict[str, Any]) -> ProxyError | None:
    """The error an upstream's stream chunk carries instead of choices, or None."""
    if "error" not in chunk or chunk.get("choices"):
        return None
    error = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
    return ProxyError(str(error.get("message") or "upstream error"),
                      code=str(error.get("code") or "upstream_error"), status=502)
