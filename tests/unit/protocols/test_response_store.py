"""lip.protocols.openai_responses.surface: the surface around its store (previous_response_id, what is stored
when, and the ``response.*`` event stream); the store itself: tests/unit/state/test_memory_responses.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson
import pytest

from lip.core.errors import NotFound, ProxyError, UpstreamError, UpstreamUnreachable
from lip.core.model import (
    ChatRequest,
    ChatResponse,
    Finish,
    Message,
    ProviderState,
    ReasoningDelta,
    ReasoningPart,
    ResponseStart,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from lip.protocols.base import Incoming
from lip.protocols.openai_responses.surface import OpenAIResponses
from lip.state.responses import ResponseStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def turn(text: str) -> tuple[Message, ...]:
    return (Message(role="user", content=text),)


# ---- the surface: parse and non-streaming ------------------------------------------------------


def incoming(**body: Any) -> Incoming:
    return Incoming(body=orjson.dumps(body), path={}, query={}, headers={})


def surface() -> OpenAIResponses:
    return OpenAIResponses(ResponseStore())


def test_previous_response_id_prepends_the_stored_conversation() -> None:
    responses = surface()
    responses.store.put("resp_1", (Message(role="user", content="a"), Message(role="assistant", content="b")))
    request = responses.parse(incoming(model="m", input="c", instructions="sys", previous_response_id="resp_1"))
    assert [(m.role, m.text()) for m in request.messages] == [("system", "sys"), ("user", "a"),
                                                              ("assistant", "b"), ("user", "c")]


def test_unknown_previous_response_id_is_404_in_openai_shape() -> None:
    responses = surface()
    with pytest.raises(NotFound) as caught:
        responses.parse(incoming(model="m", input="c", previous_response_id="resp_nope"))
    status, body = responses.render_error(caught.value)
    assert status == 404
    assert json.loads(body) == {"error": {
        "message": "Previous response with id 'resp_nope' not found.", "type": "invalid_request_error",
        "param": "previous_response_id", "code": "previous_response_not_found"}}


def test_render_response_stores_the_turn_without_instructions() -> None:
    responses = surface()
    inc = incoming(model="m", input="hi", instructions="sys")
    request = responses.parse(inc)
    answer = ChatResponse(id="x", model="up", created=7, text="hello", finish_reason="stop", usage=Usage(3, 2))
    body = json.loads(responses.render_response(answer, request, inc))
    assert body["status"] == "completed"
    assert body["model"] == "up"
    assert body["created_at"] == 7
    assert body["output"][0]["content"][0]["text"] == "hello"
    assert body["usage"]["total_tokens"] == 5
    assert responses.store.get(body["id"]) == (Message(role="user", content="hi"),
                                               Message(role="assistant", content=(TextPart("hello"),)))


def test_store_false_and_failures_are_not_stored() -> None:
    responses = surface()
    inc = incoming(model="m", input="hi", store=False)
    request = responses.parse(inc)
    body = json.loads(responses.render_response(ChatResponse(text="x", finish_reason="stop"), request, inc))
    assert body["store"] is False
    assert len(responses.store) == 0
    for finish in ("error", None):
        with pytest.raises(UpstreamError):
            responses.render_response(ChatResponse(text="x", finish_reason=finish), request, inc)


def test_length_is_incomplete_and_still_stored() -> None:
    responses = surface()
    inc = incoming(model="m", input="hi", max_output_tokens=2)
    request = responses.parse(inc)
    body = json.loads(responses.render_response(ChatResponse(text="a b", finish_reason="length"), request, inc))
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["status"] == "incomplete"
    assert body["id"] in responses.store


# ---- the surface: streaming --------------------------------------------------------------------


async def _feed(events: Iterable[StreamEvent], error: ProxyError | None) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event
    if error is not None:
        raise error


def stream(responses: OpenAIResponses, request: ChatRequest, events: Iterable[StreamEvent],
           error: ProxyError | None = None) -> list[dict[str, Any]]:
    inc = incoming()

    async def run() -> list[bytes]:
        return [chunk async for chunk in responses.render_stream(_feed(events, error), request, inc)]

    out = []
    for chunk in asyncio.run(run()):
        head, data = chunk.decode().rstrip("\n").split("\n")
        assert head.startswith("event: ") and data.startswith("data: ")
        payload = json.loads(data[len("data: "):])
        assert payload["type"] == head[len("event: "):]
        out.append(payload)
    return out


START = ResponseStart(id="chatcmpl-1", model="up-model", created=1_700_000_000)
SIG = ProviderState("openai-responses", "sig")


def test_stream_of_reasoning_text_and_parallel_tool_calls() -> None:
    responses = surface()
    request = responses.parse(incoming(model="m", input="hi", stream=True))
    events = stream(responses, request, [
        START,
        ReasoningDelta("Let me "), ReasoningDelta("think."), ReasoningDelta("", SIG),
        TextDelta("Calling "), TextDelta("tools."),
        ToolCallDelta(0, id="c1", name="f", arguments=""), ToolCallDelta(1, id="c2", name="g", arguments='{"b"'),
        ToolCallDelta(0, arguments='{"a":'), ToolCallDelta(0, arguments="1}"), ToolCallDelta(1, arguments=":2}"),
        Finish("tool_calls"), UsageReport(Usage(10, 4)),
    ])
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.reasoning_text.delta", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]
    created = events[0]["response"]
    assert created["status"] == "in_progress"
    assert created["model"] == "up-model"
    assert created["output"] == []
    assert created["id"].startswith("resp_")
    final = events[-1]["response"]
    assert final["id"] == created["id"]
    assert final["status"] == "completed"
    assert final["usage"]["input_tokens"] == 10
    reasoning, message, first, second = final["output"]
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "Let me think."}]
    assert reasoning["encrypted_content"] == "sig"
    assert message["content"][0]["text"] == "Calling tools."
    assert (first["call_id"], first["name"], first["arguments"]) == ("c1", "f", '{"a":1}')
    assert (second["call_id"], second["name"], second["arguments"]) == ("c2", "g", '{"b":2}')
    assert all(item["status"] == "completed" for item in final["output"])
    done_items = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert sorted(i["id"] for i in done_items) == sorted(i["id"] for i in final["output"])
    assert responses.store.get(created["id"]) == (
        Message(role="user", content="hi"),
        Message(role="assistant", content=(ReasoningPart("Let me think.", SIG), TextPart("Calling tools.")),
                tool_calls=(ToolCall("c1", "f", '{"a":1}'), ToolCall("c2", "g", '{"b":2}'))),
    )


def test_stream_cut_by_length_is_incomplete() -> None:
    responses = surface()
    request = responses.parse(incoming(model="m", input="hi", stream=True, max_output_tokens=2))
    events = stream(responses, request, [START, TextDelta("a b"), Finish("length"), UsageReport(Usage(1, 2))])
    terminal = events[-1]
    assert terminal["type"] == "response.incomplete"
    assert terminal["response"]["status"] == "incomplete"
    assert terminal["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert terminal["response"]["output"][0]["status"] == "incomplete"
    assert terminal["response"]["id"] in responses.store


def test_stream_failure_mid_way_is_failed_then_error_and_not_stored() -> None:
    responses = surface()
    request = responses.parse(incoming(model="m", input="hi", stream=True))
    error = UpstreamUnreachable("backend 'up' connection failed mid-stream")
    events = stream(responses, request, [START, TextDelta("partial")], error)
    failed, err = events[-2:]
    assert failed["type"] == "response.failed"
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": "server_error", "message": error.message}
    assert failed["response"]["output"][0]["content"][0]["text"] == "partial"
    assert failed["response"]["output"][0]["status"] == "incomplete"
    assert err == {"type": "error", "sequence_number": failed["sequence_number"] + 1,
                   "code": "upstream_unreachable", "message": error.message, "param": None,
                   "error": {"type": "api_error", "code": "upstream_unreachable", "message": error.message,
                             "param": None}}
    assert "response.completed" not in [e["type"] for e in events]
    assert "response.output_text.done" not in [e["type"] for e in events]
    assert len(responses.store) == 0


def test_stream_without_a_finish_reason_is_failed() -> None:
    responses = surface()
    request = responses.parse(incoming(model="m", input="hi", stream=True))
    events = stream(responses, request, [START, TextDelta("partial")])
    assert [e["type"] for e in events[-2:]] == ["response.failed", "error"]
    assert events[-1]["code"] == "upstream_incomplete"
    assert len(responses.store) == 0


def test_stream_failing_before_any_event_still_starts_with_created() -> None:
    responses = surface()
    request = responses.parse(incoming(model="m", input="hi", stream=True))
    events = stream(responses, request, [], UpstreamUnreachable("gone"))
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.failed", "error"]
    assert events[0]["response"]["model"] == "m"
