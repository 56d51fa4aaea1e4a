"""Stored Responses shared beyond one process: a SQLite file for the workers of one machine
(``lip serve --workers``), Redis for every replica (``limits.store: redis://...``).

The next turn of a conversation (``previous_response_id``), or a ``GET /v1/responses/{id}``, may
reach another worker than the one that answered: with the memory store it would be a 404 there.
Same bounds and idle time as the memory store; conversations are kept as canonical JSON
(``lip.core.serial``), read back equal. Every call runs inline (a row read or written, small
transactions); a failing file is logged and reads as "not stored".
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from redis.exceptions import RedisError

from lip.core.model import Message
from lip.core.serial import messages_from_json, messages_to_json
from lip.state import sqlite
from lip.state.redis_client import RedisConnection
from lip.state.responses import IDLE_TTL_SECONDS, MAX_RESPONSES, ImmediateStore, ReadThrough

log = logging.getLogger("lip.responses")
PRUNE_EVERY = 100  # puts between sweeps of expired and surplus entries


class SqliteResponseStore(ImmediateStore):
    def __init__(self, path: Path, *, max_responses: int = MAX_RESPONSES, ttl_seconds: float = IDLE_TTL_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        if max_responses < 1 or ttl_seconds <= 0:
            raise ValueError("max_responses and ttl_seconds must be positive")
        self.max_responses = max_responses
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._puts = 0
        self._db = sqlite.connect(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (id TEXT PRIMARY KEY, messages BLOB NOT NULL, "
                         "response BLOB NOT NULL, used REAL NOT NULL) WITHOUT ROWID")
        self._db.execute("CREATE INDEX IF NOT EXISTS responses_used ON responses (used)")

    def get(self, response_id: str) -> tuple[Message, ...] | None:
        row = self._touch(response_id, "messages")
        return None if row is None else messages_from_json(row)

    def response(self, response_id: str) -> bytes | None:
        return self._touch(response_id, "response")

    def delete(self, response_id: str) -> bool:
        try:
            return self._db.execute("DELETE FROM responses WHERE id = ? AND used >= ?",
                                    (response_id, self._clock() - self.ttl_seconds)).rowcount > 0
        except sqlite3.Error as exc:
            log.warning("response store failed (%s)", exc)
            return False

    def put(self, response_id: str, messages: tuple[Message, ...], response: bytes = b"") -> None:
        try:
            self._db.execute("INSERT OR REPLACE INTO responses (id, messages, response, used) VALUES (?, ?, ?, ?)",
                             (response_id, messages_to_json(messages), response, self._clock()))
            self._puts += 1
            if self._puts % PRUNE_EVERY == 0:
                self._prune()
        except sqlite3.Error as exc:
            log.warning("response %s not stored: the response store failed (%s)", response_id, exc)

    def __len__(self) -> int:
        self._prune()
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def __contains__(self, response_id: object) -> bool:
        return isinstance(response_id, str) and self._touch(response_id, "id") is not None

    def _touch(self, response_id: str, column: str) -> bytes | None:
        """``column`` of a live entry, whose last use becomes now; None if absent or idle too long."""
        now = self._clock()
        try:
            row = self._db.execute(f"UPDATE responses SET used = ? WHERE id = ? AND used >= ? RETURNING {column}",
                                   (now, response_id, now - self.ttl_seconds)).fetchone()
        except sqlite3.Error as exc:
            log.warning("response store failed (%s)", exc)
            return None
        return None if row is None else row[0]

    def _prune(self) -> None:
        now = self._clock()
        self._db.execute("DELETE FROM responses WHERE used < ?", (now - self.ttl_seconds,))
        self._db.execute("DELETE FROM responses WHERE id IN (SELECT id FROM responses ORDER BY used DESC "
                         "LIMIT -1 OFFSET ?)", (self.max_responses,))

    async def close(self) -> None:
        self._db.close()


class RedisResponseStore(ReadThrough):
    """Stored Responses in Redis, shared by every replica: one hash per response (``messages``: the
    conversation as canonical JSON, ``response``: the object as the client got it), expiring
    ``ttl_seconds`` after its last use (each read renews it). A read is one round trip; a put is
    sent in the background and ``settle`` (awaited before the response reaches the client) waits
    for it, so the next turn finds it whichever replica it reaches. How many are kept is Redis's
    memory policy (``maxmemory``), not a count here. An unreachable Redis is logged and reads as
    "not stored"; it never fails the request that is being answered.
    """

    def __init__(self, redis: RedisConnection, *, ttl_seconds: float = IDLE_TTL_SECONDS,
                 prefix: str = "lip:resp:") -> None:
        self._client: Any = redis.client
        self._ttl = max(1, int(ttl_seconds))
        self._prefix = prefix
        self._pending: set[asyncio.Task[None]] = set()

    async def read(self, response_id: str, field: str) -> bytes | None:
        key = self._prefix + response_id
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                found, _ = await pipe.hget(key, field).expire(key, self._ttl, xx=True).execute()
        except (RedisError, OSError) as exc:
            log.warning("response store unreachable (%s): %s reads as not stored", type(exc).__name__, response_id)
            return None
        return cast("bytes | None", found)

    async def forget(self, response_id: str) -> bool:
        try:
            return bool(await self._client.delete(self._prefix + response_id))
        except (RedisError, OSError) as exc:
            log.warning("response store unreachable (%s): %s not deleted", type(exc).__name__, response_id)
            return False

    def put(self, response_id: str, messages: tuple[Message, ...], response: bytes = b"") -> None:
        task = asyncio.get_running_loop().create_task(self._put(response_id, messages_to_json(messages), response))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _put(self, response_id: str, messages: bytes, response: bytes) -> None:
        key = self._prefix + response_id
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                await pipe.hset(key, mapping={"messages": messages, "response": response}).expire(
                    key, self._ttl).execute()
        except (RedisError, OSError) as exc:
            log.warning("response %s not stored: the response store is unreachable (%s)", response_id,
                        type(exc).__name__)

    async def settle(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending)

    async def close(self) -> None:
        """Wait for the puts under way (the client is the state's, closed after every store)."""
        await self.settle()
