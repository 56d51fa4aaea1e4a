"""lip.protocols.anthropic.response and errors: upstream Message → canonical events, canonical answer → client
Message, error envelopes."""

from __future__ import annotations

import orjson
import pytest

from lip.core.errors import (
    BackendUnavailable,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    ProxyError,
    RateLimited,
    UpstreamStatus,
    UpstreamTimeout,
)
from lip.core.model import (
    ChatResponse,
    Finish,
    ProviderState,
    ReasoningDelta,
    ResponseStart,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from lip.protocols.anthropic.codec import AnthropicCodec
from lip.protocols.anthropic.response import (
    response_to_wire,
    stop_reason_from_wire,
    tool_input,
)
from lip.protocols.anthropic.surface import AnthropicMessages
from lip.protocols.base import Incoming
from unit.protocols.anthropic.anthropic_cases import (
    parse,
    user,
)

# ---- upstream → canonical ------------------------------------------------------------------------


def test_message_object_as_events() -> None:
    events = AnthropicCodec().events({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Think.", "signature": "sig"},
            {"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 10, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 100,
                  "output_tokens": 7},
    }, "fallback")
    assert isinstance(events[0], ResponseStart)
    assert (events[0].id, events[0].model) == ("msg_01", "claude-sonnet-4-5")
    assert events[1:] == [
        ReasoningDelta("Think.", ProviderState("anthropic", "sig")), TextDelta("Calling."),
        ToolCallDelta(index=0, id="toolu_1", name="weather", arguments='{"city":"Paris"}'),
        Finish("tool_calls"),
        UsageReport(Usage(input_tokens=115, output_tokens=7, cached_tokens=100, cache_write_tokens=5)),
    ]


@pytest.mark.parametrize(("reason", "canonical"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), ("model_context_window_exceeded", "length"), ("pause_turn", "stop"),
])
def test_stop_reasons(reason: str, canonical: str) -> None:
    assert stop_reason_from_wire(reason) == canonical


def test_error_body_from_upstream_raises() -> None:
    with pytest.raises(UpstreamStatus) as caught:
        AnthropicCodec().events({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "m")
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (529, "overloaded_error", True)


# ---- canonical → client (responses, streams, errors) -------------------------------------------


def test_render_response() -> None:
    response = ChatResponse(id="chatcmpl-1", model="gpt-4o", text="It is sunny.", reasoning="Look it up.",
                            reasoning_signature=ProviderState("anthropic", "sig"), finish_reason="tool_calls",
                            tool_calls=[ToolCall("call_1", "weather", '{"city":"Paris"}')],
                            usage=Usage(input_tokens=120, output_tokens=30, cached_tokens=100))
    request = parse(messages=[user("x")])
    body = orjson.loads(AnthropicMessages().render_response(response, request, Incoming(b"", {}, {}, {})))
    assert body == {
        "id": "msg_chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-4o",
        "content": [
            {"type": "thinking", "thinking": "Look it up.", "signature": "sig"},
            {"type": "text", "text": "It is sunny."},
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 30, "cache_read_input_tokens": 100},
    }


@pytest.mark.parametrize(("finish", "reason"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal"),
    (None, "end_turn"),
])
def test_render_stop_reasons(finish: str | None, reason: str) -> None:
    body = response_to_wire(ChatResponse(id="msg_1", finish_reason=finish), "m")
    assert body["stop_reason"] == reason
    assert body["content"] == [{"type": "text", "text": ""}]
    assert body["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert body["model"] == "m" and body["id"] == "msg_1"


def test_tool_input_that_is_not_an_object_is_kept_raw() -> None:
    assert tool_input("") == {}
    assert tool_input('{"a": [1]}') == {"a": [1]}
    assert tool_input('{"a": ') == {"_raw_arguments": '{"a": '}


@pytest.mark.parametrize(("error", "status", "kind"), [
    (InvalidRequest("messages: bad", param="messages"), 400, "invalid_request_error"),
    (ProxyError("no key", status=401, code="invalid_api_key"), 401, "authentication_error"),
    (ProxyError("denied", status=403), 403, "permission_error"),
    (NotFound("Unknown backend 'x'"), 404, "not_found_error"),
    (ProxyError("too big", status=413), 413, "request_too_large"),
    (RateLimited("slow down", retry_after=2), 429, "rate_limit_error"),
    (ProxyError("boom"), 500, "api_error"),
    (BackendUnavailable("no key set"), 503, "api_error"),
    (UpstreamTimeout("late"), 504, "timeout_error"),
    (UpstreamStatus("Overloaded", status=529, code="overloaded_error"), 529, "overloaded_error"),
    (UpstreamStatus("Conflict", status=409), 409, "invalid_request_error"),
])
def test_render_error(error: ProxyError, status: int, kind: str) -> None:
    got_status, raw = AnthropicMessages().render_error(error)
    assert got_status == status
    assert orjson.loads(raw) == {"type": "error", "error": {"type": kind, "message": error.message,
                                                            "code": error.code}}


def test_render_limit_error() -> None:
    details = {"model": "tiny", "limit": 10, "measured": 25}
    error = LimitExceeded("Input token limit exceeded", code="input_limit_exceeded", param="messages",
                          details=details)
    status, raw = AnthropicMessages().render_error(error)
    assert status == 400
    assert orjson.loads(raw) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "Input token limit exceeded",
                  "code": "input_limit_exceeded", "details": details},
        "detail": {"code": "input_limit_exceeded", "message": "Input token limit exceeded", "details": details},
    }


def test_render_count() -> None:
    assert orjson.loads(AnthropicMessages().render_count(42, parse(messages=[user("x")]))) == {"input_tokens": 42}
