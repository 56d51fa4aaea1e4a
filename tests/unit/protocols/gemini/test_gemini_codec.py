"""lip.protocols.gemini.codec and response: URLs, auth, and Gemini upstream answers (whole or streamed) as events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from lip.backends.connector import UpstreamMalformed
from lip.core.errors import ProxyError
from lip.core.model import (
    Finish,
    ProviderState,
    ReasoningDelta,
    ResponseStart,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from lip.core.sse import SSEDecoder
from lip.protocols.gemini.codec import GeminiCodec


def test_codec_url_and_auth() -> None:
    codec = GeminiCodec()
    base = "https://generativelanguage.googleapis.com/v1beta"
    assert codec.url(base, "gemini-2.5-pro", False) == base + "/models/gemini-2.5-pro:generateContent"
    streamed = codec.url(base, "models/gemini-2.5-pro", True)
    assert streamed == base + "/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    assert codec.default_auth("k") == {"x-goog-api-key": "k"}


# ---- Gemini upstream answers → events -------------------------------------------------------------


def chunk(parts: list[dict[str, Any]], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    body: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash", "responseId": "resp-1"}
    if usage:
        body["usageMetadata"] = usage
    return b"data: " + orjson.dumps(body) + b"\r\n\r\n"


def decode(raw: bytes, pieces: int = 7) -> tuple[list[StreamEvent], bool]:
    decoder = GeminiCodec().decoder("fallback")
    reader = SSEDecoder()
    events: list[StreamEvent] = []
    size = max(1, len(raw) // pieces)
    for start in range(0, len(raw), size):
        for sse in reader.feed(raw[start:start + size]):
            result = decoder.feed(sse)
            assert result is not None, "a Gemini stream has no end marker"
            events.extend(result)
    for sse in reader.finish():
        events.extend(decoder.feed(sse) or [])
    return events, decoder.finished


def test_decoder_on_a_stream_with_thoughts_text_function_calls_and_usage() -> None:
    usage = {"promptTokenCount": 12, "candidatesTokenCount": 3, "totalTokenCount": 15}
    raw = (
        chunk([{"text": "thinking", "thought": True, "thoughtSignature": "c2ln"}], usage=usage)
        + chunk([{"text": "Let me check."}], usage=usage)
        + chunk([{"functionCall": {"name": "get_weather", "args": {"city": "Paris", "days": [1, 2]}},
                  "thoughtSignature": "AB/+"},
                 {"functionCall": {"id": "given", "name": "get_time", "args": {}}}],
                finish="STOP",
                usage={"promptTokenCount": 12, "candidatesTokenCount": 20, "thoughtsTokenCount": 30,
                       "cachedContentTokenCount": 4, "totalTokenCount": 62})
    )
    events, finished = decode(raw)
    assert finished
    start = events[0]
    assert isinstance(start, ResponseStart) and (start.id, start.model) == ("resp-1", "gemini-2.5-flash")
    first_call = events[3]
    assert isinstance(first_call, ToolCallDelta) and first_call.id is not None
    assert first_call.id.startswith("call_") and "__thought__" not in first_call.id, "a clean id"
    assert events[1:] == [
        ReasoningDelta("thinking", ProviderState("gemini", "c2ln")),
        TextDelta("Let me check."),
        ToolCallDelta(index=0, id=first_call.id, name="get_weather", arguments='{"city":"Paris","days":[1,2]}',
                      signature=ProviderState("gemini", "AB/+")),
        ToolCallDelta(index=1, id="given", name="get_time", arguments="{}"),
        Finish("tool_calls"),
        UsageReport(Usage(input_tokens=12, output_tokens=50, cached_tokens=4, reasoning_tokens=30)),
    ]


@pytest.mark.parametrize(("reason", "expected"), [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"), ("MALFORMED_FUNCTION_CALL", "error"), ("OTHER", "stop"),
])
def test_finish_reasons(reason: str, expected: str) -> None:
    events, finished = decode(chunk([{"text": "x"}], finish=reason))
    assert finished
    assert Finish(expected) in events


def test_stream_without_finish_reason_is_not_finished() -> None:
    events, finished = decode(chunk([{"text": "partial"}]))
    assert not finished
    assert TextDelta("partial") in events


def test_error_object_in_the_stream_raises() -> None:
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    raw = chunk([{"text": "a"}]) + b"data: " + orjson.dumps(error) + b"\n\n"
    with pytest.raises(ProxyError) as caught:
        decode(raw, pieces=1)
    assert (caught.value.status, caught.value.code) == (503, "UNAVAILABLE")
    assert "overloaded" in caught.value.message


def test_malformed_chunk_raises() -> None:
    with pytest.raises(UpstreamMalformed):
        decode(b"data: {oops\n\n")


def test_whole_answer_events_and_blocked_prompt() -> None:
    codec = GeminiCodec()
    body = orjson.loads(chunk([{"text": "Hi"}], finish="MAX_TOKENS",
                              usage={"promptTokenCount": 2, "candidatesTokenCount": 1})[6:])
    assert codec.events(body, "m")[1:] == [TextDelta("Hi"), Finish("length"), UsageReport(Usage(2, 1))]
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}
    assert codec.events(blocked, "m")[1:] == [Finish("content_filter"), UsageReport(Usage(3, 0))]
    with pytest.raises(ProxyError) as caught:
        codec.events({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}, "m")
    assert caught.value.status == 429 and caught.value.retryable
