"""The envelopes' type words: each protocol names an error from its class and status (core has no words)."""

from __future__ import annotations

import orjson
import pytest

from lip.core.errors import (
    BackendUnavailable,
    Forbidden,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    PayloadTooLarge,
    ProxyError,
    RateLimited,
    RequestTimeout,
    ResponseTooLarge,
    TokenizerUnavailable,
    Unauthorized,
    UpstreamError,
    UpstreamMalformed,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from lip.protocols.anthropic.surface import render_error as anthropic_error
from lip.protocols.error_words import type_word
from lip.protocols.openai_envelope import error_type as openai_type
from lip.protocols.openai_envelope import render_error as chat_error

# what OpenAI's envelope has always said for each kind of error
OPENAI = [
    (InvalidRequest("x"), "invalid_request_error"),
    (LimitExceeded("x"), "invalid_request_error"),
    (Unauthorized("x"), "authentication_error"),
    (Forbidden("x"), "permission_error"),
    (NotFound("x"), "invalid_request_error"),
    (RequestTimeout("x"), "invalid_request_error"),
    (PayloadTooLarge("x"), "invalid_request_error"),
    (RateLimited("x"), "rate_limit_error"),
    (BackendUnavailable("x"), "api_error"),
    (UpstreamError("x"), "api_error"),
    (UpstreamUnreachable("x"), "api_error"),
    (UpstreamTimeout("x"), "api_error"),
    (UpstreamMalformed("x"), "api_error"),
    (ResponseTooLarge("x"), "api_error"),
    (TokenizerUnavailable("x"), "api_error"),
    (UpstreamStatus("x", status=429), "rate_limit_error"),
    (UpstreamStatus("x", status=400), "invalid_request_error"),
    (UpstreamStatus("x", status=401), "authentication_error"),
    (UpstreamStatus("x", status=404), "invalid_request_error"),
    (UpstreamStatus("x", status=500), "api_error"),
    (UpstreamStatus("x", status=529), "api_error"),
    (InvalidRequest("x", status=405, code="method_not_allowed"), "invalid_request_error"),
    (ProxyError("x"), "api_error"),
    (ProxyError("x", status=502, code="upstream_incomplete"), "api_error"),
    (ProxyError("x", status=429), "api_error"),  # a failure of the proxy's own that passes a status on
]


@pytest.mark.parametrize(("error", "word"), OPENAI, ids=lambda v: v if isinstance(v, str) else repr(v))
def test_openai_type_words(error: ProxyError, word: str) -> None:
    assert openai_type(error) == word


def test_a_copy_keeps_its_word_and_a_new_status_may_change_it() -> None:
    error = UpstreamStatus("x", status=400)
    assert openai_type(error.but(message="y")) == "invalid_request_error"
    assert openai_type(error.but(status=429)) == "rate_limit_error"


@pytest.mark.parametrize(("status", "word"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (404, "not_found_error"),
    (413, "request_too_large"), (418, "invalid_request_error"), (429, "rate_limit_error"),
    (500, "api_error"), (503, "api_error"), (529, "overloaded_error"),
])
def test_anthropic_words_from_its_table_and_the_shared_rule(status: int, word: str) -> None:
    body = orjson.loads(anthropic_error(UpstreamStatus("x", status=status))[1])
    assert body["error"]["type"] == word


def test_type_word_falls_back_by_class_of_status() -> None:
    assert [type_word(s, {}) for s in (400, 499, 500, 599, 302)] == [
        "invalid_request_error", "invalid_request_error", "api_error", "api_error", "api_error"]
    assert type_word(404, {404: "not_found_error"}) == "not_found_error"


def test_the_chat_envelope_carries_the_word() -> None:
    status, raw = chat_error(Unauthorized("no key", param="authorization"))
    assert (status, orjson.loads(raw)) == (401, {"error": {
        "message": "no key", "type": "authentication_error", "param": "authorization", "code": "invalid_api_key"}})
