"""lip.protocols.openai_chat.parse (and render, for round trips): parsing client requests, rendering messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lip.core.errors import InvalidRequest
from lip.core.model import (
    ImagePart,
    Message,
    TextPart,
    Tool,
    ToolCall,
)
from lip.protocols.openai_chat import parse, render


def invalid(call: Any, *args: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        call(*args)
    assert caught.value.status == 400
    return caught.value


# ---- parse_messages ------------------------------------------------------------------------------


def test_parse_text_messages() -> None:
    messages = parse.parse_messages(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi", "name": "ann"}]
    )
    assert messages == (Message("system", "be brief"), Message("user", "hi", name="ann"))


def test_missing_messages() -> None:
    error = invalid(parse.parse_messages, None)
    assert error.param == "messages"
    assert error.code == "missing_required_parameter"


def test_empty_messages() -> None:
    error = invalid(parse.parse_messages, [])
    assert error.param == "messages"
    assert "at least one" in error.message


@pytest.mark.parametrize("raw", ["hello", {"role": "user"}, 3])
def test_messages_not_a_list(raw: Any) -> None:
    error = invalid(parse.parse_messages, raw)
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
    error = invalid(parse.parse_messages, raw)
    assert error.param == param
    assert f"'{param}'" in error.message


def test_tool_message_without_tool_call_id_is_a_missing_parameter() -> None:
    error = invalid(parse.parse_messages, [{"role": "tool", "content": "42"}])
    assert error.code == "missing_required_parameter"
    assert error.param == "messages[0].tool_call_id"


def test_assistant_message_may_have_no_content() -> None:
    (message,) = parse.parse_messages([{"role": "assistant", "content": None}])
    assert message == Message("assistant", None)


def test_parse_image_parts() -> None:
    (message,) = parse.parse_messages(
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
    messages = parse.parse_messages(
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
    (message,) = parse.parse_messages([raw])
    assert render.message_to_wire(message) == raw
    assert raw == before  # parsing does not change the client's body


def test_extra_message_keys_are_kept_as_extensions() -> None:
    (message,) = parse.parse_messages([{"role": "assistant", "content": "x", "reasoning_content": "why"}])
    assert dict(message.extensions) == {"reasoning_content": "why"}


def test_extra_key_of_a_two_key_message_is_kept() -> None:
    call = {"name": "f", "arguments": "{}"}
    (message,) = parse.parse_messages([{"role": "assistant", "function_call": call}])
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
    assert parse.parse_parameters(body) == {
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
    error = invalid(parse.parse_parameters, {key: value})
    assert error.param == key
    assert error.code == "invalid_value"
    assert f"'{key}'" in error.message


@pytest.mark.parametrize(
    ("key", "value"),
    [("temperature", 0), ("temperature", 2), ("top_p", 1), ("max_tokens", 1), ("stop", "END"),
     ("stop", ["a", "b"]), ("stop", []), ("presence_penalty", -2.0)],
)
def test_parameter_valid_values(key: str, value: Any) -> None:
    assert parse.parse_parameters({key: value}) == {key: value}


def test_null_parameters_mean_not_set() -> None:
    assert parse.parse_parameters({"temperature": None, "max_tokens": None, "seed": 3}) == {"seed": 3}


def test_parse_tools() -> None:
    tools = parse.parse_tools(
        [{"type": "function", "function": {"name": "f", "description": "d",
                                           "parameters": {"type": "object"}, "strict": True}}]
    )
    assert tools == (Tool("f", "d", {"type": "object"}, {"strict": True}),)
    assert render.tool_to_wire(tools[0]) == {
        "type": "function",
        "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True},
    }
    assert invalid(parse.parse_tools, [{"type": "function", "function": {}}]).param == "tools[0].function"
    assert invalid(parse.parse_tools, "f").param == "tools"
