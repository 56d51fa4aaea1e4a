"""Anthropic Messages responses and stream events ⇄ canonical events, in both directions.

Reading turns an upstream's Message object or its stream events into canonical events; rendering
turns a canonical ChatResponse into a Message object for a client (the frontend renders the
stream events itself from these helpers).

Usage: Anthropic's ``input_tokens`` excludes cache reads and cache writes; the canonical
``Usage.input_tokens`` (OpenAI's ``prompt_tokens``) includes them, and ``cached_tokens`` is the
cache-read part. Reading adds them up; rendering subtracts the cache reads again.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from lip.core.model import (
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
    token_count,
)
from lip.protocols.anthropic.blocks import is_server_block
from lip.protocols.anthropic.common import PROTOCOL, REDACTED, is_int

STOP_FROM_WIRE = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}
STOP_TO_WIRE = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "content_filter": "refusal", "error": "end_turn"}
# Stop reasons with no canonical twin that an Anthropic client must get back as they were (pause_turn: a
# server tool's loop paused, the client sends the turn again to let it go on).
KEPT_STOPS = frozenset({"pause_turn", "model_context_window_exceeded"})
NATIVE = PROTOCOL + ":"


def finish_from_wire(reason: Any) -> Finish:
    native = NATIVE + reason if isinstance(reason, str) and reason in KEPT_STOPS else None
    return Finish(stop_reason_from_wire(reason), native)


# ---- wire → canonical (responses) --------------------------------------------------------------


def stop_reason_from_wire(reason: Any) -> str:
    return STOP_FROM_WIRE.get(reason, "stop") if isinstance(reason, str) else "stop"


def stop_reason_to_wire(reason: str | None, native: str | None = None) -> str:
    """Anthropic's stop reason: the upstream's own when it was Anthropic's (``native``), else the mapped one."""
    if native is not None and native.startswith(NATIVE):
        return native[len(NATIVE):]
    return STOP_TO_WIRE.get(reason or "stop", "end_turn")


def _int(value: Any) -> int:
    return token_count(value) if is_int(value) else 0


def usage_from_wire(raw: Any) -> Usage | None:
    """Canonical usage: input counts cache reads and writes too; cached is the cache-read part."""
    if not isinstance(raw, dict):
        return None
    read = _int(raw.get("cache_read_input_tokens"))
    written = _int(raw.get("cache_creation_input_tokens"))
    return Usage(input_tokens=_int(raw.get("input_tokens")) + read + written,
                 output_tokens=_int(raw.get("output_tokens")), cached_tokens=read, cache_write_tokens=written)


def message_events(body: Mapping[str, Any], fallback_model: str) -> list[StreamEvent]:
    """A whole Message object as the events that would have streamed it."""
    events: list[StreamEvent] = [_start(body, fallback_model)]
    tools = 0
    for block in body.get("content") or ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            events.append(TextDelta(block["text"]))
        elif kind == "thinking":
            events.append(ReasoningDelta(str(block.get("thinking") or ""), block.get("signature") or None))
        elif kind == "redacted_thinking":
            events.append(ReasoningDelta("", REDACTED + str(block.get("data") or "")))
        elif isinstance(kind, str) and is_server_block(kind):
            events.append(ProviderItem(PROTOCOL, block))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            events.append(ToolCallDelta(index=tools, id=block.get("id"), name=block.get("name"),
                                        arguments=arguments))
            tools += 1
    events.append(finish_from_wire(body.get("stop_reason")))
    usage = usage_from_wire(body.get("usage"))
    if usage is not None:
        events.append(UsageReport(usage))
    return events


def _start(message: Mapping[str, Any], fallback_model: str) -> ResponseStart:
    return ResponseStart(id=str(message.get("id") or "msg_lip"), model=str(message.get("model") or fallback_model),
                         created=int(time.time()))


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
            return [_start(message, self._model)]
        if kind == "message_delta":
            return self._message_delta(data)
        return []  # ping, and event types this proxy does not know

    def _block_start(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        block = data.get("content_block")
        block = block if isinstance(block, dict) else {}
        index = _int(data.get("index"))
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
            return [ReasoningDelta(str(block.get("thinking") or ""), block.get("signature") or None)]
        if kind == "redacted_thinking":
            return [ReasoningDelta("", REDACTED + str(block.get("data") or ""))]
        return []

    def _delta(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        delta = data.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return [TextDelta(text)] if isinstance(text, str) and text else []
        if kind == "input_json_delta":
            state = self._blocks.get(_int(data.get("index")))
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
            signature = delta.get("signature")
            return [ReasoningDelta("", signature)] if isinstance(signature, str) and signature else []
        return []  # citations_delta and unknown deltas

    def _block_stop(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        state = self._blocks.get(_int(data.get("index")))
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


# ---- canonical → wire (responses) --------------------------------------------------------------


def message_id(raw: str) -> str:
    """Anthropic-looking ids (``msg_…``); another protocol's id is kept after the prefix."""
    if raw.startswith("msg_"):
        return raw
    return "msg_" + (raw or uuid.uuid4().hex[:24])


def usage_to_wire(u: Usage | None) -> dict[str, Any]:
    if u is None:
        return {"input_tokens": 0, "output_tokens": 0}
    out: dict[str, Any] = {"input_tokens": max(0, u.input_tokens - u.cached_tokens - u.cache_write_tokens),
                           "output_tokens": u.output_tokens}
    if u.cached_tokens:
        out["cache_read_input_tokens"] = u.cached_tokens
    if u.cache_write_tokens:
        out["cache_creation_input_tokens"] = u.cache_write_tokens
    return out


def tool_input(arguments: str) -> dict[str, Any]:
    """A canonical tool call's arguments as a ``tool_use`` input (never fails: see the docs)."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"_raw_arguments": arguments}


def response_to_wire(response: ChatResponse, request_model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    signature = response.reasoning_signature
    if signature and signature.startswith(REDACTED):
        if response.reasoning:
            content.append({"type": "thinking", "thinking": response.reasoning, "signature": ""})
        content.append({"type": "redacted_thinking", "data": signature[len(REDACTED):]})
    elif response.reasoning or signature:
        content.append({"type": "thinking", "thinking": response.reasoning, "signature": signature or ""})
    carried = [dict(item.data) for item in response.items if item.protocol == PROTOCOL]
    content.extend(carried)
    if response.text or not (response.tool_calls or carried):
        content.append({"type": "text", "text": response.text})
    for call in response.tool_calls:
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input(call.arguments)})
    return {
        "id": message_id(response.id),
        "type": "message",
        "role": "assistant",
        "model": response.model or request_model,
        "content": content,
        "stop_reason": stop_reason_to_wire(response.finish_reason, response.native_finish),
        "stop_sequence": None,
        "usage": usage_to_wire(response.usage),
    }
