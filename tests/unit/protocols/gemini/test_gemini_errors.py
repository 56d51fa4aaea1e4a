"""lip.protocols.gemini.errors: Google error envelopes rendered for clients."""

from __future__ import annotations

import orjson
import pytest

from lip.core.errors import InvalidRequest, LimitExceeded, ProxyError, RateLimited
from lip.protocols.gemini.errors import error_body
from lip.protocols.gemini.surface import GeminiGenerate


def test_limit_error_envelope() -> None:
    error = LimitExceeded("Input token limit exceeded", code="input_limit_exceeded", param="messages",
                          details={"model": "tiny", "limit": 50, "measured": 75})
    status, raw = GeminiGenerate().render_error(error)
    assert status == 400
    assert orjson.loads(raw) == {"error": {
        "code": 400, "message": "Input token limit exceeded", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "input_limit_exceeded",
                     "domain": "lip", "metadata": {"model": "tiny", "limit": "50", "measured": "75"}}],
    }}


@pytest.mark.parametrize(("status", "name"), [
    (400, "INVALID_ARGUMENT"), (401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED"), (404, "NOT_FOUND"),
    (429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"), (503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED"),
])
def test_error_status_names(status: int, name: str) -> None:
    body = orjson.loads(GeminiGenerate().render_error(ProxyError("x", status=status))[1])
    assert (body["error"]["code"], body["error"]["status"]) == (status, name)


def test_rate_limit_error_carries_retry_info_and_field_errors_a_bad_request() -> None:
    body = error_body(RateLimited("slow down", retry_after=2.0))
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"} in body["error"]["details"]
    body = error_body(InvalidRequest("bad", param="contents[0].role"))
    violation = body["error"]["details"][1]
    assert violation["fieldViolations"] == [{"field": "contents[0].role", "description": "bad"}]
