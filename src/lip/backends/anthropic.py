"""Codec for upstreams that speak Anthropic Messages (placeholder until the protocol lands)."""

from __future__ import annotations

from typing import Any

from lip.backends.connector import StreamDecoder
from lip.core.errors import BackendUnavailable
from lip.core.model import ChatRequest, StreamEvent

READY = False  # app.py reports backends of this protocol as unavailable until the codec is done


class AnthropicCodec:
    def url(self, base_url: str, upstream_model: str, stream: bool) -> str:
        return base_url + "/messages"

    def default_auth(self, key: str) -> dict[str, str]:
        return {"x-api-key": key}

    def body(self, request: ChatRequest, upstream_model: str) -> dict[str, Any]:
        raise BackendUnavailable("The Anthropic upstream protocol is not available yet.")

    def events(self, body: dict[str, Any], upstream_model: str) -> list[StreamEvent]:
        raise BackendUnavailable("The Anthropic upstream protocol is not available yet.")

    def decoder(self, upstream_model: str) -> StreamDecoder:
        raise BackendUnavailable("The Anthropic upstream protocol is not available yet.")
