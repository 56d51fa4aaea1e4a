"""Circuit breakers every replica shares, in a PostgreSQL table (``limits.store: postgresql://...``).

The rules are those of the in-process breakers (``lip.routing.breaker``: ``permit``,
``record_failure``), applied to the breaker's row in one transaction (``SELECT ... FOR UPDATE``)
at the database server's clock, so exactly one replica claims the half-open probe. What this
process sees of them (a healthy route asked about at most once a second, metrics) is
``SharedBreakers``, as for Redis. A breaker whose last failure is ``FORGET_AFTER`` seconds old is
forgotten (Redis lets its key expire after as long); a success deletes the row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from lip.routing.breaker import BreakerState, permit, record_failure
from lip.state.breakers import SharedBreakers
from lip.state.postgres_client import NOW, Connection, LockedRow, PostgresConnection

FORGET_AFTER = 600.0
TABLE = "lip_state_breakers"
SCHEMA = (f"CREATE TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, failures INTEGER NOT NULL, "
          "open_until DOUBLE PRECISION NOT NULL, probe_since DOUBLE PRECISION, failed_at DOUBLE PRECISION NOT NULL)",)
ROW = LockedRow(TABLE, "failures, open_until, probe_since, failed_at", f"0, 0, NULL, {NOW}")
CLAIM = f"UPDATE {TABLE} SET probe_since = $2 WHERE key = $1"
WRITE = f"UPDATE {TABLE} SET failures = $2, open_until = $3, probe_since = $4, failed_at = $5 WHERE key = $1"
CLEAR = f"DELETE FROM {TABLE} WHERE key = $1"


def _state(row: Sequence[Any] | None) -> tuple[BreakerState | None, float]:
    """The breaker of a locked row (None: none, or forgotten) and the server's time."""
    if row is None:
        return None, 0.0
    failures, open_until, probe_since, failed_at, now = row
    return (BreakerState(failures, open_until, probe_since) if now - failed_at < FORGET_AFTER else None), now


class PostgresBreakers(SharedBreakers):
    def __init__(self, pg: PostgresConnection, *, failures: int = 5, cooldown: float = 30.0, fresh: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(pg.guard, pg.errors, fresh=fresh, clock=clock)
        pg.require(*SCHEMA)
        self._pg = pg
        self._threshold = failures
        self._cooldown = float(cooldown)

    async def _ask(self, key: str) -> float | None:
        async def transaction(conn: Connection) -> float | None:
            async with conn.transaction():
                state, now = _state(await conn.fetchrow(ROW.select, key))  # no row: no failure, and none made
                if state is None or state.failures < self._threshold:
                    return -float(state.failures) if state else 0.0
                answer = permit(state, now, self._threshold, self._cooldown)
                if answer.probe:
                    await conn.execute(CLAIM, key, state.probe_since)
                    return None
                return answer.wait

        return await self._pg.run(transaction)

    async def _fail(self, key: str) -> float:
        async def transaction(conn: Connection) -> float:
            async with conn.transaction():
                state, now = _state(await ROW.lock(conn, key))
                state = state or BreakerState()
                record_failure(state, now, self._threshold, self._cooldown)
                await conn.execute(WRITE, key, state.failures, state.open_until, state.probe_since, now)
            return max(0.0, state.open_until - now) if state.failures >= self._threshold else 0.0

        return await self._pg.run(transaction)

    async def _clear(self, key: str) -> None:
        await self._pg.run(lambda conn: conn.execute(CLEAR, key))
