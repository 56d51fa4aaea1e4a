"""The usage stores against a real PostgreSQL server (initdb + pg_ctl in a temporary directory, on
127.0.0.1 and an ephemeral port), and the same data through SQLite and PostgreSQL giving the same JSON."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from lip.core.errors import ConfigError
from lip.usage.postgres import SCHEMA_VERSION, PostgresUsageStore
from lip.usage.recorder import UsageRecorder
from lip.usage.records import UsageQuery, UsageRecord
from lip.usage.store import UsageStore, open_store
from unit.usage.usage_cases import DAY0, QUERIES, expected, make, sample

INSTALL_HINT = "run scripts/ensure-services.sh (make test does), or on Debian: apt-get install postgresql"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        on_path = shutil.which("initdb")
        if on_path is None:
            pytest.fail(f"PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): {INSTALL_HINT}")
        return Path(on_path).parent
    return Path(found[-1]).parent


def _as_server_user() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its programs as the ``postgres`` user."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None or subprocess.run(["id", "-u", "postgres"], check=False, capture_output=True).returncode != 0:
        pytest.fail(f"running as root needs runuser and a 'postgres' system user: {INSTALL_HINT}")
    return [runuser, "-u", "postgres", "--"]


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A fresh server; yields the URL of its ``postgres`` database (user ``postgres``, trust auth)."""
    bin_dir, prefix = _binaries(), _as_server_user()
    workdir = Path(tempfile.mkdtemp(prefix="lip-pg-"))
    if prefix:
        shutil.chown(workdir, "postgres", "postgres")
    data, port = workdir / "data", free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={workdir} -c fsync=off"
    try:
        _run(*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
             "--locale=C", "--no-sync")  # fmt: skip
        _run(*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(workdir / "server.log"),
             "-w", "-t", "30", "start")  # fmt: skip
    except subprocess.CalledProcessError as exc:
        log = workdir / "server.log"
        detail = log.read_text() if log.exists() else ""
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr}{detail}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       check=False, capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def new_database(postgres: str) -> Iterator[Any]:
    """Makes an empty database on the server and returns its URL."""
    numbers = count()

    def make_one() -> str:
        name = f"usage_{next(numbers)}"

        async def create() -> None:
            conn = await asyncpg.connect(postgres)
            try:
                await conn.execute(f"CREATE DATABASE {name}")
            finally:
                await conn.close()

        asyncio.run(create())
        return postgres.rsplit("/", 1)[0] + "/" + name

    yield make_one


async def _fill(store: UsageStore, records: list[UsageRecord]) -> None:
    await store.start()
    await store.write(records[:17])
    await store.write(records[17:])
    await store.close()


async def _ask(url: str, queries: list[UsageQuery]) -> list[dict[str, Any]]:
    store = open_store(url)
    try:
        return [await store.query(q) for q in queries]
    finally:
        await store.close()


@pytest.fixture(scope="module")
def filled(new_database: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    urls = {"postgresql": new_database(), "sqlite": f"sqlite:///{tmp_path_factory.mktemp('usage') / 'usage.db'}"}
    for url in urls.values():
        asyncio.run(_fill(open_store(url), sample()))
    return urls


def test_both_stores_give_the_same_json_for_the_same_data(filled: dict[str, str]) -> None:
    names = sorted(QUERIES)
    queries = [QUERIES[n] for n in names]
    pg = asyncio.run(_ask(filled["postgresql"], queries))
    lite = asyncio.run(_ask(filled["sqlite"], queries))
    for name, q, from_pg, from_sqlite in zip(names, queries, pg, lite, strict=True):
        want = expected(sample(), q)
        assert from_pg == want, name
        assert from_sqlite == want, name


def test_schema_version_and_restart(new_database: Any) -> None:
    url = new_database()

    async def run() -> tuple[list[Any], list[str]]:
        stores = [open_store(url) for _ in range(3)]
        await asyncio.gather(*(s.start() for s in stores))  # replicas starting together migrate once
        await stores[0].write([make(1, DAY0)])
        for s in stores:
            await s.close()
        again = open_store(url)
        await again.write([make(2, DAY0 + 1)])
        records = (await again.query(UsageQuery()))["records"]
        await again.close()
        conn = await asyncpg.connect(url)
        try:
            versions = [tuple(r) for r in await conn.fetch("SELECT version FROM usage_schema_version")]
            rows = await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'usage_records'")
            indexes = [r[0] for r in rows]
            await conn.execute("INSERT INTO usage_schema_version VALUES ($1, 0)", SCHEMA_VERSION + 1)
        finally:
            await conn.close()
        assert [r["request_id"] for r in records] == ["req-2", "req-1"]
        return versions, indexes

    versions, indexes = asyncio.run(run())
    assert sorted(versions) == [(v,) for v in range(1, SCHEMA_VERSION + 1)]  # each migration once
    assert {"usage_records_at", "usage_records_client_at", "usage_records_backend_model_at"} <= set(indexes)
    with pytest.raises(ConfigError, match="newer than this proxy"):
        asyncio.run(open_store(url).start())


def test_recorder_writes_to_postgres_and_flushes_on_close(new_database: Any) -> None:
    url = new_database()

    async def run() -> dict[str, Any]:
        recorder = UsageRecorder(open_store(url), batch=100, interval=0.05)
        await recorder.start()
        for i in range(1234):
            recorder.record(make(i, DAY0 + i))
        await recorder.close()
        assert recorder.written == 1234 and recorder.dropped == 0
        return (await _ask(url, [UsageQuery(group_by="day")]))[0]

    assert asyncio.run(run())["totals"]["requests"] == 1234


def test_unreachable_server_is_a_config_error_without_the_password() -> None:
    store = open_store(f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/postgres")
    assert isinstance(store, PostgresUsageStore)
    with pytest.raises(ConfigError) as info:
        asyncio.run(store.start())
    assert "cannot connect" in str(info.value) and "hunter2" not in str(info.value)
