"""The one asyncpg pool of a ``postgresql://`` shared-state URL: every PostgreSQL store (buckets,
breakers, sessions, stored Responses) runs its statements through it.

The pool is made here (at the first statement or the start-up warm-up) and closed here, after the
stores that use it; a statement after that fails as if the database were down (no new pool opens).
On opening, the tables the stores declared (``require``) are created if absent, in one transaction
under an advisory lock, so replicas starting together do not race. With the pool comes the one
``FailFast`` of the URL: a hung database is waited for once, then skipped for a while by every
store. asyncpg ships no type information: it is imported when the first store of such a URL is
made and typed by the small protocols below (as ``lip.usage.postgres``).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar, cast

from lip.core.guard import FailFast
from lip.state.urls import display

T = TypeVar("T")
TIMEOUT = 1.0  # seconds to connect or to wait for an answer: a request never waits long for shared state
POOL_SIZE = 8
SCHEMA_LOCK = 0x6C69_7073_7461_7465  # "lipstate": the advisory lock that serialises table creation
APPLICATION = "lip-state"  # application_name of the pool's connections (pg_stat_activity)
# The database server's clock in seconds (``clock_timestamp``: the moment, not the transaction's start):
# replicas whose own clocks disagree measure every refill and idle time alike.
NOW = "extract(epoch FROM clock_timestamp())::double precision"


class Connection(Protocol):
    async def execute(self, query: str, *args: object) -> str: ...
    async def fetchrow(self, query: str, *args: object) -> Sequence[Any] | None: ...
    async def fetchval(self, query: str, *args: object) -> Any: ...
    def transaction(self) -> AbstractAsyncContextManager[Any]: ...


class _Pool(Protocol):
    def acquire(self, *, timeout: float | None = None) -> AbstractAsyncContextManager[Connection]: ...
    async def close(self) -> None: ...
    def terminate(self) -> None: ...


class _Driver(Protocol):
    PostgresError: type[Exception]
    InterfaceError: type[Exception]
    InternalClientError: type[Exception]

    async def create_pool(self, dsn: str, *, min_size: int, max_size: int, command_timeout: float,
                          timeout: float, server_settings: dict[str, str]) -> _Pool: ...  # noqa: ASYNC109 (asyncpg's)


class PostgresConnection:
    """The pool (not connected until its first statement) and the guard the stores of ``url`` share."""

    def __init__(self, url: str, *, timeout: float = TIMEOUT, pool_size: int = POOL_SIZE,
                 guard: FailFast | None = None) -> None:
        self._driver = cast(_Driver, importlib.import_module("asyncpg"))
        # InternalClientError: a connection the server cut while idle in the pool can fail its next
        # statement so ("another operation is in progress") before asyncpg notices it is closed
        self.errors: tuple[type[Exception], ...] = (
            self._driver.PostgresError, self._driver.InterfaceError, self._driver.InternalClientError, OSError,
            TimeoutError)
        self.guard = guard or FailFast()
        self.shown = display(url)  # the URL without its password, for logs and readiness
        self._dsn = url
        self._timeout = timeout
        self._pool_size = pool_size
        self._schema: list[str] = []
        self._pool: _Pool | None = None
        self._opening: asyncio.Lock | None = None
        self._closed = False

    @property
    def open(self) -> bool:
        return self._pool is not None

    def require(self, *statements: str) -> None:
        """Statements (``CREATE TABLE IF NOT EXISTS ...``) run once when the pool opens."""
        self._schema.extend(statements)

    async def run(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """``work`` on a connection of the pool, through the guard (StoreDown at once while it is open)."""
        return await self.guard.run(lambda: self._on_connection(work), self.errors)

    async def ping(self) -> None:
        """Connect (and create the tables) for the start-up warm-up and readiness; raises when down."""
        await self._on_connection(lambda conn: conn.fetchval("SELECT 1"))

    async def _on_connection(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        pool = self._pool or await self._open()
        async with pool.acquire(timeout=self._timeout) as conn:
            return await work(conn)

    async def _open(self) -> _Pool:
        self._opening = self._opening or asyncio.Lock()
        async with self._opening:
            if self._pool is not None:
                return self._pool
            if self._closed:
                raise ConnectionError(f"the pool of {self.shown} is closed")
            # min_size=0: no background task keeps a floor of connections (no traceback every few seconds
            # while the database is down); connections are made as requests need them.
            pool = await self._driver.create_pool(
                self._dsn, min_size=0, max_size=self._pool_size, command_timeout=self._timeout,
                timeout=self._timeout, server_settings={"application_name": APPLICATION})
            try:
                async with pool.acquire(timeout=self._timeout) as conn, conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
                    for statement in self._schema:
                        await conn.execute(statement)
            except BaseException:
                pool.terminate()
                raise
            self._pool = pool
            return pool

    async def close(self) -> None:
        """Close the pool (idempotent); connections still busy after a few seconds are cut."""
        pool, self._pool, self._closed = self._pool, None, True
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), 5.0)
        except TimeoutError:
            pool.terminate()


class LockedRow:
    """The row of a key in ``table`` locked for the rest of a transaction, with ``columns`` and the server's
    time: ``SELECT ... FOR UPDATE``; when there is none yet, an upsert inserts it (``initial``: SQL of its
    values, ``$2``... the arguments after the key) or locks the one another replica inserted meanwhile."""

    def __init__(self, table: str, columns: str, initial: str) -> None:
        self.select = f"SELECT {columns}, {NOW} FROM {table} WHERE key = $1 FOR UPDATE"
        self._insert = (f"INSERT INTO {table} AS t (key, {columns}) VALUES ($1, {initial}) "
                        f"ON CONFLICT (key) DO UPDATE SET key = t.key RETURNING {columns}, {NOW}")

    async def lock(self, conn: Connection, key: str, *initial: object) -> Sequence[Any]:
        row = await conn.fetchrow(self.select, key)
        if row is None:
            row = await conn.fetchrow(self._insert, key, *initial)
        assert row is not None  # an upsert with RETURNING returns its row
        return row


class Background:
    """Statements a store sends without the request waiting for them (a put, a tally); ``settle``
    waits for those under way (before an answer that needs them stored, and at ``close``)."""

    def __init__(self) -> None:
        self._pending: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def settle(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending)
