"""Anthropic Messages surface: ``POST /v1/messages`` (and ``/anthropic/v1/messages``), count_tokens.

Client JSON ⇄ canonical request through lip.protocols.anthropic.format; canonical events ⇄ Anthropic's
named SSE events (message_start, ping, content_block_start/delta/stop, message_delta,
message_stop, and ``error`` when the upstream fails after the first byte).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson

from lip.core.errors import ProxyError
from lip.core.model import (
    ChatRequest,
    ChatResponse,
    Finish,
    ProviderItem,
    ReasoningDelta,
    ResponseStart,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from lip.core.sse import encode
from lip.protocols.anthropic import format as wire
from lip.protocols.base import Incoming
from lip.protocols.openai_chat.surface import parse_json


def parse_request(raw: bytes) -> ChatRequest:
    return wire.parse_request(parse_json(raw))


def render_error(error: ProxyError) -> tuple[int, bytes]:
    return error.status, orjson.dumps(wire.error_body(error))


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return encode(orjson.dumps(data), kind)


PING = _event("ping", {"type": "ping"})
BETA_HEADER = "anthropic-beta"
MESSAGE_STOP = _event("message_stop", {"type": "message_stop"})


class StreamWriter:
    """Canonical events → Anthropic stream events, one content block at a time.

    Blocks open in the order their first event arrives: a thinking block closes when its
    signature arrives or another block starts; text and tool_use blocks close when another
    block starts; the last one closes at the end. Tool-call argument pieces become
    ``input_json_delta`` events unchanged. The stop reason and usage arrive at the end of a
    canonical stream, so message_start carries ``input_tokens: 0`` and message_delta the real usage.
    """

    __slots__ = ("_finish", "_index", "_model", "_native", "_open", "_tool", "_tools", "_usage", "started")

    def __init__(self, request_model: str) -> None:
        self._model = request_model
        self._index = -1  # Anthropic index of the last block opened
        self._open: str | None = None  # kind of the open block
        self._tool: int | None = None  # canonical index of the open tool call
        self._tools: dict[int, int] = {}  # canonical tool index → Anthropic block index
        self._finish: str | None = None
        self._native: str | None = None
        self._usage: Usage | None = None
        self.started = False

    def start(self, event: ResponseStart | None) -> list[bytes]:
        self.started = True
        message: dict[str, Any] = {
            "id": wire.message_id(event.id if event else ""),
            "type": "message",
            "role": "assistant",
            "model": (event.model if event else "") or self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [_event("message_start", {"type": "message_start", "message": message}), PING]

    def feed(self, event: StreamEvent) -> list[bytes]:
        if isinstance(event, ResponseStart):
            return [] if self.started else self.start(event)
        out = [] if self.started else self.start(None)
        if isinstance(event, TextDelta):
            if event.text:
                if self._open != "text":
                    out += self._open_block({"type": "text", "text": ""}, "text")
                out.append(self._delta({"type": "text_delta", "text": event.text}))
        elif isinstance(event, ToolCallDelta):
            out += self._tool_piece(event)
        elif isinstance(event, ReasoningDelta):
            out += self._reasoning(event)
        elif isinstance(event, Finish):
            self._finish, self._native = event.reason, event.native
        elif isinstance(event, UsageReport):
            self._usage = event.usage
        elif isinstance(event, ProviderItem) and event.protocol == wire.PROTOCOL:
            out += self._open_block(dict(event.data), "server")  # a server tool's block, whole
            out += self._close()
        return out

    def end(self) -> list[bytes]:
        out = [] if self.started else self.start(None)
        out += self._close()
        usage = wire.usage_to_wire(self._usage) if self._usage is not None else {"output_tokens": 0}
        delta = {"stop_reason": wire.stop_reason_to_wire(self._finish, self._native), "stop_sequence": None}
        out.append(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        out.append(MESSAGE_STOP)
        return out

    def _open_block(self, block: dict[str, Any], kind: str) -> list[bytes]:
        out = self._close()
        self._index += 1
        self._open = kind
        out.append(_event("content_block_start", {"type": "content_block_start", "index": self._index,
                                                  "content_block": block}))
        return out

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        self._tool = None
        return [_event("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta",
                                              "index": self._index if index is None else index, "delta": delta})

    def _tool_piece(self, event: ToolCallDelta) -> list[bytes]:
        out: list[bytes] = []
        index = self._tools.get(event.index)
        if index is None:
            block = {"type": "tool_use", "id": event.id or f"toolu_{uuid.uuid4().hex[:24]}",
                     "name": event.name or "", "input": {}}
            out += self._open_block(block, "tool_use")
            self._tool = event.index
            index = self._tools[event.index] = self._index
        if event.arguments:
            # A piece of a call whose block already closed (an upstream interleaving parallel calls)
            # still goes to that call's block index, so index-keyed clients assemble it exactly.
            out.append(self._delta({"type": "input_json_delta", "partial_json": event.arguments}, index))
        return out

    def _reasoning(self, event: ReasoningDelta) -> list[bytes]:
        out: list[bytes] = []
        signature = event.signature
        if signature and signature.startswith(wire.REDACTED):
            out += self._open_block({"type": "redacted_thinking", "data": signature[len(wire.REDACTED):]},
                                    "redacted_thinking")
            out += self._close()
            return out
        if not event.text and not signature:
            return out
        if self._open != "thinking":
            out += self._open_block({"type": "thinking", "thinking": "", "signature": ""}, "thinking")
        if event.text:
            out.append(self._delta({"type": "thinking_delta", "thinking": event.text}))
        if signature:
            out.append(self._delta({"type": "signature_delta", "signature": signature}))
            out += self._close()  # a signature completes its thinking block
        return out


async def render_stream(events: AsyncIterator[StreamEvent], request: ChatRequest) -> AsyncIterator[bytes]:
    """Anthropic's event stream; an upstream failure mid-stream ends it with an ``error`` event."""
    writer = StreamWriter(request.model)
    try:
        async for event in events:
            for chunk in writer.feed(event):
                yield chunk
    except ProxyError as error:
        yield _event("error", wire.error_body(error))
        return
    for chunk in writer.end():
        yield chunk


class AnthropicMessages:
    """``POST /v1/messages``, ``/anthropic/v1/messages`` and their ``/count_tokens``."""

    name = "anthropic"
    stream_media_type = "text/event-stream"

    def parse(self, incoming: Incoming) -> ChatRequest:
        request = parse_request(incoming.body)
        beta = incoming.headers.get(BETA_HEADER)
        if beta:  # the features the client opted into travel to an Anthropic upstream
            request = request.evolve(protocol_headers={wire.PROTOCOL: {BETA_HEADER: beta}})
        return request

    def render_response(self, response: ChatResponse, request: ChatRequest, incoming: Incoming) -> bytes:
        return orjson.dumps(wire.response_to_wire(response, request.model))

    def render_stream(
        self, events: AsyncIterator[StreamEvent], request: ChatRequest, incoming: Incoming
    ) -> AsyncIterator[bytes]:
        return render_stream(events, request)

    def render_error(self, error: ProxyError) -> tuple[int, bytes]:
        return render_error(error)

    def render_count(self, tokens: int, request: ChatRequest) -> bytes:
        return orjson.dumps({"input_tokens": tokens})
