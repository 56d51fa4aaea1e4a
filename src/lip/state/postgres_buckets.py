"""Rate-limit buckets every replica shares, in a PostgreSQL table (``limits.store: postgresql://...``).

An admission is one transaction: the bucket's row is locked (``SELECT ... FOR UPDATE``; a bucket
not in the table yet is inserted full by an upsert that locks the row another replica may have
inserted meanwhile), its levels are advanced by the arithmetic of every limiter
(``buckets.advance``: ``take``, ``refill``) at the database server's clock, and written back. That
is four round trips (BEGIN, lock and read, write, COMMIT), the row locked for the last three:
admissions to one bucket are serialised across replicas, admissions to others never wait for
them. A reconciliation (``adjust``) is the same transaction. When the database cannot be reached,
``on_store_error`` decides, as for Redis (``buckets.FailurePolicy``).
"""

from __future__ import annotations

import logging

from lip.limits.ratelimit import Decision, Quota, decision
from lip.state.buckets import FailurePolicy, advance
from lip.state.postgres_client import NOW, Connection, LockedRow, PostgresConnection

log = logging.getLogger("lip.limits")

TABLE = "lip_state_buckets"
SCHEMA = (f"CREATE TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, requests DOUBLE PRECISION NOT NULL, "
          "tokens DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL)",)
ROW = LockedRow(TABLE, "requests, tokens, updated_at", f"$2, $3, {NOW}")  # a new bucket is full
WRITE = f"UPDATE {TABLE} SET requests = $2, tokens = $3, updated_at = $4 WHERE key = $1"


class PostgresRateLimiter:
    """Buckets in PostgreSQL, shared by every worker and replica that names the same database."""

    def __init__(self, pg: PostgresConnection, *, on_error: str = "allow") -> None:
        pg.require(*SCHEMA)
        self._pg = pg
        self._policy = FailurePolicy(pg.shown, on_error)

    @property
    def uncounted(self) -> int:
        """Admissions let through while the database could not count them (``on_store_error: allow``)."""
        return self._policy.uncounted

    async def _update(self, key: str, quota: Quota, want: int, adjust: bool) -> tuple[bool, float, float, float]:
        async def transaction(conn: Connection) -> tuple[bool, float, float, float]:
            async with conn.transaction():
                full = (float(quota.requests_per_minute or 0), float(quota.tokens_per_minute or 0))
                requests, tokens, at, now = await ROW.lock(conn, key, *full)
                allowed, r, k, wait = advance((requests, tokens, at), now, quota, want, adjust)
                await conn.execute(WRITE, key, r, k, now)
            return allowed, r, k, wait

        return await self._pg.run(transaction)

    async def acquire(self, key: str, quota: Quota, tokens: int) -> Decision:
        try:
            allowed, r, k, wait = await self._update(key, quota, tokens, adjust=False)
        except self._pg.errors as exc:
            return self._policy.handle(quota, exc)
        return decision(allowed, wait, quota, r, k)

    async def adjust(self, key: str, quota: Quota, tokens: int) -> None:
        if quota.tokens_per_minute is None or not tokens:
            return
        try:
            await self._update(key, quota, tokens, adjust=True)
        except self._pg.errors as exc:
            log.debug("rate-limit adjustment of %s lost: %s", key, type(exc).__name__)

    async def close(self) -> None:
        """Nothing of its own to close: the pool is the state's, closed after every store."""
