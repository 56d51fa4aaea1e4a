"""lip.state.urls and lip.state.sqlite: the shared-state URL read in one place, SQLite opened in one way."""

from __future__ import annotations

from pathlib import Path

import pytest

from lip.state import sqlite, urls


@pytest.mark.parametrize(("url", "kind"), [("memory", "memory"), ("redis://h:6379/0", "redis"),
                                           ("rediss://h/1", "redis"), ("unix:///run/redis.sock", "redis"),
                                           ("postgresql://lip:pw@db.internal:5432/lip", "postgresql"),
                                           ("postgres://db/lip?sslmode=require", "postgresql"),
                                           ("mmap:///tmp/rl.map", "mmap"), ("sqlite:///rl.db", "sqlite")])
def test_every_store_url_has_one_kind(url: str, kind: str) -> None:
    assert urls.check(url) == url and urls.kind(url) == kind


def test_postgresql_urls_are_told_apart_from_the_others() -> None:
    assert urls.is_postgres("postgresql://h/db") and urls.is_postgres("postgres://h/db")
    assert not urls.is_postgres("redis://h/0") and not urls.is_redis("postgresql://h/db")
    assert urls.machine_file("postgresql://h/db") is None
    assert "postgresql://" in urls.EXPECTED


@pytest.mark.parametrize("url", ["", "memory:", "redis:/h", "sqlite://rl.db", "postgresql:/h/db", "postgresql://",
                                 "postgres:h", "pg://h/db", "mysql://h/db", "mmap:///"])
def test_anything_else_is_refused_saying_what_is_expected(url: str) -> None:
    with pytest.raises(ValueError, match="expected memory, redis://"):
        urls.check(url)


def test_machine_files_are_relative_or_absolute_and_their_neighbours_sit_beside_them() -> None:
    assert urls.machine_file("sqlite:///data/rl.db") == Path("data/rl.db")
    assert urls.machine_file("mmap:////var/lib/lip/rl.map", "-sessions.db") == Path("/var/lib/lip/rl-sessions.db")
    assert urls.machine_file("redis://h/0") is None and urls.machine_file("memory") is None
    assert urls.machine_file(urls.mmap_url(Path("/tmp/x/ratelimit.map"))) == Path("/tmp/x/ratelimit.map")


def test_display_drops_user_info() -> None:
    assert urls.display("rediss://user:pw@redis.internal:6380/2") == "rediss://redis.internal:6380/2"
    assert urls.display("postgresql://lip:s3cret@db:5432/lip") == "postgresql://db:5432/lip"
    assert urls.display("memory") == "memory"


def test_one_busy_timeout_and_wal_for_state_files_durable_for_records(tmp_path: Path) -> None:
    state = sqlite.connect(tmp_path / "s.db")
    records = sqlite.connect(tmp_path / "u.db", durable=True, busy_timeout=10.0)
    try:
        assert state.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert state.execute("PRAGMA busy_timeout").fetchone()[0] == int(sqlite.BUSY_TIMEOUT * 1000)
        assert state.execute("PRAGMA synchronous").fetchone()[0] == 0  # OFF
        assert records.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert records.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
        assert state.in_transaction is False and state.isolation_level is None  # autocommit: BEGIN explicitly
    finally:
        state.close()
        records.close()
