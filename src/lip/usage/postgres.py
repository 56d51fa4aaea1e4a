"""The PostgreSQL usage store (asyncpg): one database for several replicas of the proxy.

Writes use COPY, one transaction a batch. Migrations run in one transaction under an advisory
lock, so replicas starting together apply each once. Percentiles are ``percentile_cont``.
asyncpg is imported when the store starts and typed by the small protocols below (it ships no
type information of its own).
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, cast

from lip.core.errors import ConfigError
from lip.usage.records import COLUMNS, UsageQuery, UsageRecord
from lip.usage.sql import (
    AGGREGATES,
    INDEXES,
    RECORDS_TABLE,
    VERSION_TABLE,
    day_key,
    groups_result,
    record_json,
    select_records,
    store_unavailable,
    summary,
    where,
)

MIGRATION_LOCK = 0x6C69_7075_7361_6765  # "lipusage": the advisory lock that serialises migrations
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, (
        f"""CREATE TABLE {RECORDS_TABLE} (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at DOUBLE PRECISION NOT NULL,
            request_id TEXT NOT NULL,
            client TEXT,
            tier TEXT,
            surface TEXT NOT NULL,
            selector TEXT NOT NULL,
            backend TEXT,
            model TEXT,
            upstream_model TEXT,
            stream BOOLEAN NOT NULL,
            input_tokens BIGINT NOT NULL,
            output_tokens BIGINT NOT NULL,
            cached_tokens BIGINT NOT NULL,
            estimated BOOLEAN NOT NULL,
            cost DOUBLE PRECISION,
            latency_ms DOUBLE PRECISION NOT NULL,
            ttft_ms DOUBLE PRECISION,
            status INTEGER NOT NULL,
            error_code TEXT
        )""",
        *INDEXES,
    )),
    (2, (f"ALTER TABLE {RECORDS_TABLE} ADD COLUMN dropped TEXT",)),  # x-lip-dropped (wire/portable.py)
    (3, (f"ALTER TABLE {RECORDS_TABLE} ADD COLUMN continued_from TEXT",)),  # mid-stream continuations
    (4, (f"ALTER TABLE {RECORDS_TABLE} ADD COLUMN replica TEXT",)),  # which replica served the request
)  # fmt: skip
SCHEMA_VERSION = MIGRATIONS[-1][0]
GROUP_KEYS = {"model": "model", "backend": "backend", "client": "client", "day": "floor(at / 86400)::bigint"}
PG_AGGREGATES = (
    AGGREGATES.replace("SUM(input_tokens)", "SUM(input_tokens)::bigint")
    .replace("SUM(output_tokens)", "SUM(output_tokens)::bigint")
    .replace("SUM(cached_tokens)", "SUM(cached_tokens)::bigint")
    + ", percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)"
    + ", percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)"
    + ", percentile_cont(0.5) WITHIN GROUP (ORDER BY ttft_ms)"
)


class _Connection(Protocol):
    async def execute(self, query: str, *args: object) -> str: ...
    async def fetch(self, query: str, *args: object) -> list[Sequence[Any]]: ...
    async def fetchval(self, query: str, *args: object) -> Any: ...
    async def copy_records_to_table(
        self, table_name: str, *, records: Sequence[tuple[Any, ...]], columns: Sequence[str]
    ) -> str: ...
    def transaction(self) -> AbstractAsyncContextManager[Any]: ...


class _Pool(Protocol):
    def acquire(self) -> AbstractAsyncContextManager[_Connection]: ...
    async def close(self) -> None: ...


class _Driver(Protocol):
    PostgresError: type[Exception]
    InterfaceError: type[Exception]

    async def create_pool(self, dsn: str, *, min_size: int, max_size: int, command_timeout: float) -> _Pool: ...


def _mark(n: int) -> str:
    return f"${n}"


class PostgresUsageStore:
    """Usage records in PostgreSQL; ``dsn`` is the ``postgresql://`` URL, ``url`` its redacted form."""

    def __init__(self, dsn: str, *, url: str, pool_size: int = 4, command_timeout: float = 30.0) -> None:
        self._dsn = dsn
        self._url = url
        self._pool_size = pool_size
        self._command_timeout = command_timeout
        self._pool: _Pool | None = None
        self._errors: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError)

    @property
    def url(self) -> str:
        return self._url

    async def start(self) -> None:
        """Connect and migrate; idempotent. Failing to connect is a ConfigError naming the (redacted) URL."""
        if self._pool is not None:
            return
        driver = cast(_Driver, importlib.import_module("asyncpg"))
        self._errors = (driver.PostgresError, driver.InterfaceError, OSError, asyncio.TimeoutError)
        try:
            # min_size=0: no background task keeps a floor of connections, so an outage is not a
            # traceback in the log every few seconds (asyncpg's "Failed to restore the pool connection
            # floor"); the recorder says once that the store is unreachable, and once that it is back.
            pool = await driver.create_pool(
                self._dsn, min_size=0, max_size=self._pool_size, command_timeout=self._command_timeout
            )
        except (*self._errors, ValueError) as exc:
            raise ConfigError([f"usage.store: cannot connect to {self._url}: {exc}"]) from exc
        connected = False  # the pool keeps no floor: the first connection is made here
        try:
            async with pool.acquire() as conn:
                connected = True
                await _migrate(conn, self._url)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, self._errors):
                what = "prepare" if connected else "connect to"
                raise ConfigError([f"usage.store: cannot {what} {self._url}: {exc}"]) from exc
            raise
        self._pool = pool

    async def write(self, records: Sequence[UsageRecord]) -> None:
        """Insert the records in one transaction (all or none)."""
        if not records:
            return
        rows = [tuple(getattr(r, c) for c in COLUMNS) for r in records]
        pool = await self._started()
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.copy_records_to_table(RECORDS_TABLE, records=rows, columns=COLUMNS)
        except self._errors as exc:
            raise store_unavailable(self._url, exc) from exc

    async def query(self, q: UsageQuery) -> dict[str, Any]:
        """Records or groups, in the shape ``lip.usage.sql`` describes."""
        pool = await self._started()
        try:
            async with pool.acquire() as conn:
                if q.group_by is None:
                    sql, params = select_records(q, _mark)
                    return {"records": [record_json(tuple(row)) for row in await conn.fetch(sql, *params)]}
                async with conn.transaction():  # one snapshot for groups and totals
                    return await _groups(conn, q)
        except self._errors as exc:
            raise store_unavailable(self._url, exc) from exc

    async def close(self) -> None:
        """Close the pool; idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _started(self) -> _Pool:
        if self._pool is None:
            await self.start()
        assert self._pool is not None
        return self._pool


async def _migrate(conn: _Connection, url: str) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
            "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
        )
        current = int(await conn.fetchval(f"SELECT COALESCE(MAX(version), 0) FROM {VERSION_TABLE}"))
        if current > SCHEMA_VERSION:
            raise ConfigError([
                f"usage.store: {url} has schema version {current}, newer than this proxy's {SCHEMA_VERSION}; "
                "upgrade the proxy or point usage.store elsewhere"
            ])
        for version, statements in MIGRATIONS:
            if version > current:
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute(
                    f"INSERT INTO {VERSION_TABLE} (version, applied_at) VALUES ($1, $2)", version, time.time()
                )


async def _groups(conn: _Connection, q: UsageQuery) -> dict[str, Any]:
    assert q.group_by is not None
    clause, params = where(q, _mark)
    key = GROUP_KEYS[q.group_by]
    grouped = await conn.fetch(f"SELECT {key} AS k, {PG_AGGREGATES} FROM {RECORDS_TABLE}{clause} GROUP BY 1", *params)
    total = (await conn.fetch(f"SELECT NULL, {PG_AGGREGATES} FROM {RECORDS_TABLE}{clause}", *params))[0]
    entries = [
        {"key": day_key(row[0]) if q.group_by == "day" else row[0], **_summary(tuple(row))} for row in grouped
    ]
    return groups_result(q, entries, _summary(tuple(total)))


def _summary(row: tuple[Any, ...]) -> dict[str, Any]:
    return summary(row[1:7], (row[7], row[8]), row[9])
