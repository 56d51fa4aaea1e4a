"""Redacted thinking as a RedactedReasoningPart, both directions: client → canonical → upstream body, upstream
answer → canonical → client (stream and whole), and across protocols (other upstreams never get it; a client
of another protocol carries it folded in a reasoning signature and gives it back)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from lip.core.model import (
    ChatRequest,
    Collector,
    Message,
    ProviderState,
    ReasoningDelta,
    ReasoningPart,
    RedactedReasoningPart,
    StreamEvent,
    TextDelta,
    TextPart,
)
from lip.core.opaque import fold_signature, for_client
from lip.core.serial import messages_from_json, messages_to_json
from lip.protocols.anthropic.codec import AnthropicCodec
from lip.protocols.anthropic.surface import AnthropicMessages
from lip.protocols.base import Incoming
from lip.protocols.gemini.codec import GeminiCodec
from lip.protocols.gemini.surface import GeminiGenerate
from lip.protocols.openai_chat.codec import OpenAICodec
from lip.protocols.openai_responses.codec import ResponsesCodec
from unit.protocols.anthropic.anthropic_cases import decode, parse, parse_sse, sse, user

REDACTED = RedactedReasoningPart("anthropic", "EmwKAhgBEgy3va3pzix/LafPsn4a")
SIG = ProviderState("anthropic", "sig")
FOLDED = ProviderState("anthropic", "redacted_thinking:" + REDACTED.data)  # the part as a signature
TURN = {"role": "assistant", "content": [
    {"type": "thinking", "thinking": "Use the tool.", "signature": "sig"},
    {"type": "redacted_thinking", "data": REDACTED.data},
    {"type": "text", "text": "Checking."},
]}
UPSTREAM_STREAM = [
    sse("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-x",
        "usage": {"input_tokens": 5, "output_tokens": 1}}}),
    sse("content_block_start", {"type": "content_block_start", "index": 0,
                                "content_block": {"type": "redacted_thinking", "data": REDACTED.data}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
    sse("content_block_start", {"type": "content_block_start", "index": 1,
                                "content_block": {"type": "text", "text": ""}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 1,
                                "delta": {"type": "text_delta", "text": "Hi"}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
    sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                          "usage": {"output_tokens": 7}}),
    sse("message_stop", {"type": "message_stop"}),
]


def conversation() -> ChatRequest:
    return parse(messages=[user("Weather?"), TURN, user("Go on")])


async def _replay(events: list[StreamEvent]) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event


def as_client(events: list[StreamEvent], protocol: str) -> list[StreamEvent]:
    async def run() -> list[StreamEvent]:
        return [event async for event in for_client(_replay(events), protocol)]
    return asyncio.run(run())


def rendered(surface: Any, events: list[StreamEvent], request: ChatRequest, incoming: Incoming) -> bytes:
    async def run() -> bytes:
        return b"".join([chunk async for chunk in surface.render_stream(_replay(events), request, incoming)])
    return asyncio.run(run())


def test_client_turn_to_canonical_and_back_to_an_anthropic_upstream() -> None:
    request = conversation()
    assert request.messages[1].content == (ReasoningPart("Use the tool.", SIG), REDACTED, TextPart("Checking."))
    body = AnthropicCodec().body(request, "claude-x")
    assert body["messages"][1] == TURN


def test_upstream_stream_to_canonical_to_the_client_stream() -> None:
    events, finished, completed = decode(UPSTREAM_STREAM)
    assert finished and completed
    assert events[1:3] == [REDACTED, TextDelta("Hi")]
    request = parse(messages=[user("x")], stream=True)
    out = parse_sse(rendered(AnthropicMessages(), as_client(events, "anthropic"), request, Incoming(b"", {}, {}, {})))
    starts = [data["content_block"] for kind, data in out if kind == "content_block_start"]
    assert starts == [{"type": "redacted_thinking", "data": REDACTED.data}, {"type": "text", "text": ""}]


def test_upstream_message_to_canonical_to_the_client_message() -> None:
    message = {"id": "msg_2", "type": "message", "model": "claude-x", "stop_reason": "end_turn",
               "content": [*TURN["content"]], "usage": {"input_tokens": 3, "output_tokens": 4}}
    events = AnthropicCodec().events(message, "claude-x")
    assert REDACTED in events
    collector = Collector()
    for event in as_client(events, "anthropic"):
        collector.add(event)
    response = collector.result()
    assert response.redacted == [REDACTED] and response.reasoning_signature == SIG
    body = orjson.loads(AnthropicMessages().render_response(response, parse(messages=[user("x")]),
                                                            Incoming(b"", {}, {}, {})))
    assert body["content"] == TURN["content"]


def test_serial_round_trip_and_data_written_before_the_part() -> None:
    messages = conversation().messages
    assert messages_from_json(messages_to_json(messages)) == messages
    older = orjson.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "parts": [
        {"reasoning": "", "signature": "redacted_thinking:" + REDACTED.data}, {"text": "ok", "cache_control": None}]},
        {"role": "user", "content": "more"}])
    read = messages_from_json(older)
    body = AnthropicCodec().body(ChatRequest("claude-x", read), "claude-x")
    assert body["messages"][1]["content"] == [{"type": "redacted_thinking", "data": REDACTED.data},
                                              {"type": "text", "text": "ok"}]


def test_other_upstreams_never_receive_it() -> None:
    request = conversation()
    for codec in (OpenAICodec(), ResponsesCodec(), GeminiCodec()):
        assert REDACTED.data not in orjson.dumps(codec.body(request, "m")).decode()


def test_a_client_of_another_protocol_carries_it_folded_and_gives_it_back() -> None:
    events: list[StreamEvent] = [REDACTED, TextDelta("Hi")]
    assert as_client(events, "gemini") == [ReasoningDelta("", FOLDED), TextDelta("Hi")]
    request = ChatRequest("m", (Message("user", "x"),), stream=True)
    incoming = Incoming(b"", {"model": "m"}, {"alt": "sse"}, {})
    chunks = parse_sse(rendered(GeminiGenerate(), as_client(events, "gemini"), request, incoming))
    thought = chunks[0][1]["candidates"][0]["content"]["parts"][0]
    assert thought == {"text": "", "thought": True, "thoughtSignature": fold_signature(FOLDED)}
    back = _gemini_echo(thought)
    assert back.messages[1].content == (REDACTED, TextPart("Hi"))
    body = AnthropicCodec().body(back, "claude-x")
    assert body["messages"][1]["content"] == [{"type": "redacted_thinking", "data": REDACTED.data},
                                              {"type": "text", "text": "Hi"}]
    assert REDACTED.data not in orjson.dumps(ResponsesCodec().body(back, "m")).decode()


def test_the_form_given_before_signatures_had_a_protocol_still_reads_back() -> None:
    """Clients were given ``redacted_thinking:<data>`` itself, and may still hold it: Anthropic's part."""
    back = _gemini_echo({"text": "", "thought": True, "thoughtSignature": "redacted_thinking:" + REDACTED.data})
    assert back.messages[1].content == (REDACTED, TextPart("Hi"))


def _gemini_echo(thought: dict[str, Any]) -> ChatRequest:
    echo = {"contents": [{"role": "user", "parts": [{"text": "x"}]},
                         {"role": "model", "parts": [thought, {"text": "Hi"}]},
                         {"role": "user", "parts": [{"text": "more"}]}]}
    return GeminiGenerate().parse(Incoming(orjson.dumps(echo), {"model": "models/m"}, {}, {}))
