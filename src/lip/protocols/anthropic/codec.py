"""Codec for upstreams that speak Anthropic Messages (the ``anthropic`` preset, ``protocol: anthropic``).

``POST <api_base_url>/messages`` with ``x-api-key`` (the protocol's own auth when backend.yaml names
none). The API also requires an ``anthropic-version`` header: the codec sends
``anthropic-version: 2023-06-01`` on every request; a backend's ``headers:`` may override it. A
client of the Anthropic protocol's ``anthropic-beta`` header is passed on (joined with one the
backend's ``headers:`` set).
``max_tokens`` is required by Anthropic: when neither the client nor the model's limits set it,
the codec sends ``render.DEFAULT_MAX_TOKENS`` (4096).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from lip.core.errors import UpstreamMalformed
from lip.core.model import ChatRequest, StreamEvent, token_count
from lip.core.sse import SSEEvent
from lip.protocols.anthropic.common import PROTOCOL, VERSION
from lip.protocols.anthropic.errors import error_from_wire
from lip.protocols.anthropic.render import request_to_wire
from lip.protocols.anthropic.response import message_events
from lip.protocols.anthropic.stream import StreamParser
from lip.protocols.codecs import ErrorFields, event_json, json_error_fields

VERSION_HEADER = {"anthropic-version": VERSION}
COUNT_KEYS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"})
EMPTY_HEADERS: Mapping[str, str] = MappingProxyType({})


class AnthropicCodec:
    def url(self, base_url: str, upstream_model: str, stream: bool) -> str:
        return base_url + "/messages"

    def default_auth(self, key: str) -> dict[str, str]:
        return {"x-api-key": key}

    def headers(self) -> dict[str, str]:
        """Headers the protocol needs on every request (under the backend's own ``headers:``)."""
        return dict(VERSION_HEADER)

    def request_headers(self, request: ChatRequest) -> Mapping[str, str]:
        """The client's ``anthropic-beta`` (features it opted into), when it came in Anthropic's protocol."""
        return request.protocol_headers.get(PROTOCOL, EMPTY_HEADERS)

    def body(self, request: ChatRequest, upstream_model: str) -> dict[str, Any]:
        return request_to_wire(request, upstream_model)

    def count_url(self, base_url: str, upstream_model: str) -> str:
        return base_url + "/messages/count_tokens"

    def count_body(self, request: ChatRequest, upstream_model: str) -> dict[str, Any]:
        """The Messages body less what count_tokens refuses (max_tokens, sampling, stream)."""
        return {k: v for k, v in request_to_wire(request, upstream_model).items() if k in COUNT_KEYS}

    def count_result(self, body: dict[str, Any]) -> tuple[int, bool] | None:
        tokens = body.get("input_tokens")
        valid = isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0
        return (token_count(tokens), True) if valid else None

    def events(self, body: dict[str, Any], upstream_model: str) -> list[StreamEvent]:
        if body.get("type") == "error":
            raise error_from_wire(body)
        if body.get("type") != "message" or not isinstance(body.get("content"), list):
            raise UpstreamMalformed("the upstream's answer is not a Message (no type 'message' with a content list)",
                                 retry_after=None)
        return message_events(body, upstream_model)

    def error_fields(self, raw: bytes) -> ErrorFields:
        return json_error_fields(raw)

    def decoder(self, upstream_model: str) -> _Decoder:
        return _Decoder(upstream_model)


class _Decoder:
    """Anthropic SSE events → canonical events; complete at ``message_stop``."""

    __slots__ = ("_parser", "finished")

    def __init__(self, model: str) -> None:
        self._parser = StreamParser(model)
        self.finished = False

    def feed(self, event: SSEEvent) -> list[StreamEvent] | None:
        data = event_json(event)
        if not isinstance(data, dict):
            return []
        kind = data.get("type")
        if not isinstance(kind, str):
            kind = event.event or ""
        if kind == "message_stop":
            return None
        if kind == "error":
            raise error_from_wire(data)
        events = self._parser.feed(kind, data)
        self.finished = self._parser.finished
        return events
