"""The SQLite usage store on a temporary file: writes, filters, groupings, schema versions, URLs."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from lip.core.errors import ConfigError, ProxyError
from lip.usage.postgres import PostgresUsageStore
from lip.usage.records import UsageQuery
from lip.usage.sqlite import MIGRATIONS, SCHEMA_VERSION, SqliteUsageStore
from lip.usage.store import UsageStore, open_store, redact
from unit.usage.usage_cases import DAY0, QUERIES, expected, make, sample


async def _query(store: UsageStore, q: UsageQuery) -> dict[str, Any]:
    try:
        return await store.query(q)
    finally:
        await store.close()


def query(url: str, q: UsageQuery) -> dict[str, Any]:
    return asyncio.run(_query(open_store(url), q))


async def _write_all(url: str) -> None:
    store = open_store(url)
    await store.start()
    records = sample()
    await store.write(records[:17])
    await store.write(records[17:])
    await store.close()


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('usage') / 'nested' / 'usage.db'}"
    asyncio.run(_write_all(url))
    return url


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_query_matches_reference(filled: str, name: str) -> None:
    q = QUERIES[name]
    assert query(filled, q) == expected(sample(), q)


def test_filters_and_groups_have_the_values_one_expects(filled: str) -> None:
    ops = query(filled, UsageQuery(client="ops"))["records"]
    assert ops and {r["client"] for r in ops} == {"ops"}
    assert ops == sorted(ops, key=lambda r: r["at"], reverse=True)
    assert isinstance(ops[0]["stream"], bool) and isinstance(ops[0]["estimated"], bool)

    by_day = query(filled, UsageQuery(group_by="day"))
    assert [g["key"] for g in by_day["groups"]] == ["2024-05-01", "2024-05-02", "2024-05-03"]
    assert sum(g["requests"] for g in by_day["groups"]) == by_day["totals"]["requests"] == 42

    by_client = query(filled, UsageQuery(group_by="client"))
    assert [g["key"] for g in by_client["groups"]] == [None, "acme", "ops"]

    by_backend = query(filled, UsageQuery(group_by="backend", until=DAY0 + 86400))
    mini = query(filled, UsageQuery(group_by="model", model="gpt-4o-mini"))
    assert mini["groups"][0]["cost"] is None  # no record of it had a price
    assert by_backend["totals"]["errors"] == sum(g["errors"] for g in by_backend["groups"])


def test_empty_store_answers_zeroes(tmp_path: Path) -> None:
    result = query(f"sqlite:///{tmp_path / 'empty.db'}", UsageQuery(group_by="model"))
    assert result["groups"] == []
    assert result["totals"] == {
        "requests": 0, "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "cost": None, "errors": 0,
        "latency_p50_ms": None, "latency_p95_ms": None, "ttft_p50_ms": None,
    }  # fmt: skip


def test_schema_version_table_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"

    async def run() -> list[dict[str, Any]]:
        first = open_store(f"sqlite:///{path}")
        await first.start()
        await first.start()  # idempotent
        await first.write([make(1, DAY0)])
        await first.close()
        await first.close()
        again = open_store(f"sqlite:///{path}")  # an existing file: migrations are not applied twice
        await again.write([make(2, DAY0 + 1)])
        result = await _query(again, UsageQuery())
        return list(result["records"])

    records = asyncio.run(run())
    assert [r["request_id"] for r in records] == ["req-2", "req-1"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM usage_schema_version ORDER BY version").fetchall() == [
            (v,) for v in range(1, SCHEMA_VERSION + 1)]  # each migration once
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"usage_records_at", "usage_records_client_at", "usage_records_backend_model_at"} <= indexes
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    asyncio.run(_query(open_store(f"sqlite:///{path}"), UsageQuery()))
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO usage_schema_version VALUES (?, 0)", (SCHEMA_VERSION + 1,))
    with pytest.raises(ConfigError, match="newer than this proxy"):
        asyncio.run(open_store(f"sqlite:///{path}").start())


def test_unopenable_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot open"):
        asyncio.run(open_store(f"sqlite:///{tmp_path / 'file' / 'usage.db'}").start())


def test_store_failure_is_a_503(tmp_path: Path) -> None:
    async def run() -> None:
        store = open_store(f"sqlite:///{tmp_path / 'usage.db'}")
        await store.start()
        assert isinstance(store, SqliteUsageStore)
        await asyncio.get_running_loop().run_in_executor(store._executor, store._db().close)
        try:
            await store.write([make(1, DAY0)])
        finally:
            await store.close()

    with pytest.raises(ProxyError) as info:
        asyncio.run(run())
    assert info.value.status == 503 and info.value.code == "usage_store_unavailable"


def test_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///data/usage.db")
    assert isinstance(relative, SqliteUsageStore) and relative._path == tmp_path / "data" / "usage.db"
    based = open_store("sqlite:///u.db", base_dir=Path("/srv/lip"))
    assert isinstance(based, SqliteUsageStore) and based._path == Path("/srv/lip/u.db")
    absolute = open_store("sqlite:////var/lib/lip/usage.db", base_dir=tmp_path)
    assert isinstance(absolute, SqliteUsageStore) and absolute._path == Path("/var/lib/lip/usage.db")
    assert asyncio.run(_query(open_store("sqlite:///:memory:"), UsageQuery())) == {"records": []}
    for url in ("postgresql://u:secret@db:5432/usage", "postgres://db/usage"):
        pg = open_store(url)
        assert isinstance(pg, PostgresUsageStore) and "secret" not in pg.url
    assert open_store("postgresql://u:secret@db/usage").url == "postgresql://u:***@db/usage"
    for bad in ("sqlite:///", "mysql://db/usage", "usage.db", "redis://x", "postgresql://u:p@db:port/x"):
        with pytest.raises(ConfigError) as info:
            open_store(bad)
        assert "usage.store" in str(info.value) and ":p@" not in str(info.value)
    assert redact("postgresql://db/x?password=hunter2") == "postgresql://db/x?***"
    assert not (tmp_path / "data").exists()  # nothing is created before start()


def test_several_processes_worth_of_stores_share_one_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"

    async def run() -> dict[str, Any]:
        stores = [open_store(url) for _ in range(4)]  # each on its own thread, like --workers
        await asyncio.gather(*(s.start() for s in stores))
        await asyncio.gather(*(s.write([make(i * 100 + j, DAY0 + j) for j in range(50)]) for i, s in enumerate(stores)))
        for s in stores:
            await s.close()
        return await _query(open_store(url), UsageQuery(group_by="day"))

    assert asyncio.run(run())["totals"]["requests"] == 200
    with sqlite3.connect(tmp_path / "shared.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM usage_schema_version").fetchone() == (SCHEMA_VERSION,)


def test_a_store_of_schema_1_gains_the_dropped_column(tmp_path: Path) -> None:
    """A file written before x-lip-dropped existed is migrated in place; its rows read back with dropped None."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE usage_schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
        for statement in MIGRATIONS[0][1]:
            conn.execute(statement)
        conn.execute("INSERT INTO usage_schema_version VALUES (1, 0)")
        conn.execute("INSERT INTO usage_records (at, request_id, surface, selector, stream, input_tokens, "
                     "output_tokens, cached_tokens, estimated, latency_ms, status) "
                     f"VALUES ({DAY0}, 'old-1', 'openai', 'm', 0, 1, 1, 0, 0, 1.0, 200)")

    async def run() -> list[dict[str, Any]]:
        store = open_store(f"sqlite:///{path}")
        await store.write([dataclasses.replace(make(2, DAY0 + 1), dropped="metadata, thinking")])
        result = await _query(store, UsageQuery())
        await store.close()
        return list(result["records"])

    records = asyncio.run(run())
    assert {r["request_id"]: r["dropped"] for r in records} == {"req-2": "metadata, thinking", "old-1": None}


def test_a_store_of_schema_1_gains_the_continued_from_column(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE usage_schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
        for statement in MIGRATIONS[0][1]:
            conn.execute(statement)
        conn.execute("INSERT INTO usage_schema_version VALUES (1, 0)")

    async def run() -> list[Any]:
        store = open_store(f"sqlite:///{path}")
        await store.write([dataclasses.replace(make(1, DAY0), continued_from="up:gpt-4o@42")])
        return list((await _query(store, UsageQuery()))["records"])

    (record,) = asyncio.run(run())
    assert record["continued_from"] == "up:gpt-4o@42"
