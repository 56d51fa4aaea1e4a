"""OpenAI Responses surface (``POST /v1/responses``, ``GET`` / ``DELETE /v1/responses/{id}``): the request
through ``parse``, response objects through ``response``, ``response.*`` events through ``stream``,
errors through ``errors``.

Every backend is reached through the canonical request and event stream; nothing here knows
which one answers. ``previous_response_id`` is served from the stored Responses of the shared
state (``lip.state.responses``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson

from lip.core.errors import NotFound, ProxyError
from lip.core.model import ChatRequest, ChatResponse, Message, StreamEvent
from lip.protocols.base import Incoming, parse_json
from lip.protocols.openai_responses import errors
from lip.protocols.openai_responses import parse as parse_wire
from lip.protocols.openai_responses import response as response_wire
from lip.protocols.openai_responses.common import instructions_count, new_id, wants_store
from lip.protocols.openai_responses.stream import StreamWriter


class StoresResponses(Protocol):
    """What the surface needs of the stored Responses (``lip.state`` has them: this process, a file
    the workers of one machine share, or Redis, which every replica shares)."""

    async def fetch(self, response_id: str) -> tuple[Message, ...] | None:
        """The conversation ending with ``response_id``, or None."""
        ...

    async def fetch_response(self, response_id: str) -> bytes | None: ...

    async def forget(self, response_id: str) -> bool: ...

    def put(self, response_id: str, messages: tuple[Message, ...], response: bytes = b"") -> None:
        """Keep a response (never blocks; ``settle`` waits until it is where every replica reads)."""
        ...

    async def settle(self) -> None: ...


def _history(previous: str | None, found: tuple[Message, ...] | None) -> tuple[Message, ...]:
    if previous is None:
        return ()
    if found is None:
        raise NotFound(f"Previous response with id '{previous}' not found.",
                       code="previous_response_not_found", param="previous_response_id")
    return found


# ---- the surface -------------------------------------------------------------------------------


class OpenAIResponses:
    """``POST /v1/responses``."""

    name = "openai-responses"
    stream_media_type = "text/event-stream"

    def __init__(self, store: StoresResponses) -> None:
        self.store = store

    @staticmethod
    def key(client: str | None, response_id: str) -> str:
        """Where ``client``'s response ``response_id`` is stored: each client has its own ids, so another
        client's id (to read, continue or delete) is simply not found."""
        return response_id if client is None else f"{len(client)}:{client}/{response_id}"

    def parse(self, incoming: Incoming) -> ChatRequest:
        """With a store of this process or machine (read at once); the server uses ``parse_async``."""
        body = parse_json(incoming.body)
        previous = parse_wire.previous_response_id(body)
        get = getattr(self.store, "get", None)
        found = get(self.key(incoming.client, previous)) if previous is not None and get is not None else None
        return parse_wire.parse_request(body, _history(previous, found))

    async def parse_async(self, incoming: Incoming) -> ChatRequest:
        body = parse_json(incoming.body)
        previous = parse_wire.previous_response_id(body)
        found = await self.store.fetch(self.key(incoming.client, previous)) if previous is not None else None
        return parse_wire.parse_request(body, _history(previous, found))

    async def settle(self) -> None:
        """Until the responses rendered so far are stored where the next turn may look (another replica)."""
        await self.store.settle()

    def render_response(self, response: ChatResponse, request: ChatRequest, incoming: Incoming) -> bytes:
        status, details = response_wire.status_for(response.finish_reason)
        if status == "failed":
            raise errors.unfinished(response.finish_reason)
        response_id = new_id("resp")
        output = response_wire.output_items(response, status, request.tools)
        body = orjson.dumps(response_wire.response_object(
            request, response_id=response_id, created_at=response.created or int(time.time()),
            model=response.model or request.model, status=status, output=output, usage=response.usage,
            incomplete_details=details,
        ))
        self._remember(self.key(incoming.client, response_id), request, output, body)
        return body

    def render_stream(
        self, events: AsyncIterator[StreamEvent], request: ChatRequest, incoming: Incoming
    ) -> AsyncIterator[bytes]:
        return self._stream(events, request, incoming.client)

    def render_error(self, error: ProxyError) -> tuple[int, bytes]:
        return errors.render_error(error)

    @staticmethod
    def render_deleted(response_id: str) -> bytes:
        """The answer to ``DELETE /v1/responses/{id}``."""
        return orjson.dumps({"id": response_id, "object": "response.deleted", "deleted": True})

    def _remember(self, key: str, request: ChatRequest, output: list[dict[str, Any]], response: bytes) -> None:
        """Store the conversation this response ends and the response, unless the request said ``store: false``."""
        if wants_store(request):
            history = request.messages[instructions_count(request):]
            self.store.put(key, history + parse_wire.output_messages(output), response)

    async def _stream(self, events: AsyncIterator[StreamEvent], request: ChatRequest,
                      client: str | None) -> AsyncIterator[bytes]:
        """``response.*`` events; a failure mid-stream ends with ``response.failed`` and ``error``."""
        state = StreamWriter(request)
        try:
            async for event in events:
                for chunk in state.feed(event):
                    yield chunk
        except ProxyError as error:
            for chunk in state.fail(error):
                yield chunk
            return
        status, details = response_wire.status_for(state.finish)
        if status == "failed":
            for chunk in state.fail(errors.unfinished(state.finish)):
                yield chunk
            return
        for chunk in state.close_all(response_wire.item_status(status)):
            yield chunk
        response = state.final(status, details)
        self._remember(self.key(client, state.id), request, state.items, orjson.dumps(response))
        await self.store.settle()
        yield state.terminal(status, response)
