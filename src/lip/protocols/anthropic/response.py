"""Anthropic Messages objects ⇄ canonical events, in both directions, and the stop reasons and usage they share.

Reading turns an upstream's whole Message object into canonical events; rendering turns a canonical
ChatResponse into a Message object for a client. Streams are ``stream``'s (which uses the helpers here).

Usage: Anthropic's ``input_tokens`` excludes cache reads and cache writes; the canonical
``Usage.input_tokens`` (OpenAI's ``prompt_tokens``) includes them, and ``cached_tokens`` is the
cache-read part. Reading adds them up; rendering subtracts the cache reads again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from lip.core.model import (
    ChatResponse,
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
    token_count,
)
from lip.core.opaque import signature_text
from lip.protocols.anthropic.blocks import is_server_block
from lip.protocols.anthropic.common import PROTOCOL, is_int, json_object, signed

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


def count(value: Any) -> int:
    return token_count(value) if is_int(value) else 0


def usage_from_wire(raw: Any) -> Usage | None:
    """Canonical usage: input counts cache reads and writes too; cached is the cache-read part."""
    if not isinstance(raw, dict):
        return None
    read = count(raw.get("cache_read_input_tokens"))
    written = count(raw.get("cache_creation_input_tokens"))
    return Usage(input_tokens=count(raw.get("input_tokens")) + read + written,
                 output_tokens=count(raw.get("output_tokens")), cached_tokens=read, cache_write_tokens=written)


def message_events(body: Mapping[str, Any], fallback_model: str) -> list[StreamEvent]:
    """A whole Message object as the events that would have streamed it."""
    events: list[StreamEvent] = [response_start(body, fallback_model)]
    tools = 0
    for block in body.get("content") or ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            events.append(TextDelta(block["text"]))
        elif kind == "thinking":
            events.append(ReasoningDelta(str(block.get("thinking") or ""), signed(block.get("signature"))))
        elif kind == "redacted_thinking":
            events.append(RedactedReasoningPart(PROTOCOL, str(block.get("data") or "")))
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


def response_start(message: Mapping[str, Any], fallback_model: str) -> ResponseStart:
    return ResponseStart(id=str(message.get("id") or "msg_lip"), model=str(message.get("model") or fallback_model),
                         created=int(time.time()))


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
    value = json_object(arguments)
    return value if value is not None else {"_raw_arguments": arguments}


def response_to_wire(response: ChatResponse, request_model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    signature = response.reasoning_signature
    if response.reasoning or signature is not None:
        content.append({"type": "thinking", "thinking": response.reasoning,
                        "signature": "" if signature is None else signature_text(signature, PROTOCOL)})
    content.extend({"type": "redacted_thinking", "data": part.data} for part in response.redacted
                   if part.protocol == PROTOCOL)
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
