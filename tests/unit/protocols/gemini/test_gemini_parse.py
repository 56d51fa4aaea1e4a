"""lip.protocols.gemini.parse and tools: Gemini client requests as canonical requests, validated."""

from __future__ import annotations

from typing import Any

import pytest
from gemini_support import invalid, parse, user

from lip.core.model import (
    ImagePart,
    Message,
    ProviderState,
    ReasoningPart,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
)
from lip.protocols.gemini.render import request_to_wire
from lip.protocols.gemini.tools import tool_choice_to_wire

# ---- parsing client requests ---------------------------------------------------------------------


def test_system_instruction_and_turns() -> None:
    request = parse({
        "systemInstruction": {"parts": [{"text": "be brief"}, {"text": "be kind"}]},
        "contents": [user("hi"), {"role": "model", "parts": [{"text": "hello"}]}, user("how are you?")],
    })
    assert request.model == "gemini-2.5-flash"
    assert request.messages == (
        Message("system", "be brief\nbe kind"),
        Message("user", (TextPart("hi"),)),
        Message("assistant", (TextPart("hello"),)),
        Message("user", (TextPart("how are you?"),)),
    )
    assert request.extensions == {}


def test_proto_spelling_and_missing_role_are_accepted() -> None:
    request = parse({"system_instruction": {"parts": [{"text": "sys"}]},
                     "contents": [{"parts": [{"inline_data": {"mime_type": "image/png", "data": "AAAA"}}]}],
                     "generation_config": {"max_output_tokens": 10}})
    assert request.messages == (Message("system", "sys"), Message("user", (ImagePart("data:image/png;base64,AAAA"),)))
    assert request.parameters == {"max_tokens": 10}


def test_streamed_model_contents_become_one_assistant_message() -> None:
    request = parse({"contents": [
        user("hi"),
        {"role": "model", "parts": [{"text": "Hel"}]},
        {"role": "model", "parts": [{"text": "lo"}, {"text": " there"}]},
        {"role": "model", "parts": [{"text": ""}]},
        user("bye"),
    ]})
    assert request.messages[1] == Message("assistant", (TextPart("Hello there"),))
    assert len(request.messages) == 3


def test_function_calls_and_responses_are_paired_by_name_and_order() -> None:
    request = parse({"contents": [
        user("weather in Paris and Rome?"),
        {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
            {"functionCall": {"name": "get_time", "args": {}}},
        ]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_time", "response": {"time": "noon"}}},
            {"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}},
            {"functionResponse": {"name": "get_weather", "response": {"sky": "rain"}}},
            {"text": "thanks"},
        ]},
    ]})
    assistant = request.messages[1]
    assert assistant.content is None
    assert assistant.tool_calls == (
        ToolCall("call_1", "get_weather", '{"city":"Paris"}'),
        ToolCall("call_2", "get_weather", '{"city":"Rome"}'),
        ToolCall("call_3", "get_time", "{}"),
    )
    assert request.messages[2:] == (
        Message("tool", '{"time":"noon"}', tool_call_id="call_3"),
        Message("tool", '{"sky":"sunny"}', tool_call_id="call_1"),
        Message("tool", '{"sky":"rain"}', tool_call_id="call_2"),
        Message("user", (TextPart("thanks"),)),
    )


def test_function_call_ids_given_by_the_client_are_used() -> None:
    request = parse({"contents": [
        user("x"),
        {"role": "model", "parts": [{"functionCall": {"id": "abc", "name": "f", "args": {"a": 1}}},
                                    {"functionCall": {"id": "def", "name": "f", "args": {"a": 2}}}]},
        {"role": "user", "parts": [{"functionResponse": {"id": "def", "name": "f", "response": {"r": 2}}},
                                   {"functionResponse": {"id": "abc", "name": "f", "response": {"r": 1}}}]},
    ]})
    assert [c.id for c in request.messages[1].tool_calls] == ["abc", "def"]
    assert [m.tool_call_id for m in request.messages[2:]] == ["def", "abc"]


def test_function_response_without_a_call_names_the_field() -> None:
    error = invalid({"contents": [
        user("x"), {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]})
    assert error.param == "contents[1].parts[0].functionResponse"
    assert "'f'" in error.message


def test_thoughts_signatures_and_media() -> None:
    request = parse({"contents": [
        {"role": "user", "parts": [{"text": "look"},
                                   {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/a.jpg"}}]},
        {"role": "model", "parts": [
            {"text": "pondering", "thought": True, "thoughtSignature": "c2ln"},
            {"text": "a cat"},
            {"functionCall": {"name": "zoom", "args": {}}, "thoughtSignature": "ab+/cd=="},
        ]},
    ]})
    assert request.messages[0].content == (TextPart("look"), ImagePart("https://x.test/a.jpg"))
    assistant = request.messages[1]
    assert assistant.content == (ReasoningPart("pondering", ProviderState("gemini", "c2ln")), TextPart("a cat"))
    (call,) = assistant.tool_calls
    assert call == ToolCall("call_1", "zoom", "{}", ProviderState("gemini", "ab+/cd=="))


@pytest.mark.parametrize(("body", "param"), [
    ({}, "contents"),
    ({"contents": "hi"}, "contents"),
    ({"contents": []}, "contents"),
    ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents[0].role"),
    ({"contents": [{"role": "user", "parts": []}]}, "contents[0].parts"),
    ({"contents": [{"role": "user", "parts": [{"text": 3}]}]}, "contents[0].parts[0].text"),
    ({"contents": [{"role": "user", "parts": [{"executableCode": {}}]}]}, "contents[0].parts[0]"),
    ({"contents": [{"role": "user", "parts": [{"inlineData": {"data": "AA"}}]}]},
     "contents[0].parts[0].inlineData.mimeType"),
    ({"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]},
     "contents[0].parts[0].functionCall.name"),
    ({"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f", "args": [1]}}]}]},
     "contents[0].parts[0].functionCall.args"),
    ({"contents": [user("x")], "generationConfig": {"temperature": 5}}, "generationConfig.temperature"),
    ({"contents": [user("x")], "generationConfig": {"maxOutputTokens": "10"}}, "generationConfig.maxOutputTokens"),
    ({"contents": [user("x")], "generationConfig": {"candidateCount": 2}}, "generationConfig.candidateCount"),
    ({"contents": [user("x")], "generationConfig": {"stopSequences": [1]}}, "generationConfig.stopSequences"),
    ({"contents": [user("x")], "tools": [{"functionDeclarations": [{"description": "no name"}]}]},
     "tools[0].functionDeclarations[0].name"),
    ({"contents": [user("x")], "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}},
     "toolConfig.functionCallingConfig.mode"),
    ({"contents": [user("x")], "systemInstruction": {"parts": [{"inlineData": {}}]}}, "systemInstruction.parts[0]"),
])
def test_invalid_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    error = invalid(body)
    assert error.param == param
    assert param in error.message


def test_tools_and_gemini_only_keys() -> None:
    request = parse({
        "contents": [user("x")],
        "tools": [
            {"functionDeclarations": [
                {"name": "get_weather", "description": "Weather of a city",
                 "parameters": {"type": "OBJECT", "properties": {
                     "city": {"type": "STRING", "description": "name"},
                     "days": {"type": "INTEGER", "nullable": True},
                     "tags": {"type": "ARRAY", "items": {"type": "STRING"}}}, "required": ["city"]}},
                {"name": "raw", "parametersJsonSchema": {"type": "object", "additionalProperties": False}},
            ]},
            {"googleSearch": {}},
        ],
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "cachedContent": "cachedContents/abc",
        "generationConfig": {"temperature": 0.2, "topP": 0.9, "topK": 40, "maxOutputTokens": 100,
                             "stopSequences": ["END"], "seed": 7, "presencePenalty": 0.5,
                             "thinkingConfig": {"thinkingBudget": 0}, "responseModalities": ["TEXT"]},
    })
    assert request.tools == (
        Tool("get_weather", "Weather of a city", {"type": "object", "properties": {
            "city": {"type": "string", "description": "name"},
            "days": {"type": ["integer", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["city"]}),
        Tool("raw", None, {"type": "object", "additionalProperties": False}),
    )
    assert request.parameters == {"temperature": 0.2, "top_p": 0.9, "top_k": 40, "max_tokens": 100,
                                  "stop": ["END"], "seed": 7, "presence_penalty": 0.5}
    assert request.extensions == {"gemini": {
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "cachedContent": "cachedContents/abc",
        "tools": [{"googleSearch": {}}],
        "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}, "responseModalities": ["TEXT"]},
    }}


@pytest.mark.parametrize(("config", "choice", "kept"), [
    ({"mode": "AUTO"}, ToolChoice("auto"), False),
    ({"mode": "NONE"}, ToolChoice("none"), False),
    ({"mode": "ANY"}, ToolChoice("required"), False),
    ({"mode": "ANY", "allowedFunctionNames": ["f"]}, ToolChoice("tool", "f"), False),
    ({"mode": "ANY", "allowedFunctionNames": ["f", "g"]}, ToolChoice("required"), True),
])
def test_function_calling_config(config: dict[str, Any], choice: ToolChoice, kept: bool) -> None:
    request = parse({"contents": [user("x")], "toolConfig": {"functionCallingConfig": config}})
    assert request.tool_choice == choice
    assert ("gemini" in request.extensions) is kept
    body = request_to_wire(request)
    expected = config if kept else tool_choice_to_wire(choice)
    assert body["toolConfig"] == {"functionCallingConfig": expected}


def test_json_response_mime_type_becomes_response_format() -> None:
    schema = {"type": "OBJECT", "properties": {"n": {"type": "NUMBER"}}}
    request = parse({"contents": [user("x")],
                     "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema}})
    assert request.parameters["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": {"type": "object", "properties": {"n": {"type": "number"}}}}}
    generation = request_to_wire(request)["generationConfig"]
    assert generation == {"responseMimeType": "application/json", "responseSchema": schema}, \
        "a Gemini upstream gets the client's own schema back, not a second one"
