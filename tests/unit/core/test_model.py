"""lip.core.model: the Collector and ChatRequest parameter precedence."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pytest

from lip.core.errors import MAX_RETRY_AFTER, ProxyError, wait_seconds
from lip.core.model import (
    MAX_TOKEN_COUNT,
    ChatRequest,
    Collector,
    Finish,
    ImagePart,
    Message,
    ReasoningDelta,
    ResponseStart,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
    token_count,
)


def collect(*events: object) -> Collector:
    collector = Collector()
    for event in events:
        collector.add(event)  # type: ignore[arg-type]
    return collector


def test_collector_joins_text_and_reasoning() -> None:
    usage = Usage(input_tokens=12, output_tokens=5, cached_tokens=4)
    result = collect(
        ResponseStart(id="chatcmpl-1", model="gpt-4o", created=1700000000),
        ReasoningDelta("thinking "),
        ReasoningDelta("hard"),
        TextDelta("Hel"),
        TextDelta(""),
        TextDelta("lo"),
        Finish("stop"),
        UsageReport(usage),
    ).result()
    assert (result.id, result.model, result.created) == ("chatcmpl-1", "gpt-4o", 1700000000)
    assert result.text == "Hello"
    assert result.reasoning == "thinking hard"
    assert result.tool_calls == []
    assert result.finish_reason == "stop"
    assert result.usage == usage
    assert result.usage.total_tokens == 17


def test_collector_joins_tool_call_pieces_by_index() -> None:
    result = collect(
        ToolCallDelta(index=1, id="call_b", name="get_time", arguments='{"tz":'),
        ToolCallDelta(index=0, id="call_a", name="get_weather", arguments='{"city"'),
        ToolCallDelta(index=0, arguments=':"Paris"}'),
        ToolCallDelta(index=1, arguments='"UTC"}'),
        Finish("tool_calls"),
    ).result()
    assert result.tool_calls == [
        ToolCall(id="call_a", name="get_weather", arguments='{"city":"Paris"}'),
        ToolCall(id="call_b", name="get_time", arguments='{"tz":"UTC"}'),
    ]
    assert result.finish_reason == "tool_calls"
    assert result.text == ""


def test_collector_keeps_id_and_name_of_the_first_piece() -> None:
    # some upstreams repeat the id and name on every piece: the name must not be doubled
    result = collect(
        ToolCallDelta(index=0, id="call_1", name="search", arguments="{"),
        ToolCallDelta(index=0, id="call_1", name="search", arguments="}"),
        ToolCallDelta(index=0, arguments=""),
    ).result()
    assert result.tool_calls == [ToolCall(id="call_1", name="search", arguments="{}")]


def test_collector_fills_a_missing_id() -> None:
    result = collect(ToolCallDelta(index=2, name="f", arguments="{}")).result()
    assert result.tool_calls == [ToolCall(id="call_2", name="f", arguments="{}")]


def test_collector_without_events() -> None:
    result = Collector().result()
    assert (result.text, result.reasoning, result.tool_calls, result.finish_reason, result.usage) == (
        "",
        "",
        [],
        None,
        None,
    )


def request(**parameters: object) -> ChatRequest:
    return ChatRequest(model="m", messages=(Message("user", "hi"),), parameters=parameters)


def test_with_parameters_client_beats_defaults() -> None:
    original = request(temperature=0.1)
    updated = original.with_parameters({"temperature": 0.7, "top_p": 0.9})
    assert dict(updated.parameters) == {"temperature": 0.1, "top_p": 0.9}
    assert dict(original.parameters) == {"temperature": 0.1}  # the original is not changed
    assert updated.messages == original.messages


def test_with_parameters_nothing_missing_returns_the_same_request() -> None:
    original = request(temperature=0.1)
    assert original.with_parameters({"temperature": 0.7}) is original
    assert original.with_parameters({}) is original


def test_with_parameters_on_empty_parameters() -> None:
    original = ChatRequest(model="m", messages=(Message("user", "hi"),))
    assert dict(original.with_parameters({"temperature": 0.3}).parameters) == {"temperature": 0.3}
    assert dict(original.parameters) == {}


def test_max_tokens_default_not_added_when_client_set_max_completion_tokens() -> None:
    updated = request(max_completion_tokens=100).with_parameters({"max_tokens": 4000, "temperature": 0.2})
    assert dict(updated.parameters) == {"max_completion_tokens": 100, "temperature": 0.2}
    assert updated.max_output_tokens == 100
    only_max = request(max_completion_tokens=100).with_parameters({"max_tokens": 4000})
    assert "max_tokens" not in only_max.parameters


def test_max_tokens_default_added_when_client_set_neither() -> None:
    updated = request().with_parameters({"max_tokens": 4000})
    assert updated.parameters["max_tokens"] == 4000
    assert updated.max_output_tokens == 4000


def test_max_output_tokens_prefers_max_completion_tokens() -> None:
    assert request(max_tokens=10, max_completion_tokens=20).max_output_tokens == 20
    assert request(max_tokens=10).max_output_tokens == 10
    assert request().max_output_tokens is None
    assert request(max_tokens="10").max_output_tokens is None


def test_with_parameters_does_not_mutate_the_defaults() -> None:
    defaults = MappingProxyType({"temperature": 0.5})
    request().with_parameters(defaults)
    assert dict(defaults) == {"temperature": 0.5}


def test_message_text_joins_text_parts() -> None:
    message = Message("user", (TextPart("a"), ImagePart("https://x/img.png"), TextPart("b")))
    assert message.text() == "a\nb"
    assert Message("assistant", None).text() == ""
    assert Message("user", "plain").text() == "plain"


def test_evolve_is_replace_without_its_cost() -> None:
    request = ChatRequest(model="a", messages=(Message(role="user", content="hi"),), stream=True,
                          parameters={"temperature": 0.5})
    changed = request.evolve(model="b", parameters={"max_tokens": 3})
    assert changed == dataclasses.replace(request, model="b", parameters={"max_tokens": 3})
    assert request.model == "a" and changed.messages is request.messages and changed.stream
    with pytest.raises(TypeError, match="modle"):
        request.evolve(modle="typo")
    with pytest.raises(dataclasses.FrozenInstanceError):
        changed.model = "c"  # type: ignore[misc]


def test_token_counts_from_an_upstream_are_clamped() -> None:
    assert [token_count(v) for v in (12, 12.0, -3, 1e29, float("nan"), float("inf"), "12", None, True)] == [
        12, 12, 0, MAX_TOKEN_COUNT, 0, MAX_TOKEN_COUNT, 0, 0, 0]


def test_waits_from_an_upstream_are_clamped() -> None:
    assert [wait_seconds(v) for v in (None, float("nan"), -1.0, 2.5, float("inf"))] == [
        None, None, 0.0, 2.5, MAX_RETRY_AFTER]
    assert ProxyError("x", retry_after=float("inf")).retry_after == MAX_RETRY_AFTER
