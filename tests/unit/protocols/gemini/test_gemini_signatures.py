"""Gemini's thought signatures as typed state (ProviderState) on tool calls, both directions: from a Gemini
upstream to a client of each protocol and back to the Gemini upstream on the next turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

import edge_answers
from lip.core.model import ChatRequest, ChatResponse, Message, ProviderState, StreamEvent, ToolCall
from lip.core.opaque import for_client
from lip.protocols.anthropic.surface import AnthropicMessages
from lip.protocols.base import Incoming
from lip.protocols.gemini.codec import GeminiCodec
from lip.protocols.gemini.surface import GeminiGenerate
from lip.protocols.openai_chat.codec import OpenAICodec
from lip.protocols.openai_chat.surface import OpenAIChat
from lip.protocols.openai_responses.surface import OpenAIResponses

SIGNATURE = "c2lnbmF0dXJl+/=="
TOOLS = [{"name": "get_weather", "parameters": {"type": "object"}}, {"name": "get_time", "parameters": {}}]
UPSTREAM_ANSWER = {
    "candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE},
        {"functionCall": {"name": "get_time", "args": {}}},
    ]}, "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2},
    "modelVersion": "gemini-2.5-flash", "responseId": "r-1",
}
NEXT_TURN_MODEL_PARTS = [
    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE},
    {"functionCall": {"name": "get_time", "args": {}}},
]


class _NoStore:
    def put(self, response_id: str, messages: tuple[Message, ...], response: bytes = b"") -> None:
        raise AssertionError("store: false")


def incoming(body: dict[str, Any] | None = None, model: str = "gemini-2.5-flash") -> Incoming:
    return Incoming(body=orjson.dumps(body) if body is not None else b"", path={"model": model}, query={},
                    headers={})


def answer_for(protocol: str) -> ChatResponse:
    """The Gemini upstream's answer as the endpoint hands it to a surface speaking ``protocol``."""
    return edge_answers.answer_for(GeminiCodec().events(UPSTREAM_ANSWER, "gemini-2.5-flash"), protocol)


def upstream_turn(request: ChatRequest) -> list[dict[str, Any]]:
    """The contents the Gemini upstream gets for ``request``, after the client's first message."""
    return list(GeminiCodec().body(request, "gemini-2.5-flash")["contents"][1:])


def test_the_upstream_answer_carries_typed_state_and_clean_ids() -> None:
    calls = answer_for("gemini").tool_calls
    assert [c.signature for c in calls] == [ProviderState("gemini", SIGNATURE), None]
    assert all(c.id.startswith("call_") and "__" not in c.id for c in calls)


def test_openai_chat_client_sees_the_signature_in_the_id_and_sends_it_back() -> None:
    surface = OpenAIChat()
    tools = [{"type": "function", "function": t} for t in TOOLS]
    first = {"model": "g:m", "messages": [{"role": "user", "content": "weather?"}], "tools": tools}
    rendered = orjson.loads(surface.render_response(answer_for(surface.name), surface.parse(incoming(first)),
                                                    incoming()))
    calls = rendered["choices"][0]["message"]["tool_calls"]
    assert calls[0]["id"].endswith("__thought__c2lnbmF0dXJl-_"), "as before: the id carries the signature"
    assert "__thought__" not in calls[1]["id"]
    first["messages"] += [rendered["choices"][0]["message"],
                          {"role": "tool", "tool_call_id": calls[1]["id"], "content": "noon"},
                          {"role": "tool", "tool_call_id": calls[0]["id"], "content": '{"sky": "sunny"}'}]
    assert upstream_turn(surface.parse(incoming(first))) == [
        {"role": "model", "parts": NEXT_TURN_MODEL_PARTS},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_time", "response": {"result": "noon"}}},
                                   {"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}}]},
    ]


def test_anthropic_client_sees_the_signature_in_the_id_and_sends_it_back() -> None:
    surface = AnthropicMessages()
    tools = [{"name": t["name"], "input_schema": {"type": "object"}} for t in TOOLS]
    first: dict[str, Any] = {"model": "g:m", "max_tokens": 50, "tools": tools,
                             "messages": [{"role": "user", "content": "weather?"}]}
    rendered = orjson.loads(surface.render_response(answer_for(surface.name), surface.parse(incoming(first)),
                                                    incoming()))
    uses = [b for b in rendered["content"] if b["type"] == "tool_use"]
    assert uses[0]["id"].endswith("__thought__c2lnbmF0dXJl-_")
    first["messages"] += [{"role": "assistant", "content": rendered["content"]},
                          {"role": "user", "content": [
                              {"type": "tool_result", "tool_use_id": uses[0]["id"], "content": '{"sky": "sunny"}'},
                              {"type": "tool_result", "tool_use_id": uses[1]["id"], "content": "noon"}]}]
    model_turn, results = upstream_turn(surface.parse(incoming(first)))
    assert model_turn == {"role": "model", "parts": NEXT_TURN_MODEL_PARTS}
    assert [p["functionResponse"]["name"] for p in results["parts"]] == ["get_weather", "get_time"]


def test_responses_client_sees_the_signature_in_the_call_id_and_sends_it_back() -> None:
    surface = OpenAIResponses(_NoStore())  # type: ignore[arg-type]
    tools = [{"type": "function", **t} for t in TOOLS]
    first: dict[str, Any] = {"model": "g:m", "input": "weather?", "tools": tools, "store": False}
    rendered = orjson.loads(surface.render_response(answer_for(surface.name), surface.parse(incoming(first)),
                                                    incoming()))
    calls = [item for item in rendered["output"] if item["type"] == "function_call"]
    assert calls[0]["call_id"].endswith("__thought__c2lnbmF0dXJl-_")
    first["input"] = [{"role": "user", "content": "weather?"}, *calls,
                      {"type": "function_call_output", "call_id": calls[0]["call_id"], "output": "sunny"},
                      {"type": "function_call_output", "call_id": calls[1]["call_id"], "output": "noon"}]
    model_turn, results = upstream_turn(surface.parse(incoming(first)))
    assert model_turn == {"role": "model", "parts": NEXT_TURN_MODEL_PARTS}
    assert [p["functionResponse"]["name"] for p in results["parts"]] == ["get_weather", "get_time"]


def test_gemini_client_gets_the_signature_beside_a_clean_id_and_sends_it_back() -> None:
    surface = GeminiGenerate()
    first: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "weather?"}]}]}
    rendered = orjson.loads(surface.render_response(answer_for(surface.name), surface.parse(incoming(first)),
                                                    incoming()))
    parts = rendered["candidates"][0]["content"]["parts"]
    assert parts[0]["thoughtSignature"] == SIGNATURE and "thoughtSignature" not in parts[1]
    assert all("__" not in p["functionCall"]["id"] for p in parts)
    first["contents"] += [{"role": "model", "parts": parts}, {"role": "user", "parts": [
        {"functionResponse": {"id": parts[1]["functionCall"]["id"], "name": "get_time", "response": {"t": 12}}},
        {"functionResponse": {"id": parts[0]["functionCall"]["id"], "name": "get_weather", "response": {}}}]}]
    request = surface.parse(incoming(first))
    assert request.messages[1].tool_calls[0].signature == ProviderState("gemini", SIGNATURE)
    model_turn, _ = upstream_turn(request)
    assert model_turn == {"role": "model", "parts": NEXT_TURN_MODEL_PARTS}


def test_a_gemini_clients_signature_stays_out_of_another_upstreams_ids() -> None:
    contents = [{"role": "user", "parts": [{"text": "x"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "c2ln"}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"r": 1}}}]}]
    request = GeminiGenerate().parse(incoming({"contents": contents}))
    messages = OpenAICodec().body(request, "gpt")["messages"]
    assert messages[1]["tool_calls"][0]["id"] == "call_1" == messages[2]["tool_call_id"]


def test_a_signature_of_another_protocol_is_not_sent_to_gemini() -> None:
    call = ToolCall("call_1", "f", "{}", ProviderState("elsewhere", "c2ln"))
    request = ChatRequest(model="m", messages=(Message("user", "x"), Message("assistant", None, tool_calls=(call,))))
    assert upstream_turn(request) == [{"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}]


def test_gemini_client_stream_carries_the_signature_on_its_function_call() -> None:
    async def run() -> bytes:
        async def source() -> AsyncIterator[StreamEvent]:
            for event in GeminiCodec().events(UPSTREAM_ANSWER, "gemini-2.5-flash"):
                yield event
        request = ChatRequest(model="m", messages=(Message("user", "x"),), stream=True)
        stream = GeminiGenerate().render_stream(for_client(source(), "gemini"), request, incoming())
        return b"".join([piece async for piece in stream])
    (last,) = orjson.loads(asyncio.run(run()))
    parts = last["candidates"][0]["content"]["parts"]
    assert [p.get("thoughtSignature") for p in parts] == [SIGNATURE, None]
