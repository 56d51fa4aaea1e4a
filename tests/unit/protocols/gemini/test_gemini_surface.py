"""lip.protocols.gemini.surface: Gemini client requests parsed, answers and streams rendered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from gemini_support import openai_style_request, user

from lip.core.errors import InvalidRequest, ProxyError
from lip.core.model import (
    Collector,
    Finish,
    Message,
    ProviderState,
    ReasoningDelta,
    ResponseStart,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from lip.protocols.base import Incoming, ModelInfo
from lip.protocols.gemini.surface import GeminiGenerate, is_stream

SIG = ProviderState("gemini", "sig")

# ---- rendering to Gemini clients -----------------------------------------------------------------


def incoming(query: dict[str, str] | None = None) -> Incoming:
    return Incoming(body=b"", path={"model": "mock:mock-model"}, query=query or {}, headers={})


def test_stream_detection() -> None:
    assert is_stream(incoming({"alt": "sse"}))
    assert not is_stream(incoming())
    for method, streams in [("streamGenerateContent", True), ("generateContent", False), ("countTokens", False)]:
        for query in ({}, {"alt": "sse"}):
            assert is_stream(Incoming(body=b"", path={}, query=query, headers={}, method=method)) is streams


def test_frontend_parse_strips_models_prefix_and_unwraps_count_requests() -> None:
    body = orjson.dumps({"generateContentRequest": {"model": "models/x", "contents": [user("count me")]}})
    request = GeminiGenerate().parse(Incoming(body=body, path={"model": "models/gemini-2.5-pro"}, query={},
                                              headers={}))
    assert request.model == "gemini-2.5-pro"
    assert request.messages == (Message("user", (TextPart("count me"),)),)
    with pytest.raises(InvalidRequest):
        GeminiGenerate().parse(Incoming(body=b"[1]", path={}, query={}, headers={}))


def test_render_response() -> None:
    collector = Collector()
    for event in [ResponseStart("r-1", "mock-model", 0), ReasoningDelta("hm", SIG), TextDelta("Hi"),
                  ToolCallDelta(0, id="call_1", name="f", arguments='{"a":'), ToolCallDelta(0, arguments="1}"),
                  Finish("tool_calls"), UsageReport(Usage(5, 7, 2))]:
        collector.add(event)
    body = orjson.loads(GeminiGenerate().render_response(collector.result(), openai_style_request(), incoming()))
    assert body == {
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "hm", "thought": True, "thoughtSignature": "sig"},
            {"text": "Hi"},
            {"functionCall": {"id": "call_1", "name": "f", "args": {"a": 1}}},
        ]}, "index": 0, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7, "totalTokenCount": 12,
                          "cachedContentTokenCount": 2},
        "modelVersion": "mock-model",
        "responseId": "r-1",
    }


async def _events(items: list[StreamEvent], error: ProxyError | None = None) -> AsyncIterator[StreamEvent]:
    for item in items:
        yield item
    if error is not None:
        raise error


def render(items: list[StreamEvent], query: dict[str, str], error: ProxyError | None = None) -> bytes:
    async def run() -> bytes:
        stream = GeminiGenerate().render_stream(_events(items, error), openai_style_request(), incoming(query))
        return b"".join([piece async for piece in stream])
    return asyncio.run(run())


STREAM: list[StreamEvent] = [
    ResponseStart("r-2", "m", 0), TextDelta("Hel"), TextDelta("lo"),
    ToolCallDelta(0, id="call_x", name="f", arguments=""), ToolCallDelta(0, arguments='{"q": "a b'),
    ToolCallDelta(0, arguments=' c"}'), ToolCallDelta(1, id="call_y", name="g", arguments="{}"),
    Finish("tool_calls"), UsageReport(Usage(3, 4)),
]


def test_render_sse_stream() -> None:
    raw = render(STREAM, {"alt": "sse"})
    chunks = [orjson.loads(line[6:]) for line in raw.split(b"\n\n") if line]
    assert [c["candidates"][0]["content"]["parts"] for c in chunks] == [
        [{"text": "Hel"}], [{"text": "lo"}],
        [{"functionCall": {"id": "call_x", "name": "f", "args": {"q": "a b c"}}},
         {"functionCall": {"id": "call_y", "name": "g", "args": {}}}],
    ]
    assert "finishReason" not in chunks[0]["candidates"][0]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"] == {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7}
    assert {c["responseId"] for c in chunks} == {"r-2"}


def test_render_json_array_stream() -> None:
    raw = render(STREAM, {})
    assert raw.startswith(b"[{") and raw.endswith(b"}]")
    assert len(orjson.loads(raw)) == 3


def test_stream_error_mid_way_ends_with_an_error_object() -> None:
    error = ProxyError("backend 'up' closed the stream", status=502, code="upstream_incomplete")
    raw = render([ResponseStart("r", "m", 0), TextDelta("a")], {"alt": "sse"}, error)
    last = orjson.loads(raw.strip().split(b"\n\n")[-1][6:])
    assert last["error"]["code"] == 502
    assert last["error"]["status"] == "UNAVAILABLE"
    array = orjson.loads(render([ResponseStart("r", "m", 0), TextDelta("a")], {}, error))
    assert "error" in array[-1]


def test_models_and_count() -> None:
    surface = GeminiGenerate()
    models = orjson.loads(surface.render_models([
        ModelInfo("mock:mock-model", "mock", 128000, None, 16384), ModelInfo("up:m", "up", None, None, None)]))
    assert models["models"][0] == {
        "name": "models/mock:mock-model", "version": "lip", "displayName": "mock:mock-model",
        "description": "mock:mock-model, served by backend 'mock' through LLM Interactive Proxy.",
        "inputTokenLimit": 128000, "outputTokenLimit": 16384,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
    }
    assert "inputTokenLimit" not in models["models"][1]
    assert orjson.loads(surface.render_count(42, openai_style_request())) == {"totalTokens": 42}
