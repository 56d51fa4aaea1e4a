"""Helpers the Gemini unit tests share: parsing a request body, a user turn, an OpenAI-style request."""

from __future__ import annotations

from typing import Any

import pytest

from lip.core.errors import InvalidRequest
from lip.core.model import (
    ChatRequest,
    ImagePart,
    Message,
    ProviderState,
    ReasoningPart,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
)
from lip.protocols.gemini.parse import parse_request


def parse(body: dict[str, Any], model: str = "gemini-2.5-flash", stream: bool = False) -> ChatRequest:
    return parse_request(body, model=model, stream=stream)


def invalid(body: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse(body)
    assert caught.value.status == 400
    return caught.value


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


def openai_style_request() -> ChatRequest:
    return ChatRequest(
        model="gemini-2.5-flash",
        messages=(
            Message("system", "be brief"),
            Message("user", "weather?"),
            Message("assistant", None, tool_calls=(ToolCall("call_a", "get_weather", '{"city": "Paris"}'),
                                                   ToolCall("call_b", "get_time", ""))),
            Message("tool", '{"sky": "sunny"}', tool_call_id="call_a"),
            Message("tool", "noon", tool_call_id="call_b"),
            Message("user", (TextPart("and?"), ImagePart("data:image/png;base64,AAAA"))),
            Message("assistant", (ReasoningPart("hmm", ProviderState("gemini", "sig")), TextPart("Sunny."))),
        ),
        tools=(Tool("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}}),
               Tool("get_time")),
        tool_choice=ToolChoice("tool", "get_weather"),
        parameters={"temperature": 0.5, "max_tokens": 50, "stop": "END", "top_p": 1, "user": "u-1",
                    "reasoning_effort": "low", "response_format": {"type": "json_object"},
                    "parallel_tool_calls": True},
    )
