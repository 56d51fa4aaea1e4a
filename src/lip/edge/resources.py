"""The client routes besides chat: token counts, model lists and stored responses, each an endpoint
of the kind a protocol declares (``Endpoints`` is the route table's ``Kinds``)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from lip.core.errors import InvalidRequest, NotFound
from lip.core.model import ChatRequest
from lip.edge.chat import chat_endpoint
from lip.edge.exchange import Caller, Endpoint, Reply
from lip.edge.services import Services
from lip.protocols.base import Incoming, ModelInfo, Surface


@runtime_checkable
class _Counts(Protocol):
    def parse(self, incoming: Incoming) -> ChatRequest: ...

    def render_count(self, tokens: int, request: ChatRequest) -> bytes: ...


@runtime_checkable
class _Lists(Protocol):
    def render_models(self, models: list[ModelInfo]) -> bytes: ...


class _Store(Protocol):
    async def fetch_response(self, response_id: str) -> bytes | None: ...

    async def forget(self, response_id: str) -> bool: ...


@runtime_checkable
class _Keeps(Protocol):
    """A surface that keeps the responses it renders (OpenAI Responses)."""

    @property
    def store(self) -> _Store: ...

    def key(self, client: str | None, response_id: str) -> str: ...

    def render_deleted(self, response_id: str) -> bytes: ...


class Endpoints:
    """The endpoint of each kind of client route, bound to one configuration's services."""

    def __init__(self, services: Services) -> None:
        self.s = services

    def chat(self, surface: Surface) -> Endpoint:
        return chat_endpoint(self.s, surface)

    def count(self, surface: Surface) -> Endpoint:
        """Count a request's input tokens as the route's model would (Anthropic count_tokens, Gemini countTokens)."""
        if not isinstance(surface, _Counts):
            raise TypeError(f"{surface.name} declares a token-counting route but does not render counts")
        counts, services = surface, self.s

        async def endpoint(incoming: Incoming, caller: Caller) -> Reply:
            chat = services.redactor.request(counts.parse(incoming), incoming.body)
            tokens = await services.router.count_tokens(chat, caller.client)
            return Reply(200, counts.render_count(tokens, chat))

        return endpoint

    def models(self, surface: Surface) -> Endpoint:
        """The routable ``backend:model``s the caller may use, in the surface's list format."""
        if not isinstance(surface, _Lists):
            raise TypeError(f"{surface.name} declares a model-list route but does not render model lists")
        lists, router = surface, self.s.router

        async def endpoint(incoming: Incoming, caller: Caller) -> Reply:
            client = caller.client
            return Reply(200, lists.render_models([
                ModelInfo(
                    id=route.label,
                    backend=route.runtime.name,
                    context_window=route.config.limits.context_window if route.config else None,
                    max_input_tokens=route.config.limits.max_input_tokens if route.config else None,
                    max_output_tokens=route.config.limits.max_output_tokens if route.config else None,
                    limits=route.config.limits.model_dump(exclude_none=True) if route.config else {},
                )
                for route in router.routable()
                if client is None or client.allows(route.label)
            ]))

        return endpoint

    def stored(self, surface: Surface, method: str) -> Endpoint:
        """``GET`` / ``DELETE /v1/responses/{id}``: a stored response, or forgetting it."""
        if not isinstance(surface, _Keeps):
            raise TypeError(f"{surface.name} declares a stored-response route but keeps no responses")
        responses = surface

        async def endpoint(incoming: Incoming, caller: Caller) -> Reply:
            client = caller.client
            response_id = incoming.path["id"]
            key = responses.key(client.name if client is not None else None, response_id)  # 404 for others
            if incoming.query.get("stream", "").lower() in ("true", "1"):
                raise InvalidRequest("Streaming a stored response is not supported by this proxy.",
                                     param="stream", code="unsupported_value")
            missing = NotFound(f"Response with id '{response_id}' not found.", param="response_id",
                               code="response_not_found")
            if method == "DELETE":
                if not await responses.store.forget(key):
                    raise missing
                return Reply(200, responses.render_deleted(response_id))
            found = await responses.store.fetch_response(key)
            if found is None:
                raise missing
            return Reply(200, found)

        return endpoint
