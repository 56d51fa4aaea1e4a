"""Command sessions every replica shares, in a PostgreSQL table (``limits.store: postgresql://...``).

The rows of ``sessions.SqliteSessionStore`` in a database every replica reaches: only sessions a
command has touched have a row, so a request without commands costs one indexed read (one round
trip), and only those conversations are written to (their settings, and the counts ``!/usage``
shows, which start at the first command). Idle time is the database server's clock; rows idle
longer are not read and are deleted now and then. A tally (usage of a forwarded request) is sent
in the background and never blocks. An unreachable database never fails a request: the session
then starts empty, and settings are not kept (logged).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson

from lip.core.model import Usage
from lip.state.postgres_client import NOW, Background, Connection, PostgresConnection
from lip.state.sessions import ROW_COLUMNS, KnownRows, Session, from_row

log = logging.getLogger("lip.commands")

TABLE = "lip_state_sessions"
SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (id TEXT PRIMARY KEY, model TEXT, oneoff TEXT, parameters TEXT NOT NULL, "
    "requests BIGINT NOT NULL, input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL, "
    "seen DOUBLE PRECISION NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_seen ON {TABLE} (seen)",
)
LOAD = f"SELECT {ROW_COLUMNS} FROM {TABLE} WHERE id = $1 AND seen >= {NOW} - $2"
SAVE = (f"INSERT INTO {TABLE} (id, model, oneoff, parameters, requests, input_tokens, output_tokens, seen) "
        f"VALUES ($1, $2, $3, $4, $5, $6, $7, {NOW}) ON CONFLICT (id) DO UPDATE SET model = excluded.model, "
        "oneoff = excluded.oneoff, parameters = excluded.parameters, seen = excluded.seen")
TALLY = (f"UPDATE {TABLE} SET requests = requests + 1, input_tokens = input_tokens + $2, "
         f"output_tokens = output_tokens + $3, seen = {NOW} WHERE id = $1")
PRUNE = f"DELETE FROM {TABLE} WHERE seen < {NOW} - $1"
PRUNE_EVERY = 100  # saves between sweeps of idle sessions


class PostgresSessionStore:
    def __init__(self, pg: PostgresConnection, *, idle: float = 24 * 3600) -> None:
        pg.require(*SCHEMA)
        self._pg = pg
        self._idle = float(idle)
        self._rows = KnownRows()
        self._saves = 0
        self._background = Background()

    async def load(self, session_id: str, *, fresh: bool = False) -> Session:
        try:
            row: Sequence[Any] | None = await self._pg.run(lambda conn: conn.fetchrow(LOAD, session_id, self._idle))
        except self._pg.errors as exc:
            log.warning("session store unreachable (%s); this request starts a fresh session", type(exc).__name__)
            return Session()
        if row is None:
            self._rows.discard(session_id)
            return Session()
        self._rows.add(session_id)
        return from_row(row)

    async def save(self, session_id: str, session: Session) -> bool:
        self._saves += 1
        prune = self._saves % PRUNE_EVERY == 0

        async def write(conn: Connection) -> None:
            await conn.execute(SAVE, session_id, session.model, session.oneoff,
                               orjson.dumps(session.parameters).decode(), session.requests, session.input_tokens,
                               session.output_tokens)
            if prune:
                await conn.execute(PRUNE, self._idle)

        try:
            await self._pg.run(write)
        except self._pg.errors as exc:
            log.warning("session settings not kept: the session store is unreachable (%s)", type(exc).__name__)
            return False
        self._rows.add(session_id)
        return True

    def tally(self, session_id: str, usage: Usage | None) -> None:
        if session_id not in self._rows:
            return  # no command has touched this conversation: nothing to count it in
        self._background.spawn(self._tally(session_id, usage))

    async def _tally(self, session_id: str, usage: Usage | None) -> None:
        counts = (usage.input_tokens, usage.output_tokens) if usage else (0, 0)
        try:
            await self._pg.run(lambda conn: conn.execute(TALLY, session_id, *counts))
        except self._pg.errors as exc:
            log.debug("session usage not counted (%s)", type(exc).__name__)

    async def close(self) -> None:
        """Wait for the tallies under way (the pool is the state's, closed after every store)."""
        await self._background.settle()
