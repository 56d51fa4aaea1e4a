"""Anthropic Messages surface: ``POST /v1/messages`` (and ``/anthropic/v1/messages``), count_tokens.

Client glue only: the request is parsed by ``parse``, answers are rendered by ``response``, streams
by ``stream`` and errors by ``errors``; the client's ``anthropic-beta`` header travels to an
Anthropic upstream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from lip.core.errors import ProxyError
from lip.core.model import ChatRequest, ChatResponse, StreamEvent
from lip.protocols.anthropic import parse, stream
from lip.protocols.anthropic.common import PROTOCOL
from lip.protocols.anthropic.errors import error_body
from lip.protocols.anthropic.response import response_to_wire
from lip.protocols.base import Incoming, parse_json


def parse_request(raw: bytes) -> ChatRequest:
    return parse.parse_request(parse_json(raw))


def render_error(error: ProxyError) -> tuple[int, bytes]:
    return error.status, orjson.dumps(error_body(error))


BETA_HEADER = "anthropic-beta"


class AnthropicMessages:
    """``POST /v1/messages``, ``/anthropic/v1/messages`` and their ``/count_tokens``."""

    name = "anthropic"
    stream_media_type = "text/event-stream"

    def parse(self, incoming: Incoming) -> ChatRequest:
        request = parse_request(incoming.body)
        beta = incoming.headers.get(BETA_HEADER)
        if beta:  # the features the client opted into travel to an Anthropic upstream
            request = request.evolve(protocol_headers={PROTOCOL: {BETA_HEADER: beta}})
        return request

    def render_response(self, response: ChatResponse, request: ChatRequest, incoming: Incoming) -> bytes:
        return orjson.dumps(response_to_wire(response, request.model))

    def render_stream(
        self, events: AsyncIterator[StreamEvent], request: ChatRequest, incoming: Incoming
    ) -> AsyncIterator[bytes]:
        return stream.render_stream(events, request.model)

    def render_error(self, error: ProxyError) -> tuple[int, bytes]:
        return render_error(error)

    def render_count(self, tokens: int, request: ChatRequest) -> bytes:
        return orjson.dumps({"input_tokens": tokens})
