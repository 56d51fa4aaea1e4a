"""lip.protocols.gemini.render: canonical requests as the body a Gemini upstream receives."""

from __future__ import annotations

import pytest
from gemini_support import openai_style_request, parse, user

from lip.core.errors import InvalidRequest
from lip.core.model import ChatRequest, Message, ProviderState, ToolCall
from lip.protocols.gemini.codec import GeminiCodec
from lip.protocols.gemini.render import request_to_wire

# ---- canonical → Gemini upstream request ----------------------------------------------------------


def test_request_to_wire() -> None:
    body = request_to_wire(openai_style_request())
    assert body == {
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                                        {"functionCall": {"name": "get_time", "args": {}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}},
                {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}},
                {"text": "and?"},
                {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
            ]},
            {"role": "model", "parts": [{"text": "Sunny."}]},
        ],
        "tools": [{"functionDeclarations": [
            {"name": "get_weather", "description": "Weather",
             "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}}},
            {"name": "get_time"},
        ]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
        "generationConfig": {"temperature": 0.5, "topP": 1, "stopSequences": ["END"], "maxOutputTokens": 50,
                             "responseMimeType": "application/json", "thinkingConfig": {"thinkingBudget": 1024}},
    }


def test_tool_result_for_an_unknown_call_names_the_message() -> None:
    request = ChatRequest(model="m", messages=(Message("user", "x"), Message("tool", "1", tool_call_id="nope")))
    with pytest.raises(InvalidRequest) as caught:
        request_to_wire(request)
    assert caught.value.param == "messages[1].tool_call_id"


def test_signature_rides_back_on_the_function_call() -> None:
    call = ToolCall("call_9", "zoom", '{"x": 1}', ProviderState("gemini", "ab+/cd=="))
    request = ChatRequest(model="m", messages=(Message("user", "x"), Message("assistant", None, tool_calls=(call,))))
    (_, model_turn) = request_to_wire(request)["contents"]
    assert model_turn["parts"] == [{"functionCall": {"name": "zoom", "args": {"x": 1}}, "thoughtSignature": "ab+/cd=="}]


def test_gemini_extensions_round_trip_to_a_gemini_upstream() -> None:
    body = {
        "contents": [user("x")],
        "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]},
                  {"codeExecution": {}}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f", "g"]}},
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
        "generationConfig": {"temperature": 1, "maxOutputTokens": 5, "thinkingConfig": {"includeThoughts": True}},
    }
    assert GeminiCodec().body(parse(body), "gemini-2.5-flash") == body
