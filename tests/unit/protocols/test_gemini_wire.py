"""lip.protocols.gemini.format and its two users: parsing client requests, the upstream codec, rendering answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from lip.backends.connector import UpstreamMalformed
from lip.core.errors import InvalidRequest, LimitExceeded, ProxyError, RateLimited
from lip.core.model import (
    ChatRequest,
    Collector,
    Finish,
    ImagePart,
    Message,
    ReasoningDelta,
    ReasoningPart,
    ResponseStart,
    StreamEvent,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
    UsageReport,
)
from lip.core.sse import SSEDecoder
from lip.protocols.base import Incoming, ModelInfo
from lip.protocols.gemini import format as wire
from lip.protocols.gemini.codec import GeminiCodec
from lip.protocols.gemini.surface import GeminiGenerate, is_stream


def parse(body: dict[str, Any], model: str = "gemini-2.5-flash", stream: bool = False) -> ChatRequest:
    return wire.parse_request(body, model=model, stream=stream)


def invalid(body: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse(body)
    assert caught.value.status == 400
    return caught.value


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


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
    assert assistant.content == (ReasoningPart("pondering", "c2ln"), TextPart("a cat"))
    (call,) = assistant.tool_calls
    assert call.id == "call_1__thought__ab-_cd"
    assert wire.split_call_id(call.id) == ("call_1", "ab+/cd==")
    assert wire.split_call_id("call_plain") == ("call_plain", None)


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
    body = wire.request_to_wire(request)
    expected = config if kept else wire.tool_choice_to_wire(choice)
    assert body["toolConfig"] == {"functionCallingConfig": expected}


def test_json_response_mime_type_becomes_response_format() -> None:
    schema = {"type": "OBJECT", "properties": {"n": {"type": "NUMBER"}}}
    request = parse({"contents": [user("x")],
                     "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema}})
    assert request.parameters["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": {"type": "object", "properties": {"n": {"type": "number"}}}}}
    generation = wire.request_to_wire(request)["generationConfig"]
    assert generation == {"responseMimeType": "application/json", "responseSchema": schema}, \
        "a Gemini upstream gets the client's own schema back, not a second one"


# ---- canonical → Gemini upstream request ----------------------------------------------------------


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
            Message("assistant", (ReasoningPart("hmm", "sig"), TextPart("Sunny."))),
        ),
        tools=(Tool("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}}),
               Tool("get_time")),
        tool_choice=ToolChoice("tool", "get_weather"),
        parameters={"temperature": 0.5, "max_tokens": 50, "stop": "END", "top_p": 1, "user": "u-1",
                    "reasoning_effort": "low", "response_format": {"type": "json_object"},
                    "parallel_tool_calls": True},
    )


def test_request_to_wire() -> None:
    body = wire.request_to_wire(openai_style_request())
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
        wire.request_to_wire(request)
    assert caught.value.param == "messages[1].tool_call_id"


def test_signature_rides_back_on_the_function_call() -> None:
    call = ToolCall(wire.join_call_id("call_9", "ab+/cd=="), "zoom", '{"x": 1}')
    request = ChatRequest(model="m", messages=(Message("user", "x"), Message("assistant", None, tool_calls=(call,))))
    (_, model_turn) = wire.request_to_wire(request)["contents"]
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


def test_codec_url_and_auth() -> None:
    codec = GeminiCodec()
    base = "https://generativelanguage.googleapis.com/v1beta"
    assert codec.url(base, "gemini-2.5-pro", False) == base + "/models/gemini-2.5-pro:generateContent"
    streamed = codec.url(base, "models/gemini-2.5-pro", True)
    assert streamed == base + "/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    assert codec.default_auth("k") == {"x-goog-api-key": "k"}


# ---- Gemini upstream answers → events -------------------------------------------------------------


def chunk(parts: list[dict[str, Any]], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    body: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash", "responseId": "resp-1"}
    if usage:
        body["usageMetadata"] = usage
    return b"data: " + orjson.dumps(body) + b"\r\n\r\n"


def decode(raw: bytes, pieces: int = 7) -> tuple[list[StreamEvent], bool]:
    decoder = GeminiCodec().decoder("fallback")
    reader = SSEDecoder()
    events: list[StreamEvent] = []
    size = max(1, len(raw) // pieces)
    for start in range(0, len(raw), size):
        for sse in reader.feed(raw[start:start + size]):
            result = decoder.feed(sse)
            assert result is not None, "a Gemini stream has no end marker"
            events.extend(result)
    for sse in reader.finish():
        events.extend(decoder.feed(sse) or [])
    return events, decoder.finished


def test_decoder_on_a_stream_with_thoughts_text_function_calls_and_usage() -> None:
    usage = {"promptTokenCount": 12, "candidatesTokenCount": 3, "totalTokenCount": 15}
    raw = (
        chunk([{"text": "thinking", "thought": True, "thoughtSignature": "c2ln"}], usage=usage)
        + chunk([{"text": "Let me check."}], usage=usage)
        + chunk([{"functionCall": {"name": "get_weather", "args": {"city": "Paris", "days": [1, 2]}},
                  "thoughtSignature": "AB/+"},
                 {"functionCall": {"id": "given", "name": "get_time", "args": {}}}],
                finish="STOP",
                usage={"promptTokenCount": 12, "candidatesTokenCount": 20, "thoughtsTokenCount": 30,
                       "cachedContentTokenCount": 4, "totalTokenCount": 62})
    )
    events, finished = decode(raw)
    assert finished
    start = events[0]
    assert isinstance(start, ResponseStart) and (start.id, start.model) == ("resp-1", "gemini-2.5-flash")
    first_call = events[3]
    assert isinstance(first_call, ToolCallDelta)
    assert first_call.id is not None and wire.split_call_id(first_call.id)[1] == "AB/+"
    assert events[1:] == [
        ReasoningDelta("thinking", "c2ln"),
        TextDelta("Let me check."),
        ToolCallDelta(index=0, id=first_call.id, name="get_weather", arguments='{"city":"Paris","days":[1,2]}'),
        ToolCallDelta(index=1, id="given", name="get_time", arguments="{}"),
        Finish("tool_calls"),
        UsageReport(Usage(input_tokens=12, output_tokens=50, cached_tokens=4, reasoning_tokens=30)),
    ]


@pytest.mark.parametrize(("reason", "expected"), [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"), ("MALFORMED_FUNCTION_CALL", "error"), ("OTHER", "stop"),
])
def test_finish_reasons(reason: str, expected: str) -> None:
    events, finished = decode(chunk([{"text": "x"}], finish=reason))
    assert finished
    assert Finish(expected) in events


def test_stream_without_finish_reason_is_not_finished() -> None:
    events, finished = decode(chunk([{"text": "partial"}]))
    assert not finished
    assert TextDelta("partial") in events


def test_error_object_in_the_stream_raises() -> None:
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    raw = chunk([{"text": "a"}]) + b"data: " + orjson.dumps(error) + b"\n\n"
    with pytest.raises(ProxyError) as caught:
        decode(raw, pieces=1)
    assert (caught.value.status, caught.value.code) == (503, "UNAVAILABLE")
    assert "overloaded" in caught.value.message


def test_malformed_chunk_raises() -> None:
    with pytest.raises(UpstreamMalformed):
        decode(b"data: {oops\n\n")


def test_whole_answer_events_and_blocked_prompt() -> None:
    codec = GeminiCodec()
    body = orjson.loads(chunk([{"text": "Hi"}], finish="MAX_TOKENS",
                              usage={"promptTokenCount": 2, "candidatesTokenCount": 1})[6:])
    assert codec.events(body, "m")[1:] == [TextDelta("Hi"), Finish("length"), UsageReport(Usage(2, 1))]
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}
    assert codec.events(blocked, "m")[1:] == [Finish("content_filter"), UsageReport(Usage(3, 0))]
    with pytest.raises(ProxyError) as caught:
        codec.events({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}, "m")
    assert caught.value.status == 429 and caught.value.retryable


# ---- rendering to Gemini clients -----------------------------------------------------------------


def incoming(query: dict[str, str] | None = None) -> Incoming:
    return Incoming(body=b"", path={"model": "mock:mock-model"}, query=query or {}, headers={})


def test_stream_detection() -> None:
    assert is_stream(incoming({"alt": "sse"}))
    assert not is_stream(incoming())
    for method, streams in [("streamGenerateContent", True), ("generateContent", False), ("countTokens", False)]:
        for query in ({}, {"alt": "sse"}):
            assert is_stream(Incoming(body=b"", path={}, query=query, headers={}, method=method)) is streams


def test_frontend_parse_strips_models_prefix_and_unwraps_count_requests() -> None:
    body = orjson.dumps({"generateContentRequest": {"model": "models/x", "contents": [user("count me")]}})
    request = GeminiGenerate().parse(Incoming(body=body, path={"model": "models/gemini-2.5-pro"}, query={},
                                              headers={}))
    assert request.model == "gemini-2.5-pro"
    assert request.messages == (Message("user", (TextPart("count me"),)),)
    with pytest.raises(InvalidRequest):
        GeminiGenerate().parse(Incoming(body=b"[1]", path={}, query={}, headers={}))


def test_render_response() -> None:
    collector = Collector()
    for event in [ResponseStart("r-1", "mock-model", 0), ReasoningDelta("hm", "sig"), TextDelta("Hi"),
                  ToolCallDelta(0, id="call_1", name="f", arguments='{"a":'), ToolCallDelta(0, arguments="1}"),
                  Finish("tool_calls"), UsageReport(Usage(5, 7, 2))]:
        collector.add(event)
    body = orjson.loads(GeminiGenerate().render_response(collector.result(), openai_style_request(), incoming()))
    assert body == {
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "hm", "thought": True, "thoughtSignature": "sig"},
            {"text": "Hi"},
            {"functionCall": {"id": "call_1", "name": "f", "args": {"a": 1}}},
        ]}, "index": 0, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7, "totalTokenCount": 12,
                          "cachedContentTokenCount": 2},
        "modelVersion": "mock-model",
        "responseId": "r-1",
    }


async def _events(items: list[StreamEvent], error: ProxyError | None = None) -> AsyncIterator[StreamEvent]:
    for item in items:
        yield item
    if error is not None:
        raise error


def render(items: list[StreamEvent], query: dict[str, str], error: ProxyError | None = None) -> bytes:
    async def run() -> bytes:
        stream = GeminiGenerate().render_stream(_events(items, error), openai_style_request(), incoming(query))
        return b"".join([piece async for piece in stream])
    return asyncio.run(run())


STREAM: list[StreamEvent] = [
    ResponseStart("r-2", "m", 0), TextDelta("Hel"), TextDelta("lo"),
    ToolCallDelta(0, id="call_x", name="f", arguments=""), ToolCallDelta(0, arguments='{"q": "a b'),
    ToolCallDelta(0, arguments=' c"}'), ToolCallDelta(1, id="call_y", name="g", arguments="{}"),
    Finish("tool_calls"), UsageReport(Usage(3, 4)),
]


def test_render_sse_stream() -> None:
    raw = render(STREAM, {"alt": "sse"})
    chunks = [orjson.loads(line[6:]) for line in raw.split(b"\n\n") if line]
    assert [c["candidates"][0]["content"]["parts"] for c in chunks] == [
        [{"text": "Hel"}], [{"text": "lo"}],
        [{"functionCall": {"id": "call_x", "name": "f", "args": {"q": "a b c"}}},
         {"functionCall": {"id": "call_y", "name": "g", "args": {}}}],
    ]
    assert "finishReason" not in chunks[0]["candidates"][0]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"] == {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7}
    assert {c["responseId"] for c in chunks} == {"r-2"}


def test_render_json_array_stream() -> None:
    raw = render(STREAM, {})
    assert raw.startswith(b"[{") and raw.endswith(b"}]")
    assert len(orjson.loads(raw)) == 3


def test_stream_error_mid_way_ends_with_an_error_object() -> None:
    error = ProxyError("backend 'up' closed the stream", status=502, code="upstream_incomplete")
    raw = render([ResponseStart("r", "m", 0), TextDelta("a")], {"alt": "sse"}, error)
    last = orjson.loads(raw.strip().split(b"\n\n")[-1][6:])
    assert last["error"]["code"] == 502
    assert last["error"]["status"] == "UNAVAILABLE"
    array = orjson.loads(render([ResponseStart("r", "m", 0), TextDelta("a")], {}, error))
    assert "error" in array[-1]


def test_limit_error_envelope() -> None:
    error = LimitExceeded("Input token limit exceeded", code="input_limit_exceeded", param="messages",
                          details={"model": "tiny", "limit": 50, "measured": 75})
    status, raw = GeminiGenerate().render_error(error)
    assert status == 400
    assert orjson.loads(raw) == {"error": {
        "code": 400, "message": "Input token limit exceeded", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "input_limit_exceeded",
                     "domain": "lip", "metadata": {"model": "tiny", "limit": "50", "measured": "75"}}],
    }}


@pytest.mark.parametrize(("status", "name"), [
    (400, "INVALID_ARGUMENT"), (401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED"), (404, "NOT_FOUND"),
    (429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"), (503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED"),
])
def test_error_status_names(status: int, name: str) -> None:
    body = orjson.loads(GeminiGenerate().render_error(ProxyError("x", status=status))[1])
    assert (body["error"]["code"], body["error"]["status"]) == (status, name)


def test_rate_limit_error_carries_retry_info_and_field_errors_a_bad_request() -> None:
    body = wire.error_body(RateLimited("slow down", retry_after=2.0))
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"} in body["error"]["details"]
    body = wire.error_body(InvalidRequest("bad", param="contents[0].role"))
    violation = body["error"]["details"][1]
    assert violation["fieldViolations"] == [{"field": "contents[0].role", "description": "bad"}]


def test_models_and_count() -> None:
    surface = GeminiGenerate()
    models = orjson.loads(surface.render_models([
        ModelInfo("mock:mock-model", "mock", 128000, None, 16384), ModelInfo("up:m", "up", None, None, None)]))
    assert models["models"][0] == {
        "name": "models/mock:mock-model", "version": "lip", "displayName": "mock:mock-model",
        "description": "mock:mock-model, served by backend 'mock' through LLM Interactive Proxy.",
        "inputTokenLimit": 128000, "outputTokenLimit": 16384,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
    }
    assert "inputTokenLimit" not in models["models"][1]
    assert orjson.loads(surface.render_count(42, openai_style_request())) == {"totalTokens": 42}
