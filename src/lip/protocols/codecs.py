"""What every upstream codec offers the connector: the request body out, canonical events and errors in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

import orjson

from lip.core.errors import UpstreamMalformed, wait_seconds
from lip.core.model import ChatRequest, StreamEvent
from lip.core.sse import SSEEvent


@dataclass(frozen=True, slots=True)
class ErrorFields:
    """What an upstream's error body says, before the connector masks and bounds it."""

    message: str
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None  # a wait the body names (Gemini's RetryInfo), when no header does


class StreamDecoder(Protocol):
    """Turns one protocol's SSE events into canonical events."""

    finished: bool  # the upstream said how the answer ended (a finish reason)

    def feed(self, event: SSEEvent) -> list[StreamEvent] | None:
        """Events for one SSE event; None when the stream is complete (e.g. ``[DONE]``).

        Raises ProxyError for an error event or a chunk that cannot be read.
        """
        ...


class Codec(Protocol):
    """What differs between upstream protocols."""

    def url(self, base_url: str, upstream_model: str, stream: bool) -> str: ...

    def default_auth(self, key: str) -> dict[str, str]:
        """How this protocol sends a key when backend.yaml does not say (OpenAI: Bearer)."""
        ...

    def body(self, request: ChatRequest, upstream_model: str) -> dict[str, Any]: ...

    def events(self, body: dict[str, Any], upstream_model: str) -> list[StreamEvent]: ...

    def decoder(self, upstream_model: str) -> StreamDecoder: ...

    def error_fields(self, raw: bytes) -> ErrorFields:
        """What an error body of this protocol says (the connector masks and bounds every string)."""
        ...


@runtime_checkable
class CodecHeaders(Protocol):
    """A codec whose protocol needs headers on every request (Anthropic: anthropic-version)."""

    def headers(self) -> dict[str, str]: ...


@runtime_checkable
class CodecRequestHeaders(Protocol):
    """A codec that passes on headers the client sent in its own protocol (Anthropic: anthropic-beta)."""

    def request_headers(self, request: ChatRequest) -> Mapping[str, str]: ...


@runtime_checkable
class CodecCounts(Protocol):
    """A codec whose protocol has a token counting endpoint (``tokenizer: upstream``)."""

    def count_url(self, base_url: str, upstream_model: str) -> str: ...

    def count_body(self, request: ChatRequest, upstream_model: str) -> dict[str, Any]: ...

    def count_result(self, body: dict[str, Any]) -> tuple[int, bool] | None:
        """(tokens, framed) from the endpoint's answer (framed: the chat format's tokens are in), or
        None when the answer does not say."""
        ...


def event_json(event: SSEEvent) -> Any:
    """The JSON value of one upstream stream event; ``UpstreamMalformed`` when it is not JSON."""
    try:
        return orjson.loads(event.data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamMalformed("the upstream sent a malformed stream event", retry_after=None) from exc


def json_error_fields(raw: bytes) -> ErrorFields:
    """What a JSON error body says: ``{"error": {message, code|status|type, param}}`` (OpenAI, Anthropic,
    Gemini, also wrapped in a list), ``{"detail": ...}`` (FastAPI servers), a bare string; else its text;
    and a wait it names (``retry_delay_in_body``)."""
    fields = _fields(raw)
    wait = retry_delay_in_body(raw)
    return fields if wait is None else ErrorFields(fields.message, fields.code, fields.param, wait)


def _fields(raw: bytes) -> ErrorFields:
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return ErrorFields(raw[:500].decode("utf-8", "replace").strip())
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]  # Gemini sometimes wraps its error in a list
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body))
        if isinstance(error, dict):
            code = error.get("code")
            if not isinstance(code, str):
                code = error.get("status") or error.get("type")  # Gemini: status; Anthropic: type
            param = error.get("param")
            return ErrorFields(str(error.get("message") or ""), code if isinstance(code, str) else None,
                               param if isinstance(param, str) else None)
        if isinstance(error, str):
            return ErrorFields(error)
    return ErrorFields("")


def retry_delay_in_body(raw: bytes) -> float | None:
    """Google's RetryInfo (``"retryDelay": "12s"`` in the error's details): Gemini's own API and its
    OpenAI-compatible one both send it."""
    if b"retryDelay" not in raw:
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    outer = body[0] if isinstance(body, list) and body else body
    error = outer.get("error") if isinstance(outer, dict) else None  # any JSON value: an upstream's
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else []:
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return wait_seconds(float(delay[:-1]))
            except ValueError:
                return None
    return None


def path_segment(name: str) -> str:
    """``name`` (a model a client may have chosen) as one URL path segment: ``/``, ``?``, ``#``,
    ``%``, ``:`` and everything else not unreserved are percent-encoded, so a model name can never
    climb out of, or add to, the path a codec builds (``x/../../etc`` stays one segment)."""
    return quote(name, safe="-._~@")
