"""OpenAI's error envelope and wording, shared by the Chat Completions and Responses folders.

``{"error": {message, type, param, code}}`` for an answer (limit errors add the ``detail`` body of
the user's document), and the same four fields for the ``error`` event a Responses stream ends with.
``error_type`` is the one place the envelope's ``type`` word is chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from lip.core.errors import InvalidRequest, LimitExceeded, ProxyError
from lip.protocols.error_words import type_word

# the statuses with a type word of their own (the rest: invalid_request_error for a 4xx, else api_error)
TYPES: Mapping[int, str] = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def error_type(error: ProxyError) -> str:
    """OpenAI's ``type`` word for ``error`` (``invalid_request_error``, ``rate_limit_error``, ...): by its
    status, except that an error of no more precise kind than ``ProxyError`` (the proxy's own failure,
    whatever status it passes on) is an ``api_error``."""
    if type(error) is ProxyError:
        return "api_error"
    return type_word(error.status, TYPES)


def error_detail(error: ProxyError) -> dict[str, Any]:
    """The envelope's inner object: what the SDKs read to raise their error."""
    return {"message": error.message, "type": error_type(error), "param": error.param, "code": error.code}


def error_body(error: ProxyError) -> dict[str, Any]:
    """OpenAI's error envelope; limit errors also carry the ``detail`` body of the user's document."""
    body: dict[str, Any] = {"error": error_detail(error)}
    if isinstance(error, LimitExceeded):
        body["detail"] = {"code": error.code, "message": error.message, "details": error.details or {}}
    return body


def render_error(error: ProxyError) -> tuple[int, bytes]:
    """The HTTP status and JSON body of ``error`` in OpenAI's envelope."""
    return error.status, orjson.dumps(error_body(error))


def invalid_value(param: str, expected: str) -> InvalidRequest:
    """A request field that is not what OpenAI's APIs take, in their words."""
    return InvalidRequest(f"Invalid value for '{param}': expected {expected}.", param=param, code="invalid_value")


def missing_parameter(param: str) -> InvalidRequest:
    """A required request field that is absent, in OpenAI's words."""
    return InvalidRequest(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
