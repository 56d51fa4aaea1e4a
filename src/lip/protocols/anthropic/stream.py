"""Anthropic Messages stream events ⇄ canonical events, in both directions: reading an upstream's
stream (StreamParser) and writing a client's (StreamWriter, render_stream).

The named SSE events are message_start, ping, content_block_start/delta/stop, message_delta,
message_stop, and ``error`` when the upstream fails after the first byte.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from lip.core.errors import ProxyError
from lip.core.model import (
    Finish,
    ProviderItem,
    ReasoningDelta,
    RedactedReasoningPart,
    ResponseStart,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from lip.core.opaque import signature_text
from lip.core.sse import encode
from lip.protocols.anthropic.blocks import is_server_block
from lip.protocols.anthropic.common import PROTOCOL, signed
from lip.protocols.anthropic.errors import error_body
from lip.protocols.anthropic.response import (
    count,
    finish_from_wire,
    message_id,
    response_start,
    stop_reason_to_wire,
    usage_from_wire,
    usage_to_wire,
)

# ---- upstream → canonical ----------------------------------------------------------------------


@dataclass(slots=True)
class _Block:
    kind: str
    tool: int = -1  # canonical tool-call index of a tool_use block
    start_input: Any = None  # the input of content_block_start (normally {}; used if no delta follows)
    streamed: bool = False
    whole: dict[str, Any] | None = None  # a server tool's block, passed on whole at its stop
    pieces: list[str] | None = None  # the input_json_delta pieces of a server_tool_use block


class StreamParser:
    """Anthropic stream events → canonical events; tool input_json_delta pieces pass through unchanged.

    Usage: message_start's usage (input and cache counts) merged with message_delta's cumulative
    counts (output, sometimes input) is reported once, with the stop reason, at message_delta.
    """

    __slots__ = ("_blocks", "_model", "_tools", "_usage", "finished")

    def __init__(self, fallback_model: str) -> None:
        self._model = fallback_model
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._usage: dict[str, Any] = {}
        self.finished = False  # a stop_reason arrived

    def feed(self, kind: str, data: Mapping[str, Any]) -> list[StreamEvent]:
        """Events for one stream event (``kind`` is its type); message_stop and error are the caller's."""
        if kind == "content_block_delta":
            return self._delta(data)
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "content_block_stop":
            return self._block_stop(data)
        if kind == "message_start":
            message = data.get("message")
            message = message if isinstance(message, dict) else {}
            if isinstance(message.get("usage"), dict):
                self._usage.update({k: v for k, v in message["usage"].items() if v is not None})
            return [response_start(message, self._model)]
        if kind == "message_delta":
            return self._message_delta(data)
        return []  # ping, and event types this proxy does not know

    def _block_start(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        block = data.get("content_block")
        block = block if isinstance(block, dict) else {}
        index = count(data.get("index"))
        kind = str(block.get("type"))
        if kind == "tool_use":
            state = self._blocks[index] = _Block(kind, tool=self._tools, start_input=block.get("input"))
            self._tools += 1
            return [ToolCallDelta(index=state.tool, id=block.get("id"), name=block.get("name"))]
        if is_server_block(kind):
            self._blocks[index] = _Block(kind, whole=dict(block), pieces=[])
            return []
        self._blocks[index] = _Block(kind)
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            return [TextDelta(block["text"])]
        if kind == "thinking" and (block.get("thinking") or block.get("signature")):
            return [ReasoningDelta(str(block.get("thinking") or ""), signed(block.get("signature")))]
        if kind == "redacted_thinking":
            return [RedactedReasoningPart(PROTOCOL, str(block.get("data") or ""))]
        return []

    def _delta(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        delta = data.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return [TextDelta(text)] if isinstance(text, str) and text else []
        if kind == "input_json_delta":
            state = self._blocks.get(count(data.get("index")))
            piece = delta.get("partial_json")
            if state is not None and state.pieces is not None and isinstance(piece, str):
                state.pieces.append(piece)  # a server tool's input, passed on with its block
                return []
            if state is None or state.kind != "tool_use" or not isinstance(piece, str) or not piece:
                return []
            state.streamed = True
            return [ToolCallDelta(index=state.tool, arguments=piece)]
        if kind == "thinking_delta":
            text = delta.get("thinking")
            return [ReasoningDelta(text)] if isinstance(text, str) and text else []
        if kind == "signature_delta":
            signature = signed(delta.get("signature"))
            return [ReasoningDelta("", signature)] if signature is not None else []
        return []  # citations_delta and unknown deltas

    def _block_stop(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        state = self._blocks.get(count(data.get("index")))
        if state is not None and state.whole is not None:
            return [ProviderItem(PROTOCOL, _completed(state.whole, state.pieces))]
        if state is not None and state.kind == "tool_use" and not state.streamed and state.start_input:
            return [ToolCallDelta(index=state.tool, arguments=orjson.dumps(state.start_input).decode())]
        return []

    def _message_delta(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        delta = data.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if isinstance(reason, str):
            events.append(finish_from_wire(reason))
            self.finished = True
        usage = data.get("usage")
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})
        if self._usage:
            report = usage_from_wire(self._usage)
            if report is not None:
                events.append(UsageReport(report))
        return events


def _completed(block: dict[str, Any], pieces: list[str] | None) -> dict[str, Any]:
    """A server tool's block with the input its deltas streamed."""
    text = "".join(pieces or ())
    if text.strip():
        with contextlib.suppress(orjson.JSONDecodeError):  # else the block as it started
            block["input"] = orjson.loads(text)
    return block


# ---- canonical → client ------------------------------------------------------------------------


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return encode(orjson.dumps(data), kind)


PING = _event("ping", {"type": "ping"})
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
            "id": message_id(event.id if event else ""),
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
        elif isinstance(event, RedactedReasoningPart) and event.protocol == PROTOCOL:
            out += self._open_block({"type": "redacted_thinking", "data": event.data}, "redacted_thinking")
            out += self._close()  # it came whole
        elif isinstance(event, Finish):
            self._finish, self._native = event.reason, event.native
        elif isinstance(event, UsageReport):
            self._usage = event.usage
        elif isinstance(event, ProviderItem) and event.protocol == PROTOCOL:
            out += self._open_block(dict(event.data), "server")  # a server tool's block, whole
            out += self._close()
        return out

    def end(self) -> list[bytes]:
        out = [] if self.started else self.start(None)
        out += self._close()
        usage = usage_to_wire(self._usage) if self._usage is not None else {"output_tokens": 0}
        delta = {"stop_reason": stop_reason_to_wire(self._finish, self._native), "stop_sequence": None}
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
        signature = None if event.signature is None else signature_text(event.signature, PROTOCOL)
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


async def render_stream(events: AsyncIterator[StreamEvent], request_model: str) -> AsyncIterator[bytes]:
    """Anthropic's event stream; an upstream failure mid-stream ends it with an ``error`` event."""
    writer = StreamWriter(request_model)
    try:
        async for event in events:
            for chunk in writer.feed(event):
                yield chunk
    except ProxyError as error:
        yield _event("error", error_body(error))
        return
    for chunk in writer.end():
        yield chunk
