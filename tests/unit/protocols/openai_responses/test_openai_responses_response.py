"""lip.protocols.openai_responses.response: output items, usage and response objects rendered for a client."""

from __future__ import annotations

from typing import Any

import pytest

from lip.core.model import (
    ChatResponse,
    Message,
    ProviderState,
    ReasoningPart,
    TextPart,
    ToolCall,
    Usage,
)
from lip.protocols.openai_responses import common
from lip.protocols.openai_responses import parse as parse_wire
from lip.protocols.openai_responses import response as response_wire


def parse(**body: Any) -> Any:
    return parse_wire.parse_request({"model": "m", **body})


# ---- rendering ---------------------------------------------------------------------------------


def test_usage_to_wire() -> None:
    assert response_wire.usage_to_wire(Usage(10, 5, cached_tokens=4)) == {
        "input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15,
    }
    assert response_wire.usage_to_wire(None) is None


@pytest.mark.parametrize(("finish", "status", "details"), [
    ("stop", "completed", None),
    ("tool_calls", "completed", None),
    ("length", "incomplete", {"reason": "max_output_tokens"}),
    ("content_filter", "incomplete", {"reason": "content_filter"}),
    ("error", "failed", None),
    (None, "failed", None),
])
def test_status_for(finish: str | None, status: str, details: dict[str, str] | None) -> None:
    assert response_wire.status_for(finish) == (status, details)


def test_output_items_of_a_whole_answer() -> None:
    answer = ChatResponse(text="Hi", reasoning="think", reasoning_signature=ProviderState("openai-responses", "sig"),
                          tool_calls=[ToolCall("c1", "f", '{"a":1}')], finish_reason="tool_calls")
    reasoning, message, call = response_wire.output_items(answer, "completed")
    assert reasoning["id"].startswith("rs_")
    assert reasoning == {"id": reasoning["id"], "type": "reasoning", "status": "completed", "summary": [],
                         "content": [{"type": "reasoning_text", "text": "think"}], "encrypted_content": "sig"}
    assert message["id"].startswith("msg_")
    assert message == {"id": message["id"], "type": "message", "status": "completed", "role": "assistant",
                       "content": [{"type": "output_text", "text": "Hi", "annotations": [], "logprobs": []}]}
    assert call["id"].startswith("fc_")
    assert call == {"id": call["id"], "type": "function_call", "status": "completed", "call_id": "c1", "name": "f",
                    "arguments": '{"a":1}'}
    # the output read back is the assistant turn, as the store keeps it
    assert parse_wire.output_messages([reasoning, message, call]) == (Message(
        role="assistant", content=(ReasoningPart("think", ProviderState("openai-responses", "sig")), TextPart("Hi")),
        tool_calls=(ToolCall("c1", "f", '{"a":1}'),)),)


def test_output_items_always_have_a_message_unless_tools_were_called() -> None:
    (empty,) = response_wire.output_items(ChatResponse(finish_reason="stop"), "completed")
    assert empty["content"][0]["text"] == ""
    (call,) = response_wire.output_items(ChatResponse(tool_calls=[ToolCall("c", "f", "{}")]), "incomplete")
    assert call["type"] == "function_call"
    assert call["status"] == "incomplete"


def test_response_object_echoes_the_request() -> None:
    request = parse(input="x", instructions="sys", temperature=0.1, max_output_tokens=9, metadata={"a": "b"},
                    tools=[{"type": "function", "name": "f"}], tool_choice="none", store=False, user="u",
                    previous_response_id="resp_0")
    body = response_wire.response_object(request, response_id="resp_1", created_at=5, model="up-model",
                                status="incomplete", output=[], usage=Usage(1, 2),
                                incomplete_details={"reason": "max_output_tokens"})
    assert body["id"] == "resp_1"
    assert body["object"] == "response"
    assert body["created_at"] == 5
    assert body["model"] == "up-model"
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["error"] is None
    assert body["instructions"] == "sys"
    assert body["temperature"] == 0.1
    assert body["top_p"] is None
    assert body["max_output_tokens"] == 9
    assert body["metadata"] == {"a": "b"}
    assert body["tool_choice"] == "none"
    assert body["tools"] == [{"type": "function", "name": "f", "description": None, "parameters": None}]
    assert body["store"] is False
    assert body["user"] == "u"
    assert body["previous_response_id"] == "resp_0"
    assert body["parallel_tool_calls"] is True
    assert body["text"] == {"format": {"type": "text"}}
    assert body["usage"]["total_tokens"] == 3


def test_ids_are_unguessable() -> None:
    a, b = common.new_id("resp"), common.new_id("resp")
    assert a != b
    assert a.startswith("resp_") and len(a) == len("resp_") + 48
