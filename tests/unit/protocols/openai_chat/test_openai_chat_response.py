"""lip.protocols.openai_chat.response: reading upstream answers and chunks as events, rendering usage."""

from __future__ import annotations

from lip.core.model import (
    Finish,
    ReasoningDelta,
    ResponseStart,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from lip.protocols.openai_chat import response

# ---- upstream responses → events -----------------------------------------------------------------


def test_completion_events_text_and_usage_with_cached_tokens() -> None:
    body = {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there"},
                     "finish_reason": "length"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107,
                  "prompt_tokens_details": {"cached_tokens": 64}},
    }
    assert response.completion_events(body, "fallback") == [
        ResponseStart("chatcmpl-abc", "gpt-4o-2024-08-06", 1700000000),
        TextDelta("Hi there"),
        Finish("length"),
        UsageReport(Usage(input_tokens=100, output_tokens=7, cached_tokens=64)),
    ]


def test_completion_events_tool_calls_reasoning_and_fallbacks() -> None:
    body = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": "hmm",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                        {"id": "call_2", "type": "function", "function": {"name": "g"}},
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    assert response.completion_events(body, "my-model") == [
        ResponseStart("chatcmpl-lip", "my-model", 0),
        ReasoningDelta("hmm"),
        ToolCallDelta(index=0, id="call_1", name="f", arguments="{}"),
        ToolCallDelta(index=1, id="call_2", name="g", arguments=""),
        Finish("tool_calls"),
    ]


def test_completion_events_without_choices() -> None:
    events = response.completion_events({"id": "x", "choices": []}, "m")
    assert events == [ResponseStart("x", "m", 0), Finish("stop")]


def test_chunk_events_stream() -> None:
    chunks = [
        {"id": "c1", "created": 5, "model": "up-model",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {"reasoning": "think"}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {"content": "lo"}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "{}"}}, {"index": 1, "id": "call_2",
                                                           "function": {"name": "g"}}]}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"id": "c1", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3,
                                              "prompt_tokens_details": {"cached_tokens": 2}}},
    ]
    events = [e for i, chunk in enumerate(chunks) for e in response.chunk_events(chunk, i == 0, "fallback")]
    assert events == [
        ResponseStart("c1", "up-model", 5),
        ReasoningDelta("think"),
        TextDelta("Hel"),
        TextDelta("lo"),
        ToolCallDelta(index=0, id="call_1", name="f", arguments=""),
        ToolCallDelta(index=0, id=None, name=None, arguments="{}"),
        ToolCallDelta(index=1, id="call_2", name="g", arguments=""),
        Finish("tool_calls"),
        UsageReport(Usage(input_tokens=9, output_tokens=3, cached_tokens=2)),
    ]


def test_chunk_events_start_only_on_first_and_fallback_model() -> None:
    chunk = {"choices": [{"delta": {"content": "x"}}]}
    assert response.chunk_events(chunk, True, "fb") == [ResponseStart("chatcmpl-lip", "fb", 0), TextDelta("x")]
    assert response.chunk_events(chunk, False, "fb") == [TextDelta("x")]


def test_chunk_with_null_usage_has_no_usage_event() -> None:
    chunk = {"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": None}
    assert response.chunk_events(chunk, False, "m") == [Finish("stop")]


def test_usage_from_wire() -> None:
    assert response.usage_from_wire(None) is None
    assert response.usage_from_wire({"prompt_tokens": 3}) == Usage(input_tokens=3)
    assert response.usage_from_wire(
        {"prompt_tokens": 3, "completion_tokens": 4, "prompt_tokens_details": None}
    ) == Usage(3, 4, 0)


def test_usage_to_wire() -> None:
    assert response.usage_to_wire(Usage(10, 5)) == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert response.usage_to_wire(Usage(10, 5, cached_tokens=8)) == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 8},
    }
    usage = Usage(120, 30, 100)
    assert response.usage_from_wire(response.usage_to_wire(usage)) == usage
