"""The Responses API as an upstream protocol (openai_responses render, response, codec): canonical → request
body, response objects and events → canonical."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from lip.core.errors import ProxyError
from lip.core.model import (
    ChatRequest,
    Finish,
    Message,
    ProviderItem,
    ProviderState,
    ReasoningDelta,
    ReasoningPart,
    ResponseStart,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
    UsageReport,
)
from lip.protocols import portable
from lip.protocols.anthropic.surface import parse_request as anthropic_request
from lip.protocols.openai_chat.parse import parse_request as chat_request
from lip.protocols.openai_responses import parse, render
from lip.protocols.openai_responses import response as response_wire
from lip.protocols.openai_responses.codec import StreamReader
from lip.protocols.openai_responses.common import PROTOCOL

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}


def test_a_chat_request_as_a_responses_body() -> None:
    request = chat_request(orjson.dumps({
        "model": "m", "max_tokens": 50, "temperature": 0.2, "reasoning_effort": "low",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "-3 C"},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": WEATHER}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "stream": True,
    }))
    body = render.request_to_wire(request, "gpt-5")
    assert body["input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking.",
                                                               "annotations": []}]},
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "-3 C"},
    ]
    assert body["tools"] == [{"type": "function", "name": "weather", "description": None, "parameters": WEATHER,
                              "strict": False}]
    assert body["tool_choice"] == {"type": "function", "name": "weather"}
    assert (body["max_output_tokens"], body["temperature"], body["reasoning"], body["stream"]) == (
        50, 0.2, {"effort": "low"}, True)
    assert "messages" not in body and "previous_response_id" not in body


def test_reasoning_of_other_vendors_is_not_given_to_openai() -> None:
    """Whatever protocol the client spoke: only a signature a Responses upstream made goes back to one."""
    def turn(signature: ProviderState) -> tuple[Message, ...]:
        return (Message("user", "q"), Message("assistant", (ReasoningPart("thought", signature), TextPart("a"))),
                Message("user", "next"))
    for other in ("anthropic", "gemini"):
        theirs = render.input_to_wire(turn(ProviderState(other, "their-sig")), ())
        assert [i.get("type", "message") for i in theirs] == ["message", "message", "message"]
    own = render.input_to_wire(turn(ProviderState(PROTOCOL, "enc")), ())
    assert own[1] == {"type": "reasoning", "encrypted_content": "enc",
                      "summary": [{"type": "summary_text", "text": "thought"}]}


def test_instructions_and_previous_response_id_of_a_responses_client() -> None:
    request = parse.parse_request(
        {"model": "m", "instructions": "Rules.", "input": "hi", "store": False, "previous_response_id": "resp_1",
         "include": ["reasoning.encrypted_content"]},
        history=(Message("user", "before"), Message("assistant", "earlier")))
    body = render.request_to_wire(request, "gpt-5")
    assert body["instructions"] == "Rules."
    assert body["input"][0] == {"role": "user", "content": "before"}
    assert body["store"] is False and body["include"] == ["reasoning.encrypted_content"]
    assert "previous_response_id" not in body, "the proxy sends the conversation whole"


def test_anthropic_effort_and_documents_for_a_responses_upstream() -> None:
    request = anthropic_request(orjson.dumps({
        "model": "m", "max_tokens": 10, "output_config": {"effort": "max"},
        "messages": [{"role": "user", "content": [
            {"type": "document", "title": "spec.pdf", "source": {"type": "base64", "media_type": "application/pdf",
                                                                  "data": "JVBER"}},
            {"type": "text", "text": "Summarise"}]}],
    }))
    body = render.request_to_wire(request, "gpt-5")
    assert body["reasoning"] == {"effort": "xhigh"}
    assert body["input"][0]["content"] == [
        {"type": "input_file", "filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBER"},
        {"type": "input_text", "text": "Summarise"}]


def _response(output: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": "resp_9", "model": "gpt-5", "created_at": 7, "status": "completed", "output": output,
            "usage": {"input_tokens": 11, "output_tokens": 5, "input_tokens_details": {"cached_tokens": 4},
                      "output_tokens_details": {"reasoning_tokens": 2}}, **extra}


def test_a_whole_response_as_events() -> None:
    events = response_wire.response_events(_response([
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "think"}], "encrypted_content": "enc"},
        {"type": "web_search_call", "id": "ws", "status": "completed"},
        {"type": "message", "content": [{"type": "output_text", "text": "Hi"}]},
        {"type": "function_call", "call_id": "c1", "name": "spawn_agent", "namespace": "multi", "arguments": "{}"},
        {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "*** Begin"},
    ]), "fallback")
    assert events == [
        ResponseStart("resp_9", "gpt-5", 7),
        ReasoningDelta("think", ProviderState(PROTOCOL, "enc")),
        ProviderItem("openai-responses", {"type": "web_search_call", "id": "ws", "status": "completed"}),
        TextDelta("Hi"),
        ToolCallDelta(index=0, id="c1", name="multi__spawn_agent", arguments="{}"),
        ToolCallDelta(index=1, id="c2", name="apply_patch", arguments='{"input":"*** Begin"}'),
        Finish("tool_calls"),
        UsageReport(Usage(input_tokens=11, output_tokens=5, cached_tokens=4, reasoning_tokens=2)),
    ]


def test_incomplete_and_failed_responses() -> None:
    cut = response_wire.response_events(_response([], status="incomplete",
                                         incomplete_details={"reason": "max_output_tokens"}), "m")
    assert Finish("length") in cut
    with pytest.raises(ProxyError) as failed:
        response_wire.response_events(_response([], status="failed",
                                                error={"code": "server_error", "message": "boom"}), "m")
    assert failed.value.message == "boom" and failed.value.status == 502


def _feed(events: list[dict[str, Any]]) -> tuple[list[Any], StreamReader]:
    reader = StreamReader("m")
    out: list[Any] = []
    for event in events:
        out.extend(reader.feed(event))
    return out, reader


def test_a_stream_with_text_a_call_and_a_custom_call() -> None:
    out, reader = _feed([
        {"type": "response.created", "response": {"id": "resp_1", "model": "gpt-5", "created_at": 3}},
        {"type": "response.reasoning_summary_text.delta", "delta": "hmm"},
        {"type": "response.output_item.done", "output_index": 0,
         "item": {"type": "reasoning", "summary": [], "encrypted_content": "enc"}},
        {"type": "response.output_text.delta", "output_index": 1, "delta": "Hel"},
        {"type": "response.output_text.delta", "output_index": 1, "delta": "lo"},
        {"type": "response.output_item.added", "output_index": 2,
         "item": {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": ""}},
        {"type": "response.function_call_arguments.delta", "output_index": 2, "delta": '{"city":'},
        {"type": "response.function_call_arguments.delta", "output_index": 2, "delta": '"Oslo"}'},
        {"type": "response.output_item.added", "output_index": 3,
         "item": {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": ""}},
        {"type": "response.custom_tool_call_input.delta", "output_index": 3, "delta": "*** Be"},
        {"type": "response.custom_tool_call_input.delta", "output_index": 3, "delta": "gin"},
        {"type": "response.output_item.done", "output_index": 3,
         "item": {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch"}},
    ])
    assert not reader.finished
    assert out == [
        ResponseStart("resp_1", "gpt-5", 3), ReasoningDelta("hmm"), ReasoningDelta("", ProviderState(PROTOCOL, "enc")),
        TextDelta("Hel"), TextDelta("lo"),
        ToolCallDelta(index=0, id="c1", name="weather", arguments=""),
        ToolCallDelta(index=0, arguments='{"city":'), ToolCallDelta(index=0, arguments='"Oslo"}'),
        ToolCallDelta(index=1, id="c2", name="apply_patch", arguments='{"input":"*** Begin"}'),
    ]
    done, reader = _feed([{"type": "response.completed", "response": _response([])}])
    assert reader.finished and done[0] == Finish("stop")


def test_stream_errors() -> None:
    with pytest.raises(ProxyError) as failed:
        _feed([{"type": "response.failed", "response": {"error": {"code": "rate_limit_exceeded", "message": "slow"}}}])
    assert failed.value.code == "rate_limit_exceeded"
    with pytest.raises(ProxyError):
        _feed([{"type": "error", "code": "server_error", "message": "broken"}])


def test_a_calls_tool_shape_goes_back_to_a_responses_upstream() -> None:
    custom = Tool("apply_patch", kind="custom", spec={"type": "custom", "name": "apply_patch"},
                  protocol="openai-responses")
    messages = (Message("user", "fix it"),
                Message("assistant", None, tool_calls=(ToolCall("c9", "apply_patch", '{"input": "*** Begin"}'),)),
                Message("tool", "Done", tool_call_id="c9"))
    items = render.input_to_wire(messages, (custom,))
    assert items[1:] == [{"type": "custom_tool_call", "call_id": "c9", "name": "apply_patch", "input": "*** Begin"},
                         {"type": "custom_tool_call_output", "call_id": "c9", "output": "Done"}]
    body = render.request_to_wire(ChatRequest("m", messages, tools=(custom,), tool_choice=ToolChoice("auto")), "x")
    assert body["tools"] == [{"type": "custom", "name": "apply_patch"}] and body["tool_choice"] == "auto"


def test_an_anthropic_thinking_budget_is_an_effort_elsewhere() -> None:
    request = anthropic_request(orjson.dumps({
        "model": "m", "max_tokens": 10, "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [{"role": "user", "content": "hi"}]}))
    assert render.request_to_wire(request, "gpt-5")["reasoning"] == {"effort": "medium"}
    assert portable.dropped(request, "openai-responses") == ()
    assert portable.dropped(request, "openai", "gpt-4o") == ("thinking",), "a model without reasoning"
    assert portable.dropped(request, "openai", "o3") == ()
