"""Codec for upstreams that speak the OpenAI Responses API (``protocol: openai-responses``).

``POST <api_base_url>/responses`` with ``Authorization: Bearer`` (the protocol's own auth when
backend.yaml names none). The body and the events are ``lip.protocols.openai_responses.upstream_format``'s; a
Responses stream has no ``[DONE]``: it is complete at ``response.completed`` (or ``.incomplete``).
"""

from __future__ import annotations

from typing import Any

from lip.core.model import ChatRequest, StreamEvent
from lip.core.sse import SSEEvent
from lip.protocols.codecs import ErrorFields, event_json, json_error_fields
from lip.protocols.openai_responses import upstream_format as wire


class ResponsesCodec:
    def url(self, base_url: str, upstream_model: str, stream: bool) -> str:
        return base_url + "/responses"

    def default_auth(self, key: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + key}

    def body(self, request: ChatRequest, upstream_model: str) -> dict[str, Any]:
        return wire.request_to_wire(request, upstream_model)

    def events(self, body: dict[str, Any], upstream_model: str) -> list[StreamEvent]:
        if isinstance(body.get("error"), dict) and "output" not in body:
            raise wire.error_of(body)
        return wire.response_events(body, upstream_model)

    def error_fields(self, raw: bytes) -> ErrorFields:
        return json_error_fields(raw)

    def decoder(self, upstream_model: str) -> _Decoder:
        return _Decoder(upstream_model)


class _Decoder:
    __slots__ = ("_reader", "finished")

    def __init__(self, model: str) -> None:
        self._reader = wire.StreamReader(model)
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
