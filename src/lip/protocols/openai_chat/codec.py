"""Codec for upstreams that speak OpenAI Chat Completions (custom backends, openai and its kin)."""

from __future__ import annotations

from typing import Any

import orjson

from lip.core.errors import UpstreamMalformed
from lip.core.model import ChatRequest, Finish, StreamEvent, token_count
from lip.core.sse import SSEEvent
from lip.protocols.codecs import ErrorFields, event_json
from lip.protocols.openai_chat import errors
from lip.protocols.openai_chat.render import message_to_wire, request_body, tool_to_wire
from lip.protocols.openai_chat.response import chunk_events, completion_events


class OpenAICodec:
    def url(self, base_url: str, upstream_model: str, stream: bool) -> str:
        return base_url + "/chat/completions"

    def default_auth(self, key: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + key}

    def body(self, request: ChatRequest, upstream_model: str) -> dict[str, Any]:
        return request_body(request, upstream_model)

    def count_url(self, base_url: str, upstream_model: str) -> str:
        """vLLM and llama.cpp servers answer ``/tokenize`` beside ``/v1``."""
        return base_url.removesuffix("/v1") + "/tokenize"

    def count_body(self, request: ChatRequest, upstream_model: str) -> dict[str, Any]:
        """One body for both servers: vLLM reads ``messages`` (its chat template applied) and ignores
        ``content``; llama.cpp reads ``content`` (the text alone) and ignores the rest."""
        body: dict[str, Any] = {
            "model": upstream_model,
            "messages": [message_to_wire(m) for m in request.messages],
            "add_generation_prompt": True,
            "content": _text_of(request),
        }
        if request.tools:
            body["tools"] = [tool_to_wire(t) for t in request.tools]
        return body

    def count_result(self, body: dict[str, Any]) -> tuple[int, bool] | None:
        count = body.get("count")
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            return token_count(count), True  # vLLM: the templated conversation
        tokens = body.get("tokens")
        return (len(tokens), False) if isinstance(tokens, list) else None  # llama.cpp: the text's tokens

    def events(self, body: dict[str, Any], upstream_model: str) -> list[StreamEvent]:
        choices = body.get("choices")
        first = choices[0] if isinstance(choices, list) and choices else None
        message = first.get("message") if isinstance(first, dict) else None
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        if not isinstance(message, dict) or not (calls is None or (isinstance(calls, list) and all(
                isinstance(c, dict) and isinstance(c.get("function", {}), dict) for c in calls))):
            raise UpstreamMalformed("the upstream's answer is not a chat.completion (no choices[0].message)",
                                 retry_after=None)
        return completion_events(body, upstream_model)

    def error_fields(self, raw: bytes) -> ErrorFields:
        return errors.error_fields(raw)

    def decoder(self, upstream_model: str) -> _Decoder:
        return _Decoder(upstream_model)


def _text_of(request: ChatRequest) -> str:
    """Every text of a request, one after another: what a server without chat templates can count."""
    parts: list[str] = []
    for message in request.messages:
        parts.append(message.role)
        parts.append(message.text())
        for call in message.tool_calls:
            parts.extend((call.name, call.arguments))
    for tool in request.tools:
        parts.append(orjson.dumps(tool_to_wire(tool)).decode())
    return "\n".join(p for p in parts if p)


class _Decoder:
    __slots__ = ("_first", "_model", "finished")

    def __init__(self, model: str) -> None:
        self._model = model
        self._first = True
        self.finished = False

    def feed(self, event: SSEEvent) -> list[StreamEvent] | None:
        if event.data == b"[DONE]":
            return None
        chunk = event_json(event)
        if not isinstance(chunk, dict):
            return []
        error = errors.stream_error_of(chunk)
        if error is not None:
            raise error
        events = chunk_events(chunk, self._first, self._model)
        self._first = False
        if not self.finished:
            self.finished = any(isinstance(e, Finish) for e in events)
        return events
