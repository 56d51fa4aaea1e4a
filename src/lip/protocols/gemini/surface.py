"""Gemini API surface: ``{version}/models/{model}:generateContent``, ``:streamGenerateContent``,
``:countTokens`` and ``GET {version}/models``, at the versions ``/v1beta``, ``/v1``, ``/v1alpha`` and none.

Client JSON ⇄ canonical request, events ⇄ GenerateContentResponse chunks, errors in Google's
envelope. The format itself lives in ``parse``, ``response`` and ``errors`` of this folder.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from lip.core.errors import InvalidRequest, ProxyError
from lip.core.model import (
    ChatRequest,
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
)
from lip.core.sse import encode
from lip.protocols import base
from lip.protocols.base import Incoming, ModelInfo
from lip.protocols.gemini.common import get, model_name
from lip.protocols.gemini.errors import error_body
from lip.protocols.gemini.parse import parse_request
from lip.protocols.gemini.response import function_call_part, render_response, response_body, thought_part

METHODS = frozenset({"generateContent", "streamGenerateContent", "countTokens"})
SUPPORTED_METHODS = ["generateContent", "streamGenerateContent", "countTokens"]


def gemini_method(incoming: Incoming) -> str:
    """The Gemini method of the request ("generateContent", "streamGenerateContent", "countTokens"),
    as the server takes it from the route (``incoming.method``); "" when unknown."""
    return incoming.method if incoming.method in METHODS else ""


def is_stream(incoming: Incoming) -> bool:
    """Whether the client called ``:streamGenerateContent``.

    Decided by the route's method (``incoming.method``); when an Incoming carries none, by
    ``alt=sse`` in the query, which every official SDK sends with ``:streamGenerateContent``.
    """
    method = gemini_method(incoming)
    if method:
        return method == "streamGenerateContent"
    return incoming.query.get("alt") == "sse"


def uses_sse(incoming: Incoming) -> bool:
    """``alt=sse``: SSE events; otherwise Gemini streams one JSON array, element by element."""
    return incoming.query.get("alt") == "sse"


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 worded as Google words it."""
    return base.parse_json(raw, invalid="Invalid JSON payload received",
                           not_object="Invalid JSON payload received: expected a JSON object.")


def parse(incoming: Incoming) -> ChatRequest:
    body = parse_json(incoming.body)
    inner = get(body, "generateContentRequest")  # countTokens may wrap a whole request
    if inner is not None:
        if not isinstance(inner, dict):
            raise InvalidRequest("Invalid value at 'generateContentRequest': expected an object.",
                                 param="generateContentRequest", code="invalid_value")
        body = inner
    model = model_name(incoming.path.get("model", ""))
    return parse_request(body, model=model, stream=is_stream(incoming))


@dataclass(slots=True)
class _PendingCall:
    id: str = ""
    name: str = ""
    pieces: list[str] = field(default_factory=list)
    signature: ProviderState | None = None


class _Chunks:
    """The GenerateContentResponse chunks of one stream, framed as SSE events or as the elements of one
    JSON array; function calls are held until the last chunk (Gemini never splits a call)."""

    __slots__ = ("calls", "finish", "first", "model", "response_id", "sse", "usage")

    def __init__(self, sse: bool) -> None:
        self.sse = sse
        self.first = True
        self.response_id, self.model = "", ""
        self.calls: dict[int, _PendingCall] = {}
        self.finish: str | None = None
        self.usage: Usage | None = None

    def frame(self, body: dict[str, Any]) -> bytes:
        data = orjson.dumps(body)
        if self.sse:
            return encode(data)
        head = b"[" if self.first else b",\r\n"
        self.first = False
        return head + data

    def feed(self, event: StreamEvent) -> bytes | None:
        """The chunk of one text or thought delta; None for the events the last chunk carries."""
        if isinstance(event, TextDelta):
            return self.frame(response_body([{"text": event.text}], self.response_id, self.model, None, None))
        if isinstance(event, ToolCallDelta):
            call = self.calls.setdefault(event.index, _PendingCall())
            call.id = event.id or call.id
            call.name = call.name or event.name or ""
            call.signature = event.signature or call.signature
            call.pieces.append(event.arguments)
        elif isinstance(event, ReasoningDelta):
            part = thought_part(event.text, event.signature)
            return self.frame(response_body([part], self.response_id, self.model, None, None))
        elif isinstance(event, ResponseStart):
            self.response_id, self.model = event.id, event.model
        elif isinstance(event, Finish):
            self.finish = event.reason
        elif isinstance(event, UsageReport):
            self.usage = event.usage
        return None

    def last(self) -> bytes:
        """The last chunk: the function calls, finishReason and usageMetadata."""
        parts = [function_call_part(ToolCall(c.id or f"call_{i}", c.name, "".join(c.pieces), c.signature))
                 for i, c in sorted(self.calls.items())]
        return self.frame(response_body(parts, self.response_id, self.model, self.finish or "stop", self.usage))


async def render_stream(events: AsyncIterator[StreamEvent], sse: bool) -> AsyncIterator[bytes]:
    """GenerateContentResponse chunks: one per text or thought delta; the last one carries the
    function calls (assembled whole), finishReason and usageMetadata. A ProxyError mid-stream ends
    the stream with an ``{"error": ...}`` element, which makes the SDKs raise.
    """
    chunks = _Chunks(sse)
    try:
        async for event in events:
            chunk = chunks.feed(event)
            if chunk is not None:
                yield chunk
    except ProxyError as error:
        yield chunks.frame(error_body(error))
        if not sse:
            yield b"]"
        return
    yield chunks.last()
    if not sse:
        yield b"]"


def render_models(models: list[ModelInfo]) -> dict[str, Any]:
    out = []
    for m in models:
        entry: dict[str, Any] = {
            "name": f"models/{m.id}",
            "version": "lip",
            "displayName": m.id,
            "description": f"{m.id}, served by backend '{m.backend}' through LLM Interactive Proxy.",
        }
        input_limit = m.max_input_tokens or m.context_window
        if input_limit is not None:
            entry["inputTokenLimit"] = input_limit
        if m.max_output_tokens is not None:
            entry["outputTokenLimit"] = m.max_output_tokens
        entry["supportedGenerationMethods"] = SUPPORTED_METHODS
        out.append(entry)
    return {"models": out}


class GeminiGenerate:
    """The Gemini API surface; the method comes from the route (see ``gemini_method``)."""

    name = "gemini"
    stream_media_type = "text/event-stream"

    def parse(self, incoming: Incoming) -> ChatRequest:
        return parse(incoming)

    def render_response(self, response: ChatResponse, request: ChatRequest, incoming: Incoming) -> bytes:
        return orjson.dumps(render_response(response))

    def render_stream(
        self, events: AsyncIterator[StreamEvent], request: ChatRequest, incoming: Incoming
    ) -> AsyncIterator[bytes]:
        return render_stream(events, uses_sse(incoming))

    def render_error(self, error: ProxyError) -> tuple[int, bytes]:
        return error.status, orjson.dumps(error_body(error))

    def stream_media_type_for(self, incoming: Incoming) -> str:
        """SSE with ``alt=sse`` (what the SDKs ask for); otherwise Gemini's streamed JSON array."""
        return "text/event-stream" if uses_sse(incoming) else "application/json"

    def render_count(self, tokens: int, request: ChatRequest) -> bytes:
        return orjson.dumps({"totalTokens": tokens})

    def render_models(self, models: list[ModelInfo]) -> bytes:
        return orjson.dumps(render_models(models))
