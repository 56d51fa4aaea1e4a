"""OpenAI Chat Completions surface (``POST /v1/chat/completions``, ``GET /v1/models``): the request
through ``parse``, answers through ``response``, the stream's chunks here, errors through ``errors``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from lip.core.errors import ProxyError
from lip.core.model import (
    ChatRequest,
    ChatResponse,
    Finish,
    ReasoningDelta,
    ResponseStart,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)
from lip.core.sse import encode
from lip.protocols.base import Incoming, ModelInfo
from lip.protocols.openai_chat.errors import render_error, stream_error
from lip.protocols.openai_chat.parse import parse_request
from lip.protocols.openai_chat.response import response_body, usage_to_wire

DONE = b"data: [DONE]\n\n"


async def render_stream(events: AsyncIterator[StreamEvent], request: ChatRequest) -> AsyncIterator[bytes]:
    """chat.completion.chunk events; an upstream failure mid-stream ends with an error event."""
    head: dict[str, Any] = {"id": "", "object": "chat.completion.chunk", "created": 0, "model": ""}
    usage = None
    try:
        async for event in events:
            if isinstance(event, TextDelta):
                yield _chunk(head, {"content": event.text})
            elif isinstance(event, ToolCallDelta):
                yield _chunk(head, {"tool_calls": [_tool_delta(event)]})
            elif isinstance(event, ResponseStart):
                head = {"id": event.id, "object": "chat.completion.chunk", "created": event.created,
                        "model": event.model}
                yield _chunk(head, {"role": "assistant", "content": ""})
            elif isinstance(event, Finish):
                yield _chunk(head, {}, event.reason)
            elif isinstance(event, UsageReport):
                usage = event.usage
            elif isinstance(event, ReasoningDelta):
                yield _chunk(head, {"reasoning_content": event.text})
    except ProxyError as error:
        yield stream_error(error)
        return
    if request.include_usage and usage is not None:
        yield encode(orjson.dumps({**head, "choices": [], "usage": usage_to_wire(usage)}))
    yield DONE


def _chunk(head: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return encode(orjson.dumps({**head, "choices": [choice]}))


def _tool_delta(event: ToolCallDelta) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": event.arguments}
    out: dict[str, Any] = {"index": event.index, "function": function}
    if event.id is not None:
        out["id"] = event.id
        out["type"] = "function"
    if event.name is not None:
        function["name"] = event.name
    return out


class OpenAIChat:
    """``POST /v1/chat/completions``."""

    name = "openai"
    stream_media_type = "text/event-stream"

    def parse(self, incoming: Incoming) -> ChatRequest:
        return parse_request(incoming.body)

    def render_response(self, response: ChatResponse, request: ChatRequest, incoming: Incoming) -> bytes:
        return orjson.dumps(response_body(response))

    def render_stream(
        self, events: AsyncIterator[StreamEvent], request: ChatRequest, incoming: Incoming
    ) -> AsyncIterator[bytes]:
        return render_stream(events, request)

    def render_error(self, error: ProxyError) -> tuple[int, bytes]:
        return render_error(error)

    def render_models(self, models: list[ModelInfo]) -> bytes:
        """``GET /v1/models``: OpenAI's model list, with each model's configured limits."""
        return orjson.dumps({"object": "list", "data": [_model_entry(m) for m in models]})


def _model_entry(model: ModelInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": model.id, "object": "model", "created": 0, "owned_by": model.backend}
    if model.limits:
        entry["limits"] = dict(model.limits)
    return entry
