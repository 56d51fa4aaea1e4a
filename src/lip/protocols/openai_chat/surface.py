"""OpenAI Chat Completions surface: client JSON ⇄ canonical request, events ⇄ chunks and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from lip.core.errors import InvalidRequest, ProxyError
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
from lip.protocols.base import parse_json as parse_json  # noqa: PLC0414 - re-exported (anthropic, responses)
from lip.protocols.openai_chat import format as wire
from lip.protocols.openai_envelope import error_body, render_error

DONE = b"data: [DONE]\n\n"


def parse_request(raw: bytes) -> ChatRequest:
    body = parse_json(raw)
    model = body.get("model", "")
    if not isinstance(model, str):
        raise InvalidRequest("Invalid value for 'model': expected a string.", param="model",
                             code="invalid_value")
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise InvalidRequest("Invalid value for 'stream': expected a boolean.", param="stream",
                             code="invalid_value")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("Invalid value for 'stream_options': expected an object.",
                             param="stream_options", code="invalid_value")
    parameters = wire.parse_parameters(body)
    if parameters.get("n", 1) != 1:
        raise InvalidRequest("Only n=1 is supported by this proxy.", param="n", code="invalid_value")
    return ChatRequest(
        model=model,
        messages=wire.parse_messages(body.get("messages")),
        stream=bool(stream),
        include_usage=bool(options and options.get("include_usage")),
        tools=wire.parse_tools(body.get("tools")),
        tool_choice=wire.parse_tool_choice(body.get("tool_choice")),
        parameters=parameters,
    )


def render_response(response: ChatResponse) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": response.text or None}
    if response.reasoning:
        message["reasoning_content"] = response.reasoning
    if response.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in response.tool_calls
        ]
    elif message["content"] is None:
        message["content"] = ""
    body: dict[str, Any] = {
        "id": response.id,
        "object": "chat.completion",
        "created": response.created,
        "model": response.model,
        "choices": [{"index": 0, "message": message, "finish_reason": response.finish_reason or "stop",
                     "logprobs": None}],
    }
    if response.usage is not None:
        body["usage"] = wire.usage_to_wire(response.usage)
    return orjson.dumps(body)


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
        yield encode(orjson.dumps(error_body(error)))
        return
    if request.include_usage and usage is not None:
        yield encode(orjson.dumps({**head, "choices": [], "usage": wire.usage_to_wire(usage)}))
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
        return render_response(response)

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
