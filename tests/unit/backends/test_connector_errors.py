"""HttpConnector: what an upstream's error answer becomes (message, code, param, status, retry), per protocol.

Driven through the connector against an in-process fake session (no sockets), so the tests hold
wherever the sniffing of each protocol's error body lives (the connector today, each codec later).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import aiohttp
import orjson
import pytest
from fake_aiohttp import FakePool, FakeResponse, FakeSession, connector, drain, endpoint, request

from lip.backends.connector import HttpConnector
from lip.core.errors import ProxyError, UpstreamStatus, UpstreamUnreachable
from lip.protocols.anthropic.codec import AnthropicCodec
from lip.protocols.gemini.codec import GeminiCodec
from lip.protocols.openai_chat.codec import OpenAICodec
from lip.protocols.openai_responses.codec import ResponsesCodec

KEY = "sk-upstream-key-0001"

GEMINI_QUOTA = {"error": {"code": 429, "message": "Quota exceeded for model", "status": "RESOURCE_EXHAUSTED",
                          "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]}}


def failure(codec: Any, status: int, body: bytes, headers: dict[str, str] | None = None,
            **options: Any) -> ProxyError:
    conn, _ = connector(codec, FakeResponse(status, body, headers), **options)
    with pytest.raises(ProxyError) as caught:
        asyncio.run(drain(conn))
    return caught.value


def fields(error: ProxyError) -> tuple[int, str, str, str | None]:
    return error.status, error.message, error.code, error.param


# (codec, status, body) -> (status, message, code, param)
CASES: list[tuple[Any, int, Any, tuple[int, str, str, str | None]]] = [
    (OpenAICodec(), 404, {"error": {"message": "The model 'x' does not exist", "type": "invalid_request_error",
                                    "param": "model", "code": "model_not_found"}},
     (404, "The model 'x' does not exist", "model_not_found", "model")),
    (OpenAICodec(), 500, {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}},
     (500, "boom", "server_error", None)),  # no code: the type names it
    (AnthropicCodec(), 529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
     (529, "Overloaded", "overloaded_error", None)),
    (AnthropicCodec(), 400, {"type": "error", "error": {"type": "invalid_request_error",
                                                        "message": "max_tokens: required"}},
     (400, "max_tokens: required", "invalid_request_error", None)),
    (GeminiCodec(), 429, GEMINI_QUOTA, (429, "Quota exceeded for model", "RESOURCE_EXHAUSTED", None)),
    (GeminiCodec(), 429, [GEMINI_QUOTA], (429, "Quota exceeded for model", "RESOURCE_EXHAUSTED", None)),
    (GeminiCodec(), 400, [{"error": {"code": 400, "message": "API key not valid", "status": "INVALID_ARGUMENT"}}],
     (400, "API key not valid", "INVALID_ARGUMENT", None)),
    (ResponsesCodec(), 400, {"error": {"message": "Unsupported parameter: 'temperature'",
                                       "type": "invalid_request_error", "param": "temperature",
                                       "code": "unsupported_parameter"}},
     (400, "Unsupported parameter: 'temperature'", "unsupported_parameter", "temperature")),
    (OpenAICodec(), 401, {"detail": "Not authenticated"}, (401, "Not authenticated", "upstream_error", None)),
    (OpenAICodec(), 400, {"error": "model is required"}, (400, "model is required", "upstream_error", None)),
    (OpenAICodec(), 422, {"detail": {"message": "bad field", "param": "messages"}},
     (422, "bad field", "upstream_error", "messages")),
]


@pytest.mark.parametrize(("codec", "status", "body", "expected"), CASES)
def test_each_protocols_error_body_gives_message_code_and_param(codec: Any, status: int, body: Any,
                                                                expected: tuple[int, str, str, str | None]) -> None:
    error = failure(codec, status, orjson.dumps(body))
    assert isinstance(error, UpstreamStatus)
    assert fields(error) == expected


@pytest.mark.parametrize("codec", [OpenAICodec(), AnthropicCodec(), GeminiCodec(), ResponsesCodec()])
def test_a_body_that_is_not_json_is_passed_on_as_text(codec: Any) -> None:
    error = failure(codec, 502, b"  <html><body>502 Bad Gateway</body></html>\n")
    assert fields(error) == (502, "<html><body>502 Bad Gateway</body></html>", "upstream_error", None)
    long = failure(codec, 500, b"x" * 3000 + b"{")
    assert long.message == "x" * 500  # the first 500 bytes of a text body


@pytest.mark.parametrize(("status", "code"), [(503, "upstream_error"), (429, "rate_limit_exceeded"),
                                              (400, "upstream_error")])
def test_an_empty_or_silent_body_names_the_backend_and_status(status: int, code: str) -> None:
    for body in (b"", b"{}", b'{"error": {"code": 7}}', b"[]", b"null"):
        error = failure(OpenAICodec(), status, body)
        assert fields(error) == (status, f"backend 'up' answered HTTP {status}", code, None), body


def test_retryable_follows_the_upstream_status() -> None:
    assert [failure(OpenAICodec(), s, b"").retryable for s in (400, 401, 404, 408, 409, 429, 500, 503)] == [
        False, False, False, True, True, True, True, True]


def test_a_status_beyond_599_becomes_a_bad_gateway() -> None:
    assert failure(OpenAICodec(), 600, b'{"error": {"message": "odd"}}').status == 502


def test_retry_after_comes_from_the_header_else_from_geminis_retry_info() -> None:
    body = orjson.dumps(GEMINI_QUOTA)
    assert failure(GeminiCodec(), 429, body).retry_after == 12.0
    assert failure(GeminiCodec(), 429, orjson.dumps([GEMINI_QUOTA])).retry_after == 12.0
    assert failure(GeminiCodec(), 429, body, {"Retry-After": "3"}).retry_after == 3.0
    assert failure(GeminiCodec(), 429, body, {"retry-after-ms": "250"}).retry_after == 0.25
    assert failure(OpenAICodec(), 429, b"").retry_after is None


def test_a_429_with_a_spare_key_is_retried_at_once() -> None:
    one = failure(OpenAICodec(), 429, b"", {"Retry-After": "30"})
    assert one.retry_after == 30.0  # the only key rests: wait as the upstream said
    two = failure(OpenAICodec(), 429, b"", {"Retry-After": "30"}, ep=endpoint((KEY, "sk-upstream-key-0002")))
    assert two.retry_after == 0.0  # another key is ready


def test_the_next_request_uses_the_spare_key_while_the_limited_one_rests() -> None:
    second = "sk-upstream-key-0002"
    session = FakeSession([FakeResponse(429, b"", {"Retry-After": "30"}),
                           FakeResponse(500, b""), FakeResponse(500, b"")])
    conn = HttpConnector(endpoint((KEY, second)), FakePool(session), OpenAICodec())
    for _ in range(3):
        with pytest.raises(UpstreamStatus):
            asyncio.run(drain(conn))
    keys = [s.headers["Authorization"] for s in session.sent]
    assert keys == [f"Bearer {KEY}", f"Bearer {second}", f"Bearer {second}"]  # the limited key rests 30 s


# ---- what reaches a client is masked and bounded ----------------------------------------------------


def test_keys_and_header_secrets_in_an_error_body_are_masked() -> None:
    header_secret = "hdr-secret-value-42"
    body = {"error": {"message": f"key {KEY} rejected; header {header_secret}", "code": f"bad_{KEY}",
                      "param": f"p{KEY}"}}
    error = failure(OpenAICodec(), 401, orjson.dumps(body), ep=endpoint(secrets=(header_secret,)))
    assert fields(error) == (401, "key *** rejected; header ***", "bad_***", "p***")


def test_a_short_key_is_masked_too() -> None:
    error = failure(OpenAICodec(), 401, b'{"error": {"message": "key abc is wrong"}}', ep=endpoint(("abc",)))
    assert error.message == "key *** is wrong"


def test_long_messages_and_codes_are_clipped() -> None:
    body = {"error": {"message": "m" * 5000, "code": "c" * 300, "param": "p" * 300}}
    error = failure(OpenAICodec(), 400, orjson.dumps(body))
    assert error.message == "m" * 1999 + "…" and len(error.message) == 2000
    assert error.code == "c" * 99 + "…"
    assert error.param == "p" * 99 + "…"


def test_an_error_in_a_200_body_is_masked_too() -> None:
    anthropic = {"type": "error", "error": {"type": "overloaded_error", "message": f"busy ({KEY})"}}
    error = failure(AnthropicCodec(), 200, orjson.dumps(anthropic))
    assert fields(error) == (529, "busy (***)", "overloaded_error", None)
    gemini = {"error": {"code": 403, "message": f"denied for {KEY}", "status": "PERMISSION_DENIED"}}
    error = failure(GeminiCodec(), 200, orjson.dumps(gemini))
    assert fields(error) == (403, "denied for ***", "PERMISSION_DENIED", None)


def test_a_responses_upstreams_failure_in_a_200_body_or_stream_is_masked() -> None:
    body = {"error": {"message": f"failed {KEY}", "code": "server_error"}}
    assert fields(failure(ResponsesCodec(), 200, orjson.dumps(body))) == (502, "failed ***", "server_error", None)
    failed = {"type": "response.failed", "response": {"id": "r", "status": "failed", "output": [],
                                                      "error": {"code": "server_error", "message": f"boom {KEY}"}}}
    event = b"event: response.failed\ndata: " + orjson.dumps(failed) + b"\n\n"
    conn, _ = connector(ResponsesCodec(), FakeResponse(200, [event]))
    with pytest.raises(ProxyError) as caught:
        asyncio.run(drain(conn, request(stream=True)))
    assert fields(caught.value) == (502, "backend 'up': boom ***", "server_error", None)


def test_an_error_event_mid_stream_names_the_backend_and_is_masked() -> None:
    chunk = b'event: error\ndata: {"type": "error", "error": {"type": "api_error", "message": "lost ' + \
        KEY.encode() + b'"}}\n\n'
    conn, _ = connector(AnthropicCodec(), FakeResponse(200, [chunk]))
    with pytest.raises(ProxyError) as caught:
        asyncio.run(drain(conn, request(stream=True)))
    assert caught.value.message == "backend 'up': lost ***"
    assert caught.value.retryable  # nothing reached the client yet


def test_an_unreachable_upstream_is_named_without_userinfo_or_key() -> None:
    class Refusing(FakeSession):
        def post(self, url: Any, **kwargs: Any) -> Any:
            raise aiohttp.ClientConnectionError(f"cannot connect (token {KEY})")

    ep = dataclasses.replace(endpoint(), base_url="https://user:pw@upstream.example/v1")
    conn = HttpConnector(ep, FakePool(Refusing([])), OpenAICodec())
    with pytest.raises(UpstreamUnreachable) as caught:
        asyncio.run(drain(conn))
    assert caught.value.message == ("backend 'up' is unreachable at https://upstream.example/v1/chat/completions: "
                                    "cannot connect (token ***)")
    assert caught.value.status == 502 and caught.value.retryable

