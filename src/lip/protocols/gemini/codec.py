"""Codec for upstreams that speak Gemini generateContent (the ``gemini`` preset, ``protocol: gemini``).

``{base_url}/models/{model}:generateContent`` answers one GenerateContentResponse;
``{base_url}/models/{model}:streamGenerateContent?alt=sse`` streams them as SSE ``data:`` events.
A Gemini stream has no end marker: it ends when the connection closes, and the connector checks
that a finishReason arrived before that (``finished``).
The model goes into the path as one percent-encoded segment (``path_segment``): a client's
``gem:x/../../etc`` names the model ``x/../../etc`` upstream, never another path on its host.
"""

from __future__ import annotations

from typing import Any

from lip.core.errors import UpstreamMalformed
from lip.core.model import ChatRequest, StreamEvent, token_count
from lip.core.sse import SSEEvent
from lip.protocols.codecs import ErrorFields, event_json, path_segment
from lip.protocols.gemini.common import model_name
from lip.protocols.gemini.errors import error_fields, error_from_wire
from lip.protocols.gemini.render import request_to_wire
from lip.protocols.gemini.response import ResponseReader, response_events


def model_url(base_url: str, upstream_model: str, method: str) -> str:
    """``{base_url}/models/{model}:{method}``, the model one percent-encoded path segment."""
    return f"{base_url}/models/{path_segment(model_name(upstream_model))}:{method}"


class GeminiCodec:
    def url(self, base_url: str, upstream_model: str, stream: bool) -> str:
        if stream:
            return model_url(base_url, upstream_model, "streamGenerateContent") + "?alt=sse"
        return model_url(base_url, upstream_model, "generateContent")

    def default_auth(self, key: str) -> dict[str, str]:
        return {"x-goog-api-key": key}

    def body(self, request: ChatRequest, upstream_model: str) -> dict[str, Any]:
        return request_to_wire(request)

    def count_url(self, base_url: str, upstream_model: str) -> str:
        return model_url(base_url, upstream_model, "countTokens")

    def count_body(self, request: ChatRequest, upstream_model: str) -> dict[str, Any]:
        """countTokens of the whole GenerateContentRequest: system instruction and tools included."""
        model = f"models/{model_name(upstream_model)}"
        return {"generateContentRequest": {"model": model, **request_to_wire(request)}}

    def count_result(self, body: dict[str, Any]) -> tuple[int, bool] | None:
        tokens = body.get("totalTokens")
        valid = isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0
        return (token_count(tokens), True) if valid else None

    def events(self, body: dict[str, Any], upstream_model: str) -> list[StreamEvent]:
        if "error" in body and not body.get("candidates"):
            raise error_from_wire(body["error"])
        candidates = body.get("candidates")
        if not ((isinstance(candidates, list) and candidates and all(isinstance(c, dict) for c in candidates))
                or (candidates is None and isinstance(body.get("promptFeedback"), dict))):
            raise UpstreamMalformed("the upstream's answer is not a GenerateContentResponse (no candidates)")
        return response_events(body, upstream_model)

    def error_fields(self, raw: bytes) -> ErrorFields:
        return error_fields(raw)

    def decoder(self, upstream_model: str) -> GeminiDecoder:
        return GeminiDecoder(upstream_model)


class GeminiDecoder:
    """One GenerateContentResponse per SSE event; never returns None (the stream ends at close)."""

    __slots__ = ("_reader", "finished")

    def __init__(self, model: str) -> None:
        self._reader = ResponseReader(model)
        self.finished = False

    def feed(self, event: SSEEvent) -> list[StreamEvent] | None:
        chunk = event_json(event)
        if isinstance(chunk, list):  # a JSON-array stream element, should an upstream ignore alt=sse
            chunk = chunk[0] if chunk else {}
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk and not chunk.get("candidates"):
            raise error_from_wire(chunk["error"])
        events = self._reader.feed(chunk)
        self.finished = self._reader.finished
        return events
