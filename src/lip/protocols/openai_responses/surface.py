"""OpenAI Responses surface (``POST /v1/responses``, ``GET`` / ``DELETE /v1/responses/{id}``): the request
through ``parse``, response objects through ``response``, ``response.*`` events through ``stream``,
errors through ``errors``.

Every backend is reached through the canonical request and event stream; nothing here knows
which one answers. ``previous_response_id`` is served from a ResponseStore owned by the app.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
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

# ---- the store ---------------------------------------------------------------------------------

MAX_RESPONSES = 10_000
IDLE_TTL_SECONDS = 3600.0


@dataclass(slots=True)
class _Entry:
    messages: tuple[Message, ...]
    used: float
    response: bytes  # the response object as the client got it, for GET /v1/responses/{id}


class StoresResponses(Protocol):
    """Where the surface keeps responses: this process (``ResponseStore``), a file the workers of one
    machine share, or Redis, which every replica shares (``shared_responses``)."""

    async def fetch(self, response_id: str) -> tuple[Message, ...] | None:
        """The conversation ending with ``response_id``, or None."""
        ...

    async def fetch_response(self, response_id: str) -> bytes | None: ...

    async def forget(self, response_id: str) -> bool: ...

    def put(self, response_id: str, messages: tuple[Message, ...], response: bytes = b"") -> None:
        """Keep a response (never blocks; ``settle`` waits until it is where every replica reads)."""
        ...

    async def settle(self) -> None: ...


class ImmediateStore:
    """The async face of a store whose every operation is done when it returns (memory, SQLite):
    ``StoresResponses`` over the plain ``get`` / ``response`` / ``delete`` a subclass defines."""

    def get(self, response_id: str) -> tuple[Message, ...] | None:
        raise NotImplementedError

    def response(self, response_id: str) -> bytes | None:
        raise NotImplementedError

    def delete(self, response_id: str) -> bool:
        raise NotImplementedError

    async def fetch(self, response_id: str) -> tuple[Message, ...] | None:
        return self.get(response_id)

    async def fetch_response(self, response_id: str) -> bytes | None:
        return self.response(response_id)

    async def forget(self, response_id: str) -> bool:
        return self.delete(response_id)

    async def settle(self) -> None:
        """Nothing to wait for: a put is done when it returns."""


class ResponseStore(ImmediateStore):
    """Bounded in-memory store of earlier responses, for ``previous_response_id`` and
    ``GET`` / ``DELETE /v1/responses/{id}``.

    Per response id it keeps the whole conversation that response ends (the canonical messages of
    its request without ``instructions``, plus its output as assistant messages), so a next turn
    is that conversation followed by the new input. At most ``max_responses`` entries; the least
    recently used goes first, and an entry not used for ``ttl_seconds`` is gone. Entries share
    their Message objects (immutable) with the turns before them, so a long chain costs one tuple
    of references per turn, not copies. The store lives in one app instance (one process) and is
    empty after a restart; ``lip serve --workers`` uses ``shared_responses.SqliteResponseStore``.
    """

    def __init__(
        self,
        max_responses: int = MAX_RESPONSES,
        ttl_seconds: float = IDLE_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_responses < 1:
            raise ValueError("max_responses must be at least 1")
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.max_responses = max_responses
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first

    def get(self, response_id: str) -> tuple[Message, ...] | None:
        """The conversation ending with ``response_id``, or None (never stored, evicted or expired)."""
        entry = self._entry(response_id)
        return None if entry is None else entry.messages

    def response(self, response_id: str) -> bytes | None:
        """The response object of ``response_id`` (JSON), or None."""
        entry = self._entry(response_id)
        return None if entry is None else entry.response

    def delete(self, response_id: str) -> bool:
        """Forget ``response_id``; False if it was not there."""
        if self._entry(response_id) is None:
            return False
        del self._entries[response_id]
        return True

    def _entry(self, response_id: str) -> _Entry | None:
        entry = self._entries.get(response_id)
        if entry is None:
            return None
        now = self._clock()
        if now - entry.used > self.ttl_seconds:
            del self._entries[response_id]
            return None
        entry.used = now
        self._entries.move_to_end(response_id)
        return entry

    def put(self, response_id: str, messages: tuple[Message, ...], response: bytes = b"") -> None:
        now = self._clock()
        self._expire(now)
        self._entries[response_id] = _Entry(messages, now, response)
        self._entries.move_to_end(response_id)
        while len(self._entries) > self.max_responses:
            self._entries.popitem(last=False)

    def _expire(self, now: float) -> None:
        # Entries are in order of last use, so the expired ones are a prefix.
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if now - oldest.used <= self.ttl_seconds:
                return
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        self._expire(self._clock())
        return len(self._entries)

    def __contains__(self, response_id: object) -> bool:
        return isinstance(response_id, str) and self.get(response_id) is not None


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
