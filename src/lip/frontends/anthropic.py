"""Anthropic Messages surface (placeholder until the Anthropic protocol lands)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from lip.core.errors import InvalidRequest, ProxyError
from lip.core.model import ChatRequest, ChatResponse, StreamEvent
from lip.frontends.base import Incoming
from lip.frontends.openai_chat import render_error


class AnthropicMessages:
    name = "anthropic"
    stream_media_type = "text/event-stream"

    def parse(self, incoming: Incoming) -> ChatRequest:
        raise InvalidRequest("The Anthropic Messages surface is not available yet.", status=501)

    def render_response(self, response: ChatResponse, request: ChatRequest, incoming: Incoming) -> bytes:
        raise NotImplementedError

    def render_stream(
        self, events: AsyncIterator[StreamEvent], request: ChatRequest, incoming: Incoming
    ) -> AsyncIterator[bytes]:
        raise NotImplementedError

    def render_error(self, error: ProxyError) -> tuple[int, bytes]:
        return render_error(error)

    def render_count(self, tokens: int, request: ChatRequest) -> bytes:
        raise NotImplementedError
