"""The SQLite usage store: one file, no set-up; every call runs on one thread of its own.

Several processes (``--workers``) may share the file: it is in WAL mode, writers take
``BEGIN IMMEDIATE`` and wait up to ``busy_timeout`` seconds for each other, and migrations run in
one such transaction so that two processes starting together apply each migration once.
Percentiles are computed from the rows at the needed ranks (window functions), not in bulk.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from lip.core.errors import ConfigError
from lip.usage.records import COLUMNS, UsageQuery, UsageRecord
from lip.usage.sql import (
    AGGREGATES,
    INDEXES,
    PERCENTILES,
    RECORDS_TABLE,
    VERSION_TABLE,
    day_key,
    groups_result,
    percentile,
    record_json,
    select_records,
    store_unavailable,
    summary,
    where,
)

T = TypeVar("T")

# Each migration: (version, statements), applied in order inside one transaction with its version row.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, (
        f"""CREATE TABLE {RECORDS_TABLE} (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            request_id TEXT NOT NULL,
            client TEXT,
            tier TEXT,
            surface TEXT NOT NULL,
            selector TEXT NOT NULL,
            backend TEXT,
            model TEXT,
            upstream_model TEXT,
            stream INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cached_tokens INTEGER NOT NULL,
            estimated INTEGER NOT NULL,
            cost REAL,
            latency_ms REAL NOT NULL,
            ttft_ms REAL,
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
GROUP_KEYS = {"model": "model", "backend": "backend", "client": "client", "day": "CAST(at / 86400 AS INTEGER)"}
ROWS_PER_STATEMENT = 100  # 1,900 parameters: well inside SQLite's limit
_ROW = "(" + ", ".join("?" for _ in COLUMNS) + ")"


@functools.cache
def _insert_many(rows: int) -> str:
    """One INSERT of ``rows`` rows. executemany() would release and retake the GIL for every row,
    and under a busy event loop each retake waits for the switch interval (5 ms): the writer
    thread then falls behind the requests. One statement per 100 rows retakes it once."""
    return f"INSERT INTO {RECORDS_TABLE} ({', '.join(COLUMNS)}) VALUES " + ", ".join(_ROW for _ in range(rows))


def _mark(_: int) -> str:
    return "?"


class SqliteUsageStore:
    """Usage records in a SQLite file (``None``: in memory, for tests)."""

    def __init__(self, path: Path | None, *, url: str, busy_timeout: float = 10.0) -> None:
        self._path = path
        self._url = url
        self._busy_timeout = busy_timeout
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    @property
    def url(self) -> str:
        return self._url

    async def start(self) -> None:
        """Open (creating the file and its folders) and migrate; idempotent."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lip-usage-sqlite")
        try:
            await self._call(self._open)
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise ConfigError([f"usage.store: cannot open {self._url}: {exc}"]) from exc
        except ConfigError:
            await self.close()
            raise

    async def write(self, records: Sequence[UsageRecord]) -> None:
        """Insert the records in one transaction (all or none)."""
        if not records:
            return
        rows = [tuple(getattr(r, c) for c in COLUMNS) for r in records]
        await self._guarded(functools.partial(self._insert, rows))

    async def query(self, q: UsageQuery) -> dict[str, Any]:
        """Records or groups, in the shape ``lip.usage.sql`` describes."""
        return await self._guarded(functools.partial(self._query, q))

    async def close(self) -> None:
        """Close the file and the thread; idempotent."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        executor.shutdown(wait=False)

    async def _guarded(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            await self.start()
        try:
            return await self._call(fn)
        except sqlite3.Error as exc:
            raise store_unavailable(self._url, exc) from exc

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # Everything below runs on the store's thread.

    def _open(self) -> None:
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        target = ":memory:" if self._path is None else str(self._path)
        conn = sqlite3.connect(target, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            self._enable_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            _migrate(conn, self._url)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """WAL mode (kept in the file); switching ignores the busy timeout, so retry while others hold the file."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("usage store is closed")
        return self._conn

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(rows), ROWS_PER_STATEMENT):
                part = rows[start : start + ROWS_PER_STATEMENT]
                conn.execute(_insert_many(len(part)), [value for row in part for value in row])
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _query(self, q: UsageQuery) -> dict[str, Any]:
        conn = self._db()
        if q.group_by is None:
            sql, params = select_records(q, _mark)
            return {"records": [record_json(row) for row in conn.execute(sql, params)]}
        key = GROUP_KEYS[q.group_by]
        conn.execute("BEGIN")  # one snapshot for the aggregates and the percentiles
        try:
            groups = _summaries(conn, q, key)
            totals = _summaries(conn, q, None).get(None) or summary((0, 0, 0, 0, None, 0), (None, None), None)
        finally:
            conn.execute("COMMIT")
        entries = [
            {"key": day_key(k) if q.group_by == "day" else k, **values} for k, values in groups.items()
        ]
        return groups_result(q, entries, totals)


def _migrate(conn: sqlite3.Connection, url: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        current = int(conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {VERSION_TABLE}").fetchone()[0])
        if current > SCHEMA_VERSION:
            raise ConfigError([
                f"usage.store: {url} has schema version {current}, newer than this proxy's {SCHEMA_VERSION}; "
                "upgrade the proxy or point usage.store elsewhere"
            ])
        for version, statements in MIGRATIONS:
            if version > current:
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"INSERT INTO {VERSION_TABLE} (version, applied_at) VALUES (?, ?)", (version, time.time()))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _summaries(conn: sqlite3.Connection, q: UsageQuery, key: str | None) -> dict[Any, dict[str, Any]]:
    """Summary per value of the ``key`` expression (``None``: one summary of everything, under ``None``)."""
    clause, params = where(q, _mark)
    select = f"SELECT {key or 'NULL'} AS k, {AGGREGATES} FROM {RECORDS_TABLE}{clause}"
    rows = conn.execute(select + (" GROUP BY k" if key else ""), params).fetchall()
    latency = _percentiles(conn, q, key, "latency_ms", PERCENTILES)
    ttft = _percentiles(conn, q, key, "ttft_ms", (0.5,))
    return {
        row[0]: summary(row[1:], latency.get(row[0], (None, None)), ttft.get(row[0], (None,))[0])
        for row in rows
    }


def _percentiles(
    conn: sqlite3.Connection, q: UsageQuery, key: str | None, column: str, ps: tuple[float, ...]
) -> dict[Any, tuple[float | None, ...]]:
    """``percentile_cont`` of ``column`` (non-null values) per key: only the rows at the needed ranks are read."""
    clause, params = where(q, _mark, f"{column} IS NOT NULL")
    partition = f"PARTITION BY {key} " if key else ""
    ranks = " OR ".join(f"i = CAST({p!r} * (n - 1) AS INTEGER) OR i = CAST({p!r} * (n - 1) AS INTEGER) + 1" for p in ps)
    sql = (
        f"WITH r AS (SELECT {key or 'NULL'} AS k, {column} AS v, "
        f"ROW_NUMBER() OVER ({partition}ORDER BY {column}) - 1 AS i, COUNT(*) OVER ({partition.strip()}) AS n "
        f"FROM {RECORDS_TABLE}{clause}) SELECT k, n, i, v FROM r WHERE {ranks}"
    )
    counts: dict[Any, int] = {}
    ranked: defaultdict[Any, dict[int, float]] = defaultdict(dict)
    for k, n, i, v in conn.execute(sql, params):
        counts[k] = n
        ranked[k][i] = v
    return {k: tuple(percentile(ranked[k], n, p) for p in ps) for k, n in counts.items()}
