"""lip.protocols.anthropic.stream: upstream SSE → canonical events (the codec's decoder), canonical events → client
SSE."""

from __future__ import annotations

import pytest

from lip.backends.connector import UpstreamMalformed
from lip.core.errors import (
    UpstreamStatus,
    UpstreamTimeout,
)
from lip.core.model import (
    Collector,
    Finish,
    ProviderState,
    ReasoningDelta,
    RedactedReasoningPart,
    ResponseStart,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from lip.core.sse import SSEEvent
from lip.protocols.anthropic.codec import AnthropicCodec
from lip.protocols.anthropic.common import PROTOCOL
from lip.protocols.anthropic.stream import StreamWriter
from unit.protocols.anthropic.anthropic_cases import (
    RECORDED,
    decode,
    parse_sse,
    sse,
    stream,
)


def test_decoder_on_a_recorded_stream() -> None:
    events, finished, completed = decode(RECORDED)
    assert finished and completed
    assert isinstance(events[0], ResponseStart) and events[0].id == "msg_014p"
    assert events[1:] == [
        ReasoningDelta("Need weather."), ReasoningDelta("", ProviderState(PROTOCOL, "EqQBCgIYAhIM")),
        TextDelta("Okay, let me check"),
        ToolCallDelta(index=0, id="toolu_01T1x", name="get_weather"),
        ToolCallDelta(index=0, arguments='{"location":'), ToolCallDelta(index=0, arguments=' "San Fra'),
        ToolCallDelta(index=0, arguments='ncisco, CA"}'),
        Finish("tool_calls"), UsageReport(Usage(input_tokens=502, output_tokens=89, cached_tokens=30)),
    ]
    collector = Collector()
    for event in events:
        collector.add(event)
    result = collector.result()
    assert result.tool_calls == [ToolCall("toolu_01T1x", "get_weather", '{"location": "San Francisco, CA"}')]
    assert (result.reasoning, result.reasoning_signature) == ("Need weather.", ProviderState(PROTOCOL, "EqQBCgIYAhIM"))


def test_decoder_usage_from_message_delta_input_tokens_and_two_tools() -> None:
    chunks = [
        RECORDED[0],
        *[sse("content_block_start", {"type": "content_block_start", "index": i, "content_block": {
            "type": "tool_use", "id": f"t{i}", "name": "f", "input": {}}}) for i in range(1)],
        sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                    "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "t1", "name": "g", "input": {"already": 1}}}),
        sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
        sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                              "usage": {"input_tokens": 600, "output_tokens": 5}}),
        sse("message_stop", {"type": "message_stop"}),
    ]
    events, _, _ = decode(chunks)
    assert ToolCallDelta(index=1, id="t1", name="g") in events
    assert ToolCallDelta(index=1, arguments='{"already":1}') in events, "a non-streamed input is not lost"
    assert events[-1] == UsageReport(Usage(input_tokens=630, output_tokens=5, cached_tokens=30))


def test_decoder_incomplete_error_and_malformed() -> None:
    _, finished, completed = decode(RECORDED[:8])
    assert not finished and not completed
    stop_without_reason = [RECORDED[0], sse("message_stop", {"type": "message_stop"})]
    assert decode(stop_without_reason)[1:] == (False, True), "the connector reports this as incomplete"
    decoder = AnthropicCodec().decoder("m")
    with pytest.raises(UpstreamStatus) as caught:
        decoder.feed(SSEEvent(b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
                              "error"))
    assert (caught.value.status, caught.value.code, caught.value.message) == (529, "overloaded_error", "Overloaded")
    with pytest.raises(UpstreamMalformed):
        decoder.feed(SSEEvent(b"{not json", "content_block_delta"))
    assert decoder.feed(SSEEvent(b'{"type":"ping"}', "ping")) == []
    assert decoder.feed(SSEEvent(b'{"type":"some_future_event"}', "some_future_event")) == []


def test_stream_rendering_sequence() -> None:
    events = stream([
        ResponseStart("chatcmpl-9", "gpt-4o", 1), ReasoningDelta("Hmm"),
        ReasoningDelta("", ProviderState(PROTOCOL, "sig")),
        TextDelta("Sure"), TextDelta(""), TextDelta("."),
        ToolCallDelta(0, "", "call_a", "weather"), ToolCallDelta(0, '{"ci'), ToolCallDelta(0, 'ty":"Oslo"}'),
        ToolCallDelta(1, '{}', "call_b", "time"),
        Finish("tool_calls"), UsageReport(Usage(input_tokens=50, output_tokens=9, cached_tokens=10)),
    ])
    kinds = [kind for kind, _ in events]
    assert kinds == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]
    assert all(data["type"] == kind for kind, data in events)
    start = events[0][1]["message"]
    assert (start["id"], start["model"], start["content"], start["stop_reason"]) == ("msg_chatcmpl-9", "gpt-4o",
                                                                                     [], None)
    assert start["usage"] == {"input_tokens": 0, "output_tokens": 0}
    blocks = [data for kind, data in events if kind == "content_block_start"]
    assert [b["index"] for b in blocks] == [0, 1, 2, 3]
    assert [b["content_block"] for b in blocks] == [
        {"type": "thinking", "thinking": "", "signature": ""}, {"type": "text", "text": ""},
        {"type": "tool_use", "id": "call_a", "name": "weather", "input": {}},
        {"type": "tool_use", "id": "call_b", "name": "time", "input": {}},
    ]
    deltas = [(data["index"], data["delta"]) for kind, data in events if kind == "content_block_delta"]
    assert deltas == [
        (0, {"type": "thinking_delta", "thinking": "Hmm"}), (0, {"type": "signature_delta", "signature": "sig"}),
        (1, {"type": "text_delta", "text": "Sure"}), (1, {"type": "text_delta", "text": "."}),
        (2, {"type": "input_json_delta", "partial_json": '{"ci'}),
        (2, {"type": "input_json_delta", "partial_json": 'ty":"Oslo"}'}),
        (3, {"type": "input_json_delta", "partial_json": "{}"}),
    ]
    assert events[-2][1] == {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                             "usage": {"input_tokens": 40, "output_tokens": 9, "cache_read_input_tokens": 10}}


def test_stream_interleaved_tool_pieces_go_to_their_block() -> None:
    events = stream([ResponseStart("x", "m", 1), ToolCallDelta(0, '{"a"', "c0", "f"), ToolCallDelta(1, "{", "c1", "g"),
                     ToolCallDelta(0, ":1}"), ToolCallDelta(1, "}"), Finish("tool_calls")])
    pieces: dict[int, str] = {}
    for kind, data in events:
        if kind == "content_block_delta":
            pieces[data["index"]] = pieces.get(data["index"], "") + data["delta"]["partial_json"]
    assert pieces == {0: '{"a":1}', 1: "{}"}
    assert events[-2][1]["usage"] == {"output_tokens": 0}


def test_stream_redacted_thinking_and_missing_start() -> None:
    events = stream([RedactedReasoningPart("anthropic", "opaque"), TextDelta("hi"), Finish("stop")])
    assert events[0][0] == "message_start"
    assert events[0][1]["message"]["id"].startswith("msg_")
    assert events[2][1]["content_block"] == {"type": "redacted_thinking", "data": "opaque"}
    assert events[3] == ("content_block_stop", {"type": "content_block_stop", "index": 0})


def test_stream_error_mid_way_is_an_error_event() -> None:
    events = stream([ResponseStart("x", "m", 1), TextDelta("par")],
                    UpstreamTimeout("backend 'b' stalled mid-stream"))
    assert events[-1] == ("error", {"type": "error", "error": {
        "type": "timeout_error", "message": "backend 'b' stalled mid-stream", "code": "upstream_timeout"}})
    assert "message_stop" not in [kind for kind, _ in events]


def test_stream_writer_end_without_events() -> None:
    writer = StreamWriter("m")
    kinds = [parse_sse(chunk)[0][0] for chunk in writer.end()]
    assert kinds == ["message_start", "ping", "message_delta", "message_stop"]
