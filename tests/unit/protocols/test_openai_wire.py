"""lip.protocols.openai_chat.format: parsing client requests, rendering messages, reading upstream responses."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lip.core.errors import InvalidRequest
from lip.core.model import (
    Finish,
    ImagePart,
    Message,
    ReasoningDelta,
    ResponseStart,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from lip.protocols.openai_chat import format as wire


def invalid(call: Any, *args: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        call(*args)
    assert caught.value.status == 400
    return caught.value


# ---- parse_messages ------------------------------------------------------------------------------


def test_parse_text_messages() -> None:
    messages = wire.parse_messages(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi", "name": "ann"}]
    )
    assert messages == (Message("system", "be brief"), Message("user", "hi", name="ann"))


def test_missing_messages() -> None:
    error = invalid(wire.parse_messages, None)
    assert error.param == "messages"
    assert error.code == "missing_required_parameter"


def test_empty_messages() -> None:
    error = invalid(wire.parse_messages, [])
    assert error.param == "messages"
    assert "at least one" in error.message


@pytest.mark.parametrize("raw", ["hello", {"role": "user"}, 3])
def test_messages_not_a_list(raw: Any) -> None:
    error = invalid(wire.parse_messages, raw)
    assert error.param == "messages"
    assert error.code == "invalid_value"


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ([{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}], "messages[1].role"),
        ([{"role": "user", "content": "a"}, {"content": "b"}], "messages[1].role"),
        (["just text"], "messages[0]"),
        ([{"role": "user", "content": [{"type": "audio"}]}], "messages[0].content[0]"),
        ([{"role": "user", "content": [{"type": "text", "text": "ok"}, {"type": "text"}]}],
         "messages[0].content[1]"),
        ([{"role": "user", "content": ["plain string part"]}], "messages[0].content[0]"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
         "messages[0].content[0].image_url.url"),
        ([{"role": "user", "content": 42}], "messages[0].content"),
        ([{"role": "user", "content": None}], "messages[0].content"),
        ([{"role": "user"}], "messages[0].content"),
        ([{"role": "user", "content": "a", "name": 5}], "messages[0].name"),
        ([{"role": "assistant", "content": None, "tool_calls": {"id": "x"}}], "messages[0].tool_calls"),
        ([{"role": "assistant", "content": None, "tool_calls": [{"id": "x", "function": {}}]}],
         "messages[0].tool_calls[0].function"),
        ([{"role": "assistant", "content": None,
           "tool_calls": [{"id": "x", "function": {"name": "f", "arguments": {"a": 1}}}]}],
         "messages[0].tool_calls[0].function.arguments"),
        ([{"role": "user", "content": "q"}, {"role": "tool", "content": "42"}], "messages[1].tool_call_id"),
        ([{"role": "tool", "content": "42", "tool_call_id": 7}], "messages[0].tool_call_id"),
    ],
)
def test_parse_errors_name_the_field_path(raw: Any, param: str) -> None:
    error = invalid(wire.parse_messages, raw)
    assert error.param == param
    assert f"'{param}'" in error.message


def test_tool_message_without_tool_call_id_is_a_missing_parameter() -> None:
    error = invalid(wire.parse_messages, [{"role": "tool", "content": "42"}])
    assert error.code == "missing_required_parameter"
    assert error.param == "messages[0].tool_call_id"


def test_assistant_message_may_have_no_content() -> None:
    (message,) = wire.parse_messages([{"role": "assistant", "content": None}])
    assert message == Message("assistant", None)


def test_parse_image_parts() -> None:
    (message,) = wire.parse_messages(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "https://x.example/a.png", "detail": "high"}},
                    {"type": "image_url", "image_url": "data:image/png;base64,AAAA"},
                ],
            }
        ]
    )
    assert message.content == (
        TextPart("what is this?"),
        ImagePart("https://x.example/a.png", "high"),
        ImagePart("data:image/png;base64,AAAA", None),
    )


def test_parse_tool_calls_and_tool_results() -> None:
    messages = wire.parse_messages(
        [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_a", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                    {"type": "function", "function": {"name": "noop"}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
        ]
    )
    assert messages[1].content is None
    first, second = messages[1].tool_calls
    assert first == ToolCall("call_a", "get_weather", '{"city":"Paris"}')
    assert (second.name, second.arguments) == ("noop", "")
    assert second.id.startswith("call_") and second.id != first.id, "a missing id gets a unique one"
    assert messages[2] == Message("tool", "sunny", tool_call_id="call_a")


# ---- round trip ----------------------------------------------------------------------------------

ROUND_TRIP = [
    {"role": "user", "content": "hello"},
    {"role": "system", "content": "be brief", "name": "rules"},
    {"role": "assistant", "content": None},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://x.example/a.png", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    },
    {
        "role": "assistant",
        "content": "calling",
        "tool_calls": [
            {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
            {"id": "call_10", "type": "function", "function": {"name": "g", "arguments": "{}"}},
        ],
    },
    {"role": "tool", "content": "result", "tool_call_id": "call_9"},
    {"role": "assistant", "content": "x", "reasoning_content": "why", "refusal": None},
    {"role": "user", "content": "y", "cache_control": {"type": "ephemeral"}},
]


@pytest.mark.parametrize("raw", ROUND_TRIP, ids=lambda m: f"{m['role']}-{len(m)}")
def test_round_trip(raw: dict[str, Any]) -> None:
    before = copy.deepcopy(raw)
    (message,) = wire.parse_messages([raw])
    assert wire.message_to_wire(message) == raw
    assert raw == before  # parsing does not change the client's body


def test_extra_message_keys_are_kept_as_extensions() -> None:
    (message,) = wire.parse_messages([{"role": "assistant", "content": "x", "reasoning_content": "why"}])
    assert dict(message.extensions) == {"reasoning_content": "why"}


def test_extra_key_of_a_two_key_message_is_kept() -> None:
    call = {"name": "f", "arguments": "{}"}
    (message,) = wire.parse_messages([{"role": "assistant", "function_call": call}])
    assert dict(message.extensions) == {"function_call": call}


# ---- parse_parameters ----------------------------------------------------------------------------


def test_parameters_keep_every_non_structural_key() -> None:
    body = {
        "model": "m",
        "messages": [],
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [],
        "tool_choice": "auto",
        "temperature": 0.2,
        "max_tokens": 0,
        "stop": ["\n"],
        "seed": 7,
        "response_format": {"type": "json_object"},
        "vendor_extra": {"x": 1},
    }
    assert wire.parse_parameters(body) == {
        "temperature": 0.2,
        "max_tokens": 0,
        "stop": ["\n"],
        "seed": 7,
        "response_format": {"type": "json_object"},
        "vendor_extra": {"x": 1},
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("temperature", 2.5),
        ("temperature", -0.1),
        ("temperature", "0.5"),
        ("temperature", True),
        ("top_p", 1.01),
        ("presence_penalty", -3),
        ("frequency_penalty", 2.1),
        ("max_tokens", -1),
        ("max_tokens", True),
        ("max_tokens", 1.5),
        ("max_tokens", "100"),
        ("max_completion_tokens", -5),
        ("n", False),
        ("seed", "7"),
        ("stop", 5),
        ("stop", ["a", 1]),
        ("stop", {"a": 1}),
    ],
)
def test_parameter_type_errors_name_the_parameter(key: str, value: Any) -> None:
    error = invalid(wire.parse_parameters, {key: value})
    assert error.param == key
    assert error.code == "invalid_value"
    assert f"'{key}'" in error.message


@pytest.mark.parametrize(
    ("key", "value"),
    [("temperature", 0), ("temperature", 2), ("top_p", 1), ("max_tokens", 1), ("stop", "END"),
     ("stop", ["a", "b"]), ("stop", []), ("presence_penalty", -2.0)],
)
def test_parameter_valid_values(key: str, value: Any) -> None:
    assert wire.parse_parameters({key: value}) == {key: value}


def test_null_parameters_mean_not_set() -> None:
    assert wire.parse_parameters({"temperature": None, "max_tokens": None, "seed": 3}) == {"seed": 3}


def test_parse_tools() -> None:
    tools = wire.parse_tools(
        [{"type": "function", "function": {"name": "f", "description": "d",
                                           "parameters": {"type": "object"}, "strict": True}}]
    )
    assert tools == (Tool("f", "d", {"type": "object"}, {"strict": True}),)
    assert wire.tool_to_wire(tools[0]) == {
        "type": "function",
        "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True},
    }
    assert invalid(wire.parse_tools, [{"type": "function", "function": {}}]).param == "tools[0].function"
    assert invalid(wire.parse_tools, "f").param == "tools"


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
    assert wire.completion_events(body, "fallback") == [
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
    assert wire.completion_events(body, "my-model") == [
        ResponseStart("chatcmpl-lip", "my-model", 0),
        ReasoningDelta("hmm"),
        ToolCallDelta(index=0, id="call_1", name="f", arguments="{}"),
        ToolCallDelta(index=1, id="call_2", name="g", arguments=""),
        Finish("tool_calls"),
    ]


def test_completion_events_without_choices() -> None:
    events = wire.completion_events({"id": "x", "choices": []}, "m")
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
    events = [e for i, chunk in enumerate(chunks) for e in wire.chunk_events(chunk, i == 0, "fallback")]
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
    assert wire.chunk_events(chunk, True, "fb") == [ResponseStart("chatcmpl-lip", "fb", 0), TextDelta("x")]
    assert wire.chunk_events(chunk, False, "fb") == [TextDelta("x")]


def test_chunk_with_null_usage_has_no_usage_event() -> None:
    chunk = {"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": None}
    assert wire.chunk_events(chunk, False, "m") == [Finish("stop")]


def test_usage_from_wire() -> None:
    assert wire.usage_from_wire(None) is None
    assert wire.usage_from_wire({"prompt_tokens": 3}) == Usage(input_tokens=3)
    assert wire.usage_from_wire(
        {"prompt_tokens": 3, "completion_tokens": 4, "prompt_tokens_details": None}
    ) == Usage(3, 4, 0)


def test_usage_to_wire() -> None:
    assert wire.usage_to_wire(Usage(10, 5)) == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert wire.usage_to_wire(Usage(10, 5, cached_tokens=8)) == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 8},
    }
    usage = Usage(120, 30, 100)
    assert wire.usage_from_wire(wire.usage_to_wire(usage)) == usage
