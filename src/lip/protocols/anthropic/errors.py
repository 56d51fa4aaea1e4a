"""Anthropic error envelopes ⇄ proxy errors: reading an upstream's error, rendering one for a client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lip.core.errors import LimitExceeded, ProxyError, UpstreamStatus
from lip.protocols.error_words import type_word

ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}
ERROR_STATUSES = {kind: status for status, kind in ERROR_TYPES.items()}


def error_from_wire(body: Mapping[str, Any]) -> UpstreamStatus:
    """An ``error`` event (or body) as the error a 4xx/5xx answer with that type would have been."""
    error = body.get("error")
    error = error if isinstance(error, dict) else {}
    kind = error.get("type") if isinstance(error.get("type"), str) else "api_error"
    message = error.get("message") if isinstance(error.get("message"), str) else "upstream error"
    return UpstreamStatus(str(message), status=ERROR_STATUSES.get(str(kind), 502), code=str(kind))


def error_type(status: int) -> str:
    return type_word(status, ERROR_TYPES)


def error_body(error: ProxyError) -> dict[str, Any]:
    """Anthropic's envelope, plus the proxy's ``code`` (and ``details``) inside ``error``.

    A limit error also carries the top-level ``detail`` object every surface gives it.
    """
    inner: dict[str, Any] = {"type": error_type(error.status), "message": error.message, "code": error.code}
    if error.details:
        inner["details"] = error.details
    body: dict[str, Any] = {"type": "error", "error": inner}
    if isinstance(error, LimitExceeded):
        body["detail"] = {"code": error.code, "message": error.message, "details": error.details or {}}
    return body
