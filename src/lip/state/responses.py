"""Stored Responses of this process (``ResponseStore``), and the face every Responses store shows
(``StoredResponses``): what the Responses surface reads for ``previous_response_id`` and
``GET`` / ``DELETE /v1/responses/{id}`` (its ``StoresResponses``), and ``close``. A store keeps
canonical messages and the response object's bytes; it knows nothing of the protocol. The shared
ones are in ``lip.state.shared_responses``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from lip.core.model import Message
from lip.core.serial import messages_from_json

MAX_RESPONSES = 10_000
IDLE_TTL_SECONDS = 3600.0


@dataclass(slots=True)
class _Entry:
    messages: tuple[Message, ...]
    used: float
    response: bytes  # the response object as the client got it, for GET /v1/responses/{id}


class StoredResponses(Protocol):
    """Where the Responses surface keeps responses: this process (``ResponseStore``), a file the workers
    of one machine share, or Redis, which every replica shares (``lip.state.shared_responses``)."""

    async def fetch(self, response_id: str) -> tuple[Message, ...] | None:
        """The conversation ending with ``response_id``, or None."""
        ...

    async def fetch_response(self, response_id: str) -> bytes | None: ...

    async def forget(self, response_id: str) -> bool: ...

    def put(self, response_id: str, messages: tuple[Message, ...], response: bytes = b"") -> None:
        """Keep a response (never blocks; ``settle`` waits until it is where every replica reads)."""
        ...

    async def settle(self) -> None: ...

    async def close(self) -> None:
        """Wait for what is being stored, then let go of the store (the shared state's ``close``)."""
        ...


class ImmediateStore:
    """The async face of a store whose every operation is done when it returns (memory, SQLite):
    ``StoredResponses`` over the plain ``get`` / ``response`` / ``delete`` a subclass defines."""

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

    async def close(self) -> None:
        """Nothing to let go of (a subclass with a file closes it)."""


class ReadThrough:
    """``fetch`` and ``fetch_response`` of a store on a server (Redis, PostgreSQL) over the one read a
    subclass defines: a field of a live entry, renewing it (None: not stored, expired or unreachable)."""

    async def read(self, response_id: str, field: str) -> bytes | None:
        raise NotImplementedError

    async def fetch(self, response_id: str) -> tuple[Message, ...] | None:
        found = await self.read(response_id, "messages")
        return None if found is None else messages_from_json(found)

    async def fetch_response(self, response_id: str) -> bytes | None:
        return await self.read(response_id, "response")


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
