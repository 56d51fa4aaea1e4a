"""lip.protocols.openai_responses.errors and the surface's response.deleted: a failed stream's ending,
an unfinished answer, an upstream's failed response and error event."""

from __future__ import annotations

import orjson

from lip.core.errors import InvalidRequest, ProxyError, RateLimited, UpstreamError
from lip.protocols.openai_responses import errors
from lip.protocols.openai_responses.surface import OpenAIResponses


def test_a_failed_response_says_rate_limit_or_server_error() -> None:
    assert errors.failed_object(RateLimited("slow down")) == {"code": "rate_limit_exceeded", "message": "slow down"}
    assert errors.failed_object(UpstreamError("boom")) == {"code": "server_error", "message": "boom"}


def test_the_error_event_carries_openais_fields_and_an_error_object() -> None:
    event = errors.error_event(InvalidRequest("bad", param="input", code="invalid_value"))
    assert event == {"code": "invalid_value", "message": "bad", "param": "input",
                     "error": {"type": "invalid_request_error", "code": "invalid_value", "message": "bad",
                               "param": "input"}}


def test_an_unfinished_answer_is_an_upstream_error() -> None:
    assert errors.unfinished(None).code == "upstream_incomplete"
    assert errors.unfinished("error").code == "upstream_error"


def test_an_upstreams_failed_response_and_error_event() -> None:
    failed = errors.error_of({"status": "failed", "error": {"code": "server_error", "message": "down"}})
    assert (failed.status, failed.code, failed.message) == (502, "server_error", "down")
    unnamed = errors.error_of({"status": "failed", "error": None})
    assert (unnamed.code, unnamed.message) == ("upstream_error", "the upstream's response failed")
    event = errors.event_error({"type": "error", "code": "rate_limit_exceeded", "message": "later"})
    assert isinstance(event, ProxyError) and (event.status, event.code) == (502, "rate_limit_exceeded")


def test_a_deleted_response() -> None:
    assert orjson.loads(OpenAIResponses.render_deleted("resp_1")) == {
        "id": "resp_1", "object": "response.deleted", "deleted": True}
