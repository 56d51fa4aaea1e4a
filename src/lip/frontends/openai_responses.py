"""OpenAI Responses surface (placeholder until it lands)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from lip.core.errors import InvalidRequest, ProxyError
from lip.core.model import ChatRequest, ChatResponse, StreamEvent
from lip.frontends.base import Incoming
from lip.frontends.openai_chat import render_error


class ResponseStore:
    """Bounded in-memory store of earlier responses, for ``previous_response_id``."""


class OpenAIResponses:
    def __init__(self, store: ResponseStore) -> None:
        self.store = store

    name = "openai-responses"
    stream_media_type = "text/event-stream"

    def parse(self, incoming: Incoming) -> ChatRequest:
        raise InvalidRequest("The Responses surface is not available yet.", status=501)

    def render_response(self, response: ChatResponse, request: ChatRequest, incoming: Incoming) -> bytes:
        raise NotImplementedError

    def render_stream(
        self, events: AsyncIterator[StreamEvent], request: ChatRequest, incoming: Incoming
    ) -> AsyncIterator[bytes]:
        raise NotImplementedError

    def render_error(self, error: ProxyError) -> tuple[int, bytes]:
        return render_error(error)
