"""What a client protocol surface offers the server: parse a request, render answers and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import orjson

from lip.core.errors import InvalidRequest, ProxyError
from lip.core.model import EMPTY, ChatRequest, ChatResponse, StreamEvent


@dataclass(slots=True)
class Incoming:
    """The parts of an HTTP request a surface reads (no web framework types cross this line)."""

    body: bytes
    path: Mapping[str, str]  # path parameters, e.g. Gemini's {model}
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    method: str = ""  # the route's method name where the path carries one (Gemini: streamGenerateContent)
    client: str | None = None  # the authenticated client's name (None: no client keys are configured)


def parse_json(
    raw: bytes,
    *,
    invalid: str = "The request body is not valid JSON",
    not_object: str = "The request body must be a JSON object.",
) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 (code ``invalid_json``) that says what is wrong with it.

    ``invalid`` starts the message for a body that does not parse (the parser's complaint follows it);
    ``not_object`` is the message for JSON that is not an object. A surface passes its API's wording.
    """
    if not raw:
        raise InvalidRequest("The request body is empty; expected a JSON object.", code="invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"{invalid}: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise InvalidRequest(not_object, code="invalid_json")
    return body


class Surface(Protocol):
    """One client protocol (OpenAI chat, OpenAI Responses, Anthropic Messages, Gemini)."""

    name: str
    stream_media_type: str

    def parse(self, incoming: Incoming) -> ChatRequest:
        """The canonical request; raises InvalidRequest naming the field that is wrong."""
        ...

    def render_response(self, response: ChatResponse, request: ChatRequest, incoming: Incoming) -> bytes: ...

    def render_stream(
        self, events: AsyncIterator[StreamEvent], request: ChatRequest, incoming: Incoming
    ) -> AsyncIterator[bytes]:
        """The client's stream; a ProxyError raised by ``events`` ends it with the protocol's error event."""
        ...

    def render_error(self, error: ProxyError) -> tuple[int, bytes]: ...


@runtime_checkable
class ChoosesMediaType(Protocol):
    """A surface whose stream format depends on the request (Gemini: SSE or a JSON array)."""

    def stream_media_type_for(self, incoming: Incoming) -> str: ...


@runtime_checkable
class KeepsAnswers(Protocol):
    """A surface that reads a shared store while parsing and writes to it while rendering (Responses:
    ``previous_response_id``): parsed with ``parse_async``, and settled before the client hears back."""

    async def parse_async(self, incoming: Incoming) -> ChatRequest: ...

    async def settle(self) -> None:
        """Until what was rendered is stored where the next turn may look (another replica)."""
        ...


class CountsTokens(Protocol):
    """A surface with a token-counting endpoint (Anthropic count_tokens, Gemini countTokens)."""

    def render_count(self, tokens: int, request: ChatRequest) -> bytes: ...


class ListsModels(Protocol):
    """A surface with its own model listing (Gemini ``GET /v1beta/models``)."""

    def render_models(self, models: list[ModelInfo]) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One routable ``backend:model`` with its limits, for model listings."""

    id: str  # backend:model
    backend: str
    context_window: int | None
    max_input_tokens: int | None
    max_output_tokens: int | None
    limits: Mapping[str, Any] = field(default_factory=lambda: EMPTY)  # all its configured limits (OpenAI lists them)
