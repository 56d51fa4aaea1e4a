"""Google error envelopes ⇄ proxy errors: reading a Gemini upstream's error (a whole body, or an error
object in a stream), rendering one for a client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from lip.core.errors import LimitExceeded, ProxyError, UpstreamStatus
from lip.protocols.codecs import ErrorFields, json_error_fields

# google.rpc.Code names by HTTP status, as Google's APIs send them in error.status.
STATUS_NAMES: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
STATUS_CODES: Mapping[str, int] = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "UNKNOWN": 500, "INTERNAL": 500, "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
}


def error_from_wire(raw: Any) -> UpstreamStatus:
    """An ``{"error": {...}}`` object (in a stream, or a whole body) as a ProxyError."""
    error = raw if isinstance(raw, dict) else {"message": str(raw)}
    status_name = error.get("status")
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code <= 599 else STATUS_CODES.get(str(status_name), 502)
    return UpstreamStatus(str(error.get("message") or "upstream error"), status=status,
                          code=str(status_name or "upstream_error"))


def error_fields(raw: bytes) -> ErrorFields:
    """What a Gemini upstream's error body says: Google's ``{"error": {code, message, status, details}}``
    (sometimes wrapped in a list), its ``status`` as the code, and the wait a google.rpc.RetryInfo names
    (read by the shared ``json_error_fields``: Google's OpenAI-compatible endpoint sends the same)."""
    return json_error_fields(raw)


def error_body(error: ProxyError) -> dict[str, Any]:
    """Google's error envelope: code (HTTP status), message, status (google.rpc.Code name), details.

    details carries a google.rpc.ErrorInfo whose ``reason`` is the proxy's error code and whose
    ``metadata`` (string values) holds a limit error's model/limit/measured; a google.rpc.RetryInfo
    when a retry delay is known; a google.rpc.BadRequest naming the field when one is known.
    """
    status = error.status
    name = STATUS_NAMES.get(status) or ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    info: dict[str, Any] = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": error.code,
                            "domain": "lip"}
    if error.details:
        info["metadata"] = {str(k): v if isinstance(v, str) else orjson.dumps(v).decode()
                            for k, v in error.details.items()}
    details: list[dict[str, Any]] = [info]
    if error.param and not isinstance(error, LimitExceeded):
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": error.param, "description": error.message}]})
    if error.retry_after is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": f"{max(0.0, error.retry_after):.3f}".rstrip("0").rstrip(".") + "s"})
    return {"error": {"code": status, "message": error.message, "status": name, "details": details}}
