"""Responses errors both ways: a ProxyError in OpenAI's envelope (an answer), as a failed response's
``error`` and the stream's ``error`` event, for a client; an upstream's failed response, ``error`` event
or error body as a ProxyError."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lip.core.errors import ProxyError, UpstreamError
from lip.protocols import openai_envelope
from lip.protocols.codecs import ErrorFields, json_error_fields


def render_error(error: ProxyError) -> tuple[int, bytes]:
    return openai_envelope.render_error(error)


def error_object(code: str, message: str) -> dict[str, Any]:
    """The ``error`` of a failed response object."""
    return {"code": code, "message": message}


def failed_object(error: ProxyError) -> dict[str, Any]:
    """The ``error`` of the ``response.failed`` a stream ends with."""
    return error_object("rate_limit_exceeded" if error.status == 429 else "server_error", error.message)


def error_event(error: ProxyError) -> dict[str, Any]:
    """The fields of the ``error`` event after ``response.failed``: OpenAI's code, message and param, and
    also an ``error`` object, which is what makes the OpenAI SDKs raise instead of returning a partial answer."""
    detail = {"type": openai_envelope.error_type(error), "code": error.code, "message": error.message,
              "param": error.param}
    return {"code": error.code, "message": error.message, "param": error.param, "error": detail}


def unfinished(finish_reason: str | None) -> UpstreamError:
    if finish_reason is None:
        return UpstreamError("The backend ended its answer without saying how it finished.",
                             code="upstream_incomplete")
    return UpstreamError("The backend ended its answer with an error.", code="upstream_error")


def error_of(response: Mapping[str, Any]) -> ProxyError:
    error = response.get("error") if isinstance(response.get("error"), Mapping) else {}
    assert isinstance(error, Mapping)
    return ProxyError(str(error.get("message") or "the upstream's response failed"),
                      code=str(error.get("code") or "upstream_error"), status=502)


def event_error(data: Mapping[str, Any]) -> ProxyError:
    """An upstream stream's ``error`` event as a ProxyError."""
    return ProxyError(str(data.get("message") or "upstream error"), code=str(data.get("code") or "upstream_error"),
                      status=502)


def error_fields(raw: bytes) -> ErrorFields:
    """What an upstream's error body says (OpenAI's ``{"error": {...}}`` and its kin)."""
    return json_error_fields(raw)
