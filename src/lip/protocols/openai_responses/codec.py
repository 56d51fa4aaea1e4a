"""Codec for upstreams that speak the OpenAI Responses API (``protocol: openai-responses``).

``POST <api_base_url>/responses`` with ``Authorization: Bearer`` (the protocol's own auth when
backend.yaml names none). The body is ``render``'s, a whole answer is read by ``response``; a Responses
stream has no ``[DONE]``: it is complete at ``response.completed`` (or ``.incomplete``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lip.core.model import (
    ChatRequest,
    ProviderItem,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageReport,
    token_count,
)
from lip.core.sse import SSEEvent
from lip.protocols.codecs import ErrorFields, event_json
from lip.protocols.openai_responses import errors
from lip.protocols.openai_responses import response as response_wire
from lip.protocols.openai_responses import tools as tools_wire
from lip.protocols.openai_responses.common import CALL_ITEMS, PROTOCOL
from lip.protocols.openai_responses.render import request_to_wire


class ResponsesCodec:
    def url(self, base_url: str, upstream_model: str, stream: bool) -> str:
        return base_url + "/responses"

    def default_auth(self, key: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + key}

    def body(self, request: ChatRequest, upstream_model: str) -> dict[str, Any]:
        return request_to_wire(request, upstream_model)

    def events(self, body: dict[str, Any], upstream_model: str) -> list[StreamEvent]:
        if isinstance(body.get("error"), dict) and "output" not in body:
            raise errors.error_of(body)
        return response_wire.response_events(body, upstream_model)

    def error_fields(self, raw: bytes) -> ErrorFields:
        return errors.error_fields(raw)

    def decoder(self, upstream_model: str) -> _Decoder:
        return _Decoder(upstream_model)


class _Decoder:
    __slots__ = ("_reader", "finished")

    def __init__(self, model: str) -> None:
        self._reader = StreamReader(model)
        self.finished = False

    def feed(self, event: SSEEvent) -> list[StreamEvent] | None:
        if event.data == b"[DONE]":
            return None
        data = event_json(event)
        if not isinstance(data, dict):
            return []
        events = self._reader.feed(data)
        self.finished = self._reader.finished
        return events


class StreamReader:
    """``response.*`` events → canonical events; complete at ``response.completed`` / ``.incomplete``."""

    __slots__ = ("_calls", "_custom", "_model", "finished")

    def __init__(self, fallback_model: str) -> None:
        self._model = fallback_model
        self._calls: dict[int, int] = {}  # output index → canonical call index
        self._custom: dict[int, list[str]] = {}  # output index → custom tool input pieces
        self.finished = False

    def feed(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        kind = data.get("type")
        if kind in ("response.output_text.delta", "response.refusal.delta", "response.reasoning_text.delta",
                    "response.reasoning_summary_text.delta"):
            delta = data.get("delta")
            if not isinstance(delta, str) or not delta:
                return []
            return [TextDelta(delta)] if kind in ("response.output_text.delta", "response.refusal.delta") else [
                ReasoningDelta(delta)]
        if kind == "response.function_call_arguments.delta":
            index = self._calls.get(token_count(data.get("output_index")))
            delta = data.get("delta")
            return [ToolCallDelta(index=index, arguments=delta)] if index is not None and isinstance(
                delta, str) and delta else []
        if kind == "response.custom_tool_call_input.delta":
            pieces = self._custom.get(token_count(data.get("output_index")))
            if pieces is not None and isinstance(data.get("delta"), str):
                pieces.append(data["delta"])
            return []
        if kind == "response.output_item.added":
            return self._added(data)
        if kind == "response.output_item.done":
            return self._done(data)
        if kind == "response.created":
            response = data.get("response")
            return [response_wire.start_of(response if isinstance(response, Mapping) else {}, self._model)]
        if kind in ("response.completed", "response.incomplete"):
            response = data.get("response")
            response = response if isinstance(response, Mapping) else {}
            self.finished = True
            events: list[StreamEvent] = [response_wire.finish_of(response, bool(self._calls))]
            usage = response_wire.usage_from_wire(response.get("usage"))
            if usage is not None:
                events.append(UsageReport(usage))
            return events
        if kind == "response.failed":
            response = data.get("response")
            raise errors.error_of(response if isinstance(response, Mapping) else {})
        if kind == "error":
            raise errors.event_error(data)
        return []

    def _added(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        item = data.get("item")
        if not isinstance(item, Mapping) or item.get("type") not in CALL_ITEMS:
            return []
        output_index = token_count(data.get("output_index"))
        index = self._calls[output_index] = len(self._calls)
        kind = item.get("type")
        if kind == "function_call":
            call = tools_wire.call_of({**item, "arguments": ""}, "function_call", "output")
            return [ToolCallDelta(index=index, id=call.id, name=call.name, arguments=item.get("arguments") or "")]
        self._custom[output_index] = []
        return []  # custom and tool_search calls are told whole when done

    def _done(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        item = data.get("item")
        if not isinstance(item, Mapping):
            return []
        kind = item.get("type")
        output_index = token_count(data.get("output_index"))
        if kind == "reasoning":
            return response_wire.reasoning_events(item, with_text=False)  # its text streamed already
        if kind in ("custom_tool_call", "tool_search_call"):
            pieces = self._custom.pop(output_index, [])
            whole = dict(item)
            if kind == "custom_tool_call" and not isinstance(whole.get("input"), str):
                whole["input"] = "".join(pieces)
            index = self._calls.get(output_index, len(self._calls))
            return response_wire.item_events(whole, index)
        if kind in ("message", "function_call"):
            return []
        return [ProviderItem(PROTOCOL, dict(item))]
