"""Shared cases of the Anthropic unit tests: request builders, a recorded upstream stream, stream runners."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from lip.core.errors import (
    InvalidRequest,
    ProxyError,
)
from lip.core.model import (
    ChatRequest,
    Message,
    StreamEvent,
)
from lip.core.sse import SSEDecoder
from lip.protocols.anthropic.codec import AnthropicCodec
from lip.protocols.anthropic.parse import parse_request
from lip.protocols.anthropic.stream import render_stream

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}



def parse(**body: Any) -> ChatRequest:
    return parse_request({"model": "claude-sonnet-4-5", "max_tokens": 256, **body})


def invalid(**body: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse(**body)
    assert caught.value.status == 400
    assert caught.value.param is not None
    assert caught.value.message.startswith(caught.value.param)
    return caught.value


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}



def body_of(request: ChatRequest, model: str = "claude-haiku-4-5") -> dict[str, Any]:
    return AnthropicCodec().body(request, model)


def sse(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


RECORDED = [
    sse("message_start", {"type": "message_start", "message": {
        "id": "msg_014p", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5",
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 472, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 30,
                  "output_tokens": 2}}}),
    sse("content_block_start", {"type": "content_block_start", "index": 0,
                                "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
    sse("ping", {"type": "ping"}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "thinking_delta", "thinking": "Need weather."}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
    sse("content_block_start", {"type": "content_block_start", "index": 1,
                                "content_block": {"type": "text", "text": ""}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 1,
                                "delta": {"type": "text_delta", "text": "Okay, let me check"}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
    sse("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
        "type": "tool_use", "id": "toolu_01T1x", "name": "get_weather", "input": {}}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 2,
                                "delta": {"type": "input_json_delta", "partial_json": ""}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 2,
                                "delta": {"type": "input_json_delta", "partial_json": "{\"location\":"}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 2,
                                "delta": {"type": "input_json_delta", "partial_json": " \"San Fra"}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 2,
                                "delta": {"type": "input_json_delta", "partial_json": "ncisco, CA\"}"}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 2}),
    sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                          "usage": {"output_tokens": 89}}),
    sse("message_stop", {"type": "message_stop"}),
]


def decode(chunks: list[bytes], split: int = 7) -> tuple[list[StreamEvent], bool, bool]:
    """(events, finished, completed) of a stream fed in awkward pieces."""
    decoder = AnthropicCodec().decoder("fallback")
    reader = SSEDecoder()
    raw = b"".join(chunks)
    events: list[StreamEvent] = []
    for start in range(0, len(raw), split):
        for event in reader.feed(raw[start:start + split]):
            out = decoder.feed(event)
            if out is None:
                return events, decoder.finished, True
            events.extend(out)
    return events, decoder.finished, False


def parse_sse(raw: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    return [(e.event, orjson.loads(e.data)) for e in SSEDecoder().feed(raw)]


async def _events(items: list[StreamEvent], error: ProxyError | None = None) -> AsyncIterator[StreamEvent]:
    for item in items:
        yield item
    if error is not None:
        raise error


def stream(items: list[StreamEvent], error: ProxyError | None = None) -> list[tuple[str | None, dict[str, Any]]]:
    async def run() -> bytes:
        request = ChatRequest("claude-x", (Message("user", "x"),), stream=True)
        return b"".join([chunk async for chunk in render_stream(_events(items, error), request.model)])
    return parse_sse(asyncio.run(run()))
