"""lip.protocols.anthropic.format with its frontend and codec: parsing client requests, rendering upstream bodies,
reading upstream messages and streams, rendering messages, streams and errors."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from lip.backends.connector import UpstreamMalformed
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
    ChatRequest,
    ChatResponse,
    Collector,
    Finish,
    ImagePart,
    Message,
    ReasoningDelta,
    ReasoningPart,
    ResponseStart,
    StreamEvent,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
    UsageReport,
)
from lip.core.sse import SSEDecoder, SSEEvent
from lip.protocols.anthropic import format as wire
from lip.protocols.anthropic.codec import AnthropicCodec
from lip.protocols.anthropic.surface import AnthropicMessages, StreamWriter, render_stream
from lip.protocols.base import Incoming
from lip.protocols.openai_chat import format as openai_wire
from lip.protocols.openai_chat import surface as openai_chat

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def parse(**body: Any) -> ChatRequest:
    return wire.parse_request({"model": "claude-sonnet-4-5", "max_tokens": 256, **body})


def invalid(**body: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse(**body)
    assert caught.value.status == 400
    assert caught.value.param is not None
    assert caught.value.message.startswith(caught.value.param)
    return caught.value


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


# ---- client → canonical ------------------------------------------------------------------------


def test_plain_request() -> None:
    request = parse(messages=[user("Hello")], system="Be brief.", temperature=0.2, top_p=0.9, top_k=40,
                    stop_sequences=["END"], stream=True)
    assert request.model == "claude-sonnet-4-5"
    assert request.messages == (Message("system", "Be brief."), Message("user", "Hello"))
    assert dict(request.parameters) == {"max_tokens": 256, "temperature": 0.2, "top_p": 0.9, "top_k": 40,
                                        "stop": ["END"]}
    assert request.stream is True
    assert request.include_usage is True
    assert request.extensions == {}


def test_system_blocks_stay_separate_messages() -> None:
    request = parse(system=[{"type": "text", "text": "A"}, {"type": "text", "text": "B", "cache_control": {}}],
                    messages=[user("x")])
    assert request.messages[:2] == (Message("system", (TextPart("A"),)), Message("system", (TextPart("B", {}),)))


def test_anthropic_only_keys_are_kept_as_extensions() -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    request = parse(messages=[user("x")], metadata={"user_id": "u1"}, thinking=thinking, service_tier="auto")
    assert request.extensions == {"anthropic": {"metadata": {"user_id": "u1"}, "thinking": thinking,
                                                "service_tier": "auto"}}
    assert "thinking" not in request.parameters


def test_user_blocks_images_and_tool_results_in_order() -> None:
    request = parse(messages=[
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {}},
        ]},
        user([
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"},
            {"type": "tool_result", "tool_use_id": "toolu_2",
             "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"type": "text", "text": "And this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        ]),
    ])
    assistant, first, second, rest = request.messages
    assert assistant == Message("assistant", "Let me look.", tool_calls=(
        ToolCall("toolu_1", "weather", '{"city":"Paris"}'), ToolCall("toolu_2", "weather", "{}")))
    assert first == Message("tool", "18 C", tool_call_id="toolu_1")
    assert second == Message("tool", "a\nb", tool_call_id="toolu_2")
    assert rest == Message("user", (TextPart("And this?"), ImagePart("data:image/png;base64,iVBORw0KGgo="),
                                    ImagePart("https://example.com/cat.jpg")))


def test_tool_result_with_an_image_keeps_parts() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://e.com/x.png"}}
    (message,) = parse(messages=[user([{"type": "tool_result", "tool_use_id": "t",
                                        "content": [{"type": "text", "text": "see"}, image]}])]).messages
    assert message == Message("tool", (TextPart("see"), ImagePart("https://e.com/x.png")), tool_call_id="t")


def test_thinking_and_redacted_thinking_are_reasoning_parts() -> None:
    (message,) = parse(messages=[{"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig1"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Answer"},
    ]}]).messages
    assert message.content == (ReasoningPart("hmm", "sig1"), ReasoningPart("", wire.REDACTED + "opaque"),
                               TextPart("Answer"))


def test_tools_and_tool_choices() -> None:
    tools = [{"name": "weather", "description": "Weather now", "input_schema": WEATHER_SCHEMA,
              "cache_control": {"type": "ephemeral"}}]
    request = parse(messages=[user("x")], tools=tools, tool_choice={"type": "any"})
    assert request.tools == (Tool("weather", "Weather now", WEATHER_SCHEMA, cache_control={"type": "ephemeral"},
                                  spec=tools[0], protocol="anthropic"),)
    assert request.tool_choice == ToolChoice("required")
    for raw, expected in [({"type": "auto"}, ToolChoice("auto")), ({"type": "none"}, ToolChoice("none")),
                          ({"type": "tool", "name": "weather"}, ToolChoice("tool", "weather"))]:
        assert parse(messages=[user("x")], tools=tools, tool_choice=raw).tool_choice == expected
    no_parallel = parse(messages=[user("x")], tools=tools,
                        tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    assert no_parallel.parameters["parallel_tool_calls"] is False


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": None}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "developer", "content": "x"}]}, "messages.0.role"),
    ({"messages": [user("x"), {"role": "system", "content": [{"type": "image"}]}]}, "messages.1.content.0"),
    ({"messages": [user("x"), {"role": "assistant"}]}, "messages.1.content"),
    ({"messages": [user("x"), user([{"type": "text", "text": "a"}, {"type": "document"}])]},
     "messages.1.content.1.source"),
    ({"messages": [user([{"type": "document", "source": {"type": "file", "file_id": "f"}}])]},
     "messages.0.content.0.source.type"),
    ({"messages": [user("x"), user([{"type": "video", "source": {}}])]}, "messages.1.content.0.type"),
    ({"messages": [user([{"type": "text", "text": 3}])]}, "messages.0.content.0.text"),
    ({"messages": [user([{"text": "no type"}])]}, "messages.0.content.0.type"),
    ({"messages": [user([{"type": "image", "source": {"type": "file", "file_id": "f"}}])]},
     "messages.0.content.0.source.type"),
    ({"messages": [user([{"type": "tool_result"}])]}, "messages.0.content.0.tool_use_id"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n",
                                                       "input": "[]"}]}]}, "messages.0.content.0.input"),
    ({"messages": [{"role": "assistant", "content": [{"type": "image"}]}]}, "messages.0.content.0.type"),
    ({"messages": [user("x")], "system": [{"type": "image"}]}, "system.0.type"),
    ({"messages": [user("x")], "max_tokens": 0}, "max_tokens"),
    ({"messages": [user("x")], "max_tokens": "100"}, "max_tokens"),
    ({"messages": [user("x")], "temperature": 1.5}, "temperature"),
    ({"messages": [user("x")], "top_k": -1}, "top_k"),
    ({"messages": [user("x")], "stop_sequences": "END"}, "stop_sequences"),
    ({"messages": [user("x")], "tools": [{"name": "t"}]}, "tools.0.input_schema"),
    ({"messages": [user("x")], "tools": [{"type": 3, "name": "web_search"}]}, "tools.0.type"),
    ({"messages": [user("x")], "tools": [{"type": "web_search_20250305"}]}, "tools.0.name"),
    ({"messages": [user("x")], "tool_choice": {"type": "required"}}, "tool_choice.type"),
    ({"messages": [user("x")], "tool_choice": {"type": "tool"}}, "tool_choice.name"),
    ({"messages": [user("x")], "model": 3}, "model"),
    ({"messages": [user("x")], "stream": "yes"}, "stream"),
])
def test_errors_name_the_field(body: dict[str, Any], param: str) -> None:
    assert invalid(**body).param == param


def test_unsupported_block_message_lists_what_is_supported() -> None:
    error = invalid(messages=[user("x"), user([{"type": "text", "text": "a"}, {"type": "video"}])])
    assert error.message.startswith("messages.1.content.1.type: content blocks of type 'video'")
    assert "'text', 'image', 'document', 'tool_result' or a server tool's block" in error.message


def test_frontend_parse_rejects_non_json() -> None:
    surface = AnthropicMessages()
    with pytest.raises(InvalidRequest) as caught:
        surface.parse(Incoming(b"{nope", {}, {}, {}))
    assert caught.value.code == "invalid_json"


# ---- canonical → upstream body -------------------------------------------------------------------


def body_of(request: ChatRequest, model: str = "claude-haiku-4-5") -> dict[str, Any]:
    return AnthropicCodec().body(request, model)


def test_anthropic_request_round_trips_to_the_same_body() -> None:
    original = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are terse."}],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Use the tool.", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"},
                {"type": "text", "text": "Thanks"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            ]},
        ],
        "tools": [{"name": "weather", "input_schema": WEATHER_SCHEMA, "description": "Weather"}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "temperature": 0.5,
        "top_k": 5,
        "stop_sequences": ["STOP"],
        "metadata": {"user_id": "u-1"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "stream": True,
    }
    sent = copy.deepcopy(original)
    assert body_of(wire.parse_request(sent), "claude-sonnet-4-5") == original
    assert sent == original, "parsing does not change the client's body"


def test_openai_request_becomes_a_valid_anthropic_body() -> None:
    request = openai_chat.parse_request(orjson.dumps({
        "model": "claude", "seed": 1, "n": 1, "presence_penalty": 0.1, "response_format": {"type": "text"},
        "temperature": 1.7, "stop": "END", "user": "alice", "parallel_tool_calls": False,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Look"},
                                         {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}}]},
            {"role": "assistant", "content": None, "reasoning_content": "x", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "noargs", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "-3 C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "ok"},
            {"role": "developer", "content": "Use Celsius."},
            {"role": "user", "content": "And tomorrow?"},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": WEATHER_SCHEMA, "strict": True}},
                  {"type": "function", "function": {"name": "noargs"}}],
        "tool_choice": "required",
    }))
    body = body_of(request)
    assert body["model"] == "claude-haiku-4-5"
    assert body["max_tokens"] == wire.DEFAULT_MAX_TOKENS
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "Look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "call_2", "name": "noargs", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "-3 C"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "ok"}]},
        {"role": "system", "content": "Use Celsius."},  # a later system message stays in its place
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert body["tools"] == [{"name": "weather", "input_schema": WEATHER_SCHEMA},
                             {"name": "noargs", "input_schema": {"type": "object", "properties": {}}}]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["temperature"] == 1.0, "OpenAI's 0..2 range is clamped to Anthropic's 0..1"
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "alice"}
    for dropped in ("seed", "n", "presence_penalty", "response_format", "parallel_tool_calls", "user", "stop"):
        assert dropped not in body
    assert "stream" not in body


def test_max_tokens_from_the_request_and_reasoning_effort_as_effort() -> None:
    request = ChatRequest("m", (Message("user", "x"),), stream=True,
                          parameters={"max_completion_tokens": 10000, "reasoning_effort": "minimal",
                                      "temperature": 0.3})
    body = body_of(request)
    assert body["max_tokens"] == 10000
    assert body["output_config"] == {"effort": "low"}
    assert body["temperature"] == 0.3
    assert body["stream"] is True
    own = ChatRequest("m", (Message("user", "x"),), parameters={"reasoning_effort": "high"},
                      extensions={"anthropic": {"output_config": {"effort": "max", "format": None}}})
    assert body_of(own)["output_config"] == {"effort": "max", "format": None}, "the client's own config wins"
    odd = ChatRequest("m", (Message("user", "x"),), parameters={"reasoning_effort": "none"})
    assert "output_config" not in body_of(odd)


def test_unsigned_reasoning_is_not_replayed_and_bad_arguments_are_refused() -> None:
    assistant = Message("assistant", (ReasoningPart("from another vendor"), TextPart("Hi")))
    body = body_of(ChatRequest("m", (Message("user", "x"), assistant)))
    assert body["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": "Hi"}]}
    broken = Message("assistant", None, tool_calls=(ToolCall("c", "f", '{"a": '),))
    with pytest.raises(InvalidRequest):
        body_of(ChatRequest("m", (Message("user", "x"), broken)))


def test_extensions_of_the_client_win_and_model_parameters_pass_through() -> None:
    request = ChatRequest("m", (Message("user", "x"),),
                          parameters={"top_k": 3, "thinking": {"type": "disabled"}, "logprobs": True,
                                      "service_tier": "default", "metadata": {"k": "v"}},
                          extensions={"anthropic": {"thinking": {"type": "enabled", "budget_tokens": 2000}},
                                      "openai": {"store": True}})
    body = body_of(request)
    assert body["top_k"] == 3
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert "logprobs" not in body and "store" not in body
    assert "service_tier" not in body and "metadata" not in body, "OpenAI's meanings of these names"


def test_codec_addressing() -> None:
    codec = AnthropicCodec()
    assert codec.url("https://api.anthropic.com/v1", "claude-haiku-4-5", True) == "https://api.anthropic.com/v1/messages"
    assert codec.default_auth("sk-ant") == {"x-api-key": "sk-ant"}


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
        ReasoningDelta("Think.", "sig"), TextDelta("Calling."),
        ToolCallDelta(index=0, id="toolu_1", name="weather", arguments='{"city":"Paris"}'),
        Finish("tool_calls"),
        UsageReport(Usage(input_tokens=115, output_tokens=7, cached_tokens=100, cache_write_tokens=5)),
    ]


@pytest.mark.parametrize(("reason", "canonical"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), ("model_context_window_exceeded", "length"), ("pause_turn", "stop"),
])
def test_stop_reasons(reason: str, canonical: str) -> None:
    assert wire.stop_reason_from_wire(reason) == canonical


def test_error_body_from_upstream_raises() -> None:
    with pytest.raises(UpstreamStatus) as caught:
        AnthropicCodec().events({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "m")
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (529, "overloaded_error", True)


def sse(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


RECORDED = [
    sse("message_start", {"type": "message_start", "message": {
        "id": "msg_014p", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5",
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 472, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 30,
                  "output_tokens": 2}}}),
    sse("content_block_start", {"type": "content_block_start", "index": 0,
                                "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
    sse("ping", {"type": "ping"}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "thinking_delta", "thinking": "Need weather."}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
    sse("content_block_start", {"type": "content_block_start", "index": 1,
                                "content_block": {"type": "text", "text": ""}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 1,
                                "delta": {"type": "text_delta", "text": "Okay, let me check"}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
    sse("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
        "type": "tool_use", "id": "toolu_01T1x", "name": "get_weather", "input": {}}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 2,
                                "delta": {"type": "input_json_delta", "partial_json": ""}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 2,
                                "delta": {"type": "input_json_delta", "partial_json": "{\"location\":"}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 2,
                                "delta": {"type": "input_json_delta", "partial_json": " \"San Fra"}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 2,
                                "delta": {"type": "input_json_delta", "partial_json": "ncisco, CA\"}"}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 2}),
    sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                          "usage": {"output_tokens": 89}}),
    sse("message_stop", {"type": "message_stop"}),
]


def decode(chunks: list[bytes], split: int = 7) -> tuple[list[StreamEvent], bool, bool]:
    """(events, finished, completed) of a stream fed in awkward pieces."""
    decoder = AnthropicCodec().decoder("fallback")
    reader = SSEDecoder()
    raw = b"".join(chunks)
    events: list[StreamEvent] = []
    for start in range(0, len(raw), split):
        for event in reader.feed(raw[start:start + split]):
            out = decoder.feed(event)
            if out is None:
                return events, decoder.finished, True
            events.extend(out)
    return events, decoder.finished, False


def test_decoder_on_a_recorded_stream() -> None:
    events, finished, completed = decode(RECORDED)
    assert finished and completed
    assert isinstance(events[0], ResponseStart) and events[0].id == "msg_014p"
    assert events[1:] == [
        ReasoningDelta("Need weather."), ReasoningDelta("", "EqQBCgIYAhIM"),
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
    assert (result.reasoning, result.reasoning_signature) == ("Need weather.", "EqQBCgIYAhIM")


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


# ---- canonical → client (responses, streams, errors) -------------------------------------------


def test_render_response() -> None:
    response = ChatResponse(id="chatcmpl-1", model="gpt-4o", text="It is sunny.", reasoning="Look it up.",
                            reasoning_signature="sig", finish_reason="tool_calls",
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
    body = wire.response_to_wire(ChatResponse(id="msg_1", finish_reason=finish), "m")
    assert body["stop_reason"] == reason
    assert body["content"] == [{"type": "text", "text": ""}]
    assert body["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert body["model"] == "m" and body["id"] == "msg_1"


def test_tool_input_that_is_not_an_object_is_kept_raw() -> None:
    assert wire.tool_input("") == {}
    assert wire.tool_input('{"a": [1]}') == {"a": [1]}
    assert wire.tool_input('{"a": ') == {"_raw_arguments": '{"a": '}


def parse_sse(raw: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    return [(e.event, orjson.loads(e.data)) for e in SSEDecoder().feed(raw)]


async def _events(items: list[StreamEvent], error: ProxyError | None = None) -> AsyncIterator[StreamEvent]:
    for item in items:
        yield item
    if error is not None:
        raise error


def stream(items: list[StreamEvent], error: ProxyError | None = None) -> list[tuple[str | None, dict[str, Any]]]:
    async def run() -> bytes:
        request = ChatRequest("claude-x", (Message("user", "x"),), stream=True)
        return b"".join([chunk async for chunk in render_stream(_events(items, error), request)])
    return parse_sse(asyncio.run(run()))


def test_stream_rendering_sequence() -> None:
    events = stream([
        ResponseStart("chatcmpl-9", "gpt-4o", 1), ReasoningDelta("Hmm"), ReasoningDelta("", "sig"),
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
    events = stream([ReasoningDelta("", wire.REDACTED + "opaque"), TextDelta("hi"), Finish("stop")])
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


# ---- prompt caching breakpoints ---------------------------------------------------------------

EPHEMERAL = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}


def test_cache_control_survives_an_anthropic_to_anthropic_round_trip() -> None:
    """Prompt caching from an Anthropic client reaches an Anthropic upstream where the client put it."""
    png = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    body = {
        "model": "m", "max_tokens": 64,
        "system": [{"type": "text", "text": "rules", "cache_control": HOUR}, {"type": "text", "text": "more"}],
        "tools": [{"name": "weather", "input_schema": WEATHER_SCHEMA, "cache_control": EPHEMERAL}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "look", "cache_control": EPHEMERAL},
                                         {"type": "image", "source": png, "cache_control": EPHEMERAL}]},
            {"role": "assistant", "content": [{"type": "text", "text": "calling", "cache_control": EPHEMERAL},
                                              {"type": "tool_use", "id": "t1", "name": "weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny",
                                          "cache_control": EPHEMERAL}]},
        ],
    }
    out = wire.request_to_wire(wire.parse_request(body), "m")
    assert out["system"] == [{"type": "text", "text": "rules", "cache_control": HOUR},
                             {"type": "text", "text": "more"}]
    assert out["tools"][0]["cache_control"] == EPHEMERAL
    first, second, third = out["messages"]
    assert [b.get("cache_control") for b in first["content"]] == [EPHEMERAL, EPHEMERAL]
    assert second["content"][0] == {"type": "text", "text": "calling", "cache_control": EPHEMERAL}
    assert third["content"] == [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny",
                                 "cache_control": EPHEMERAL}]


def test_an_openai_style_message_breakpoint_lands_on_its_last_block_for_anthropic() -> None:
    request = openai_chat.parse_request(orjson.dumps({"model": "m", "messages": [
        {"role": "system", "content": "long rules", "cache_control": EPHEMERAL},
        {"role": "user", "content": "question", "cache_control": EPHEMERAL},
    ]}))
    out = wire.request_to_wire(request, "m")
    assert out["system"] == [{"type": "text", "text": "long rules", "cache_control": EPHEMERAL}]
    assert out["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "question", "cache_control": EPHEMERAL}]}]


def test_anthropic_breakpoints_are_not_sent_to_an_openai_upstream() -> None:
    request = parse(system=[{"type": "text", "text": "rules", "cache_control": EPHEMERAL}],
                    tools=[{"name": "w", "input_schema": WEATHER_SCHEMA, "cache_control": EPHEMERAL}],
                    messages=[user([{"type": "text", "text": "hi", "cache_control": EPHEMERAL}])])
    body = orjson.dumps({"messages": [openai_wire.message_to_wire(m) for m in request.messages],
                         "tools": [openai_wire.tool_to_wire(t) for t in request.tools]})
    assert b"cache_control" not in body


def test_a_cache_control_that_is_not_an_object_is_a_400_naming_it() -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse(messages=[{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": "yes"}]}])
    assert raised.value.param == "messages.0.content.0.cache_control"


def test_cache_writes_and_reasoning_tokens_keep_their_own_fields_across_protocols() -> None:
    anthropic_usage = {"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5,
                       "output_tokens": 7}
    usage = wire.usage_from_wire(anthropic_usage)
    assert usage is not None and (usage.input_tokens, usage.cached_tokens, usage.cache_write_tokens) == (115, 100, 5)
    assert wire.usage_to_wire(usage) == anthropic_usage  # an Anthropic client sees what its upstream said
    openai_usage = {"prompt_tokens": 20, "completion_tokens": 50, "total_tokens": 70,
                    "prompt_tokens_details": {"cached_tokens": 8},
                    "completion_tokens_details": {"reasoning_tokens": 30}}
    reasoned = openai_wire.usage_from_wire(openai_usage)
    assert reasoned is not None and reasoned.reasoning_tokens == 30
    assert openai_wire.usage_to_wire(reasoned) == openai_usage
