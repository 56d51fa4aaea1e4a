"""Gemini GenerateContentResponse objects (whole answers and stream chunks) ⇄ canonical events.

Reading folds an upstream's responses into canonical events; rendering builds the responses (or
stream chunks) a client receives from a canonical answer.
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
    ProviderState,
    ReasoningDelta,
    ResponseStart,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
    token_count,
)
from lip.core.opaque import signature_text
from lip.protocols.gemini.calls import arguments_object, signature_state, wire_signature
from lip.protocols.gemini.common import PROTOCOL, get

FINISH_FROM_WIRE: Mapping[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
}
FINISH_TO_WIRE: Mapping[str, str] = {
    "stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY", "error": "OTHER",
}


# ---- wire → canonical (responses) --------------------------------------------------------------


def usage_from_wire(raw: Any) -> Usage | None:
    """usageMetadata; thoughts count as output (they are billed as output, like OpenAI's reasoning tokens)."""
    if not isinstance(raw, dict):
        return None

    def n(key: str) -> int:
        value = raw.get(key)
        return token_count(value) if isinstance(value, int) else 0

    return Usage(
        input_tokens=n("promptTokenCount") + n("toolUsePromptTokenCount"),
        output_tokens=n("candidatesTokenCount") + n("thoughtsTokenCount"),
        cached_tokens=n("cachedContentTokenCount"),
        reasoning_tokens=n("thoughtsTokenCount"),
    )


def finish_from_wire(reason: str, called: bool) -> str:
    if reason == "STOP" and called:
        return "tool_calls"
    return FINISH_FROM_WIRE.get(reason, "stop")


class ResponseReader:
    """Folds GenerateContentResponse objects (a whole answer, or stream chunks) into canonical events."""

    __slots__ = ("_calls", "_first", "_model", "finished")

    def __init__(self, fallback_model: str) -> None:
        self._model = fallback_model
        self._first = True
        self._calls = 0
        self.finished = False

    def feed(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if self._first:
            self._first = False
            response_id = get(chunk, "responseId")
            version = get(chunk, "modelVersion")
            events.append(ResponseStart(id=str(response_id or f"gemini-{uuid.uuid4().hex}"),
                                        model=str(version or self._model), created=int(time.time())))
        candidates = chunk.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        if isinstance(candidate, dict):
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            for part in parts if isinstance(parts, list) else ():
                if isinstance(part, dict):
                    events.extend(self._part(part))
        usage = usage_from_wire(get(chunk, "usageMetadata"))
        reason = get(candidate, "finishReason") if isinstance(candidate, dict) else None
        if not reason:
            feedback = get(chunk, "promptFeedback")
            if isinstance(feedback, dict) and get(feedback, "blockReason"):
                reason = "SAFETY"  # the prompt was blocked: no candidates at all
        if reason and not self.finished:
            self.finished = True
            events.append(Finish(finish_from_wire(str(reason), self._calls > 0)))
        if usage is not None and self.finished:
            events.append(UsageReport(usage))
        return events

    def _part(self, part: Mapping[str, Any]) -> list[StreamEvent]:
        signature = signature_state(get(part, "thoughtSignature"))
        text = part.get("text")
        if isinstance(text, str):
            if part.get("thought") is True:
                return [ReasoningDelta(text, signature)] if text or signature is not None else []
            return [TextDelta(text)] if text else []
        call = get(part, "functionCall")
        if isinstance(call, dict):
            given = call.get("id")
            call_id = given if isinstance(given, str) and given else f"call_{uuid.uuid4().hex[:24]}"
            args = call.get("args")
            index = self._calls
            self._calls += 1
            return [ToolCallDelta(index=index, id=call_id, name=str(call.get("name") or ""),
                                  arguments=orjson.dumps(args if isinstance(args, dict) else {}).decode(),
                                  signature=signature)]
        return []  # inlineData (generated images), executableCode, ...: nothing canonical to carry them


def response_events(body: Mapping[str, Any], fallback_model: str) -> list[StreamEvent]:
    """A whole GenerateContentResponse as the events that would have streamed it."""
    reader = ResponseReader(fallback_model)
    events = reader.feed(body)
    if not reader.finished:
        events.append(Finish("stop"))
    return events


# ---- canonical → wire (responses) --------------------------------------------------------------


def usage_to_wire(u: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {"promptTokenCount": u.input_tokens,
                           "candidatesTokenCount": max(0, u.output_tokens - u.reasoning_tokens),
                           "totalTokenCount": u.total_tokens}
    if u.cached_tokens:
        out["cachedContentTokenCount"] = u.cached_tokens
    if u.reasoning_tokens:
        out["thoughtsTokenCount"] = u.reasoning_tokens
    return out


def thought_part(text: str, signature: ProviderState | None) -> dict[str, Any]:
    """A thought (reasoning) part, with its thoughtSignature when it has one (another protocol's folded)."""
    part: dict[str, Any] = {"text": text, "thought": True}
    if signature is not None:
        part["thoughtSignature"] = signature_text(signature, PROTOCOL)
    return part


def function_call_part(call: ToolCall) -> dict[str, Any]:
    call_id, signature = wire_signature(call)
    part: dict[str, Any] = {"functionCall": {"id": call_id, "name": call.name,
                                             "args": arguments_object(call.arguments)}}
    if signature:
        part["thoughtSignature"] = signature
    return part


def response_body(parts: list[dict[str, Any]], response_id: str, model: str, finish: str | None,
                  usage: Usage | None) -> dict[str, Any]:
    """One GenerateContentResponse (a whole answer, or one stream chunk when ``finish`` is None)."""
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts or [{"text": ""}]}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = FINISH_TO_WIRE.get(finish, "STOP")
    body: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        body["usageMetadata"] = usage_to_wire(usage)
    body["modelVersion"] = model
    body["responseId"] = response_id
    return body


def render_response(response: ChatResponse) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if response.reasoning or response.reasoning_signature is not None:  # a signature alone: redacted thinking
        parts.append(thought_part(response.reasoning, response.reasoning_signature))
    if response.text:
        parts.append({"text": response.text})
    parts.extend(function_call_part(c) for c in response.tool_calls)
    return response_body(parts, response.id, response.model, response.finish_reason or "stop", response.usage)
