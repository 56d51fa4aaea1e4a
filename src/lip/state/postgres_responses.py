"""Stored Responses every replica shares, in a PostgreSQL table (``limits.store: postgresql://...``).

The rows of ``shared_responses.SqliteResponseStore`` (the conversation as canonical JSON,
``lip.core.serial``, and the response object as the client got it) with the same bounds: an entry
not used for ``ttl_seconds`` (by the database server's clock) reads as gone, each read renews it,
and every ``PRUNE_EVERY`` puts the expired entries and those beyond ``max_responses`` are deleted.
The face is the async one, as for Redis: a read is one round trip; a put is sent in the background
and ``settle`` (awaited before the response reaches the client) waits for it, so the next turn finds
it whichever replica it reaches. An unreachable database is logged and reads as "not stored"; it
never fails the request that is being answered.
"""

from __future__ import annotations

import logging

from lip.core.model import Message
from lip.core.serial import messages_to_json
from lip.state.postgres_client import NOW, Background, Connection, PostgresConnection
from lip.state.responses import IDLE_TTL_SECONDS, MAX_RESPONSES, ReadThrough
from lip.state.shared_responses import PRUNE_EVERY

log = logging.getLogger("lip.responses")

TABLE = "lip_state_responses"
SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (id TEXT PRIMARY KEY, messages BYTEA NOT NULL, response BYTEA NOT NULL, "
    "used DOUBLE PRECISION NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_used ON {TABLE} (used)",
)
PUT = (f"INSERT INTO {TABLE} (id, messages, response, used) VALUES ($1, $2, $3, {NOW}) ON CONFLICT (id) "
       "DO UPDATE SET messages = excluded.messages, response = excluded.response, used = excluded.used")
DELETE = f"DELETE FROM {TABLE} WHERE id = $1 AND used >= {NOW} - $2 RETURNING true"
PRUNE = (f"DELETE FROM {TABLE} WHERE used < {NOW} - $1",
         f"DELETE FROM {TABLE} WHERE id IN (SELECT id FROM {TABLE} ORDER BY used DESC OFFSET $1)")


def _touch(column: str) -> str:
    """``column`` of a live entry, whose last use becomes now (no row: absent or idle too long)."""
    return f"UPDATE {TABLE} SET used = {NOW} WHERE id = $1 AND used >= {NOW} - $2 RETURNING {column}"


class PostgresResponseStore(ReadThrough):
    def __init__(self, pg: PostgresConnection, *, max_responses: int = MAX_RESPONSES,
                 ttl_seconds: float = IDLE_TTL_SECONDS) -> None:
        if max_responses < 1 or ttl_seconds <= 0:
            raise ValueError("max_responses and ttl_seconds must be positive")
        pg.require(*SCHEMA)
        self._pg = pg
        self.max_responses = max_responses
        self.ttl_seconds = float(ttl_seconds)
        self._puts = 0
        self._background = Background()

    async def read(self, response_id: str, field: str) -> bytes | None:
        try:
            found: bytes | None = await self._pg.run(
                lambda conn: conn.fetchval(_touch(field), response_id, self.ttl_seconds))
        except self._pg.errors as exc:
            log.warning("response store unreachable (%s): %s reads as not stored", type(exc).__name__, response_id)
            return None
        return found

    async def forget(self, response_id: str) -> bool:
        try:
            return bool(await self._pg.run(lambda conn: conn.fetchval(DELETE, response_id, self.ttl_seconds)))
        except self._pg.errors as exc:
            log.warning("response store unreachable (%s): %s not deleted", type(exc).__name__, response_id)
            return False

    def put(self, response_id: str, messages: tuple[Message, ...], response: bytes = b"") -> None:
        self._puts += 1
        self._background.spawn(self._put(response_id, messages_to_json(messages), response,
                                         prune=self._puts % PRUNE_EVERY == 0))

    async def _put(self, response_id: str, messages: bytes, response: bytes, *, prune: bool) -> None:
        async def write(conn: Connection) -> None:
            await conn.execute(PUT, response_id, messages, response)
            if prune:
                await conn.execute(PRUNE[0], self.ttl_seconds)
                await conn.execute(PRUNE[1], self.max_responses)

        try:
            await self._pg.run(write)
        except self._pg.errors as exc:
            log.warning("response %s not stored: the response store is unreachable (%s)", response_id,
                        type(exc).__name__)

    async def settle(self) -> None:
        await self._background.settle()

    async def close(self) -> None:
        """Wait for the puts under way (the pool is the state's, closed after every store)."""
        await self.settle()
