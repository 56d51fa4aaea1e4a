"""lip.state.shared.open_state: which stores one shared-state URL gives, and that ``close`` closes them."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from lip.core.errors import ConfigError
from lip.core.model import Message
from lip.limits.ratelimit import MemoryRateLimiter, Quota
from lip.routing.breaker import Breakers
from lip.state.breakers import RedisBreakers
from lip.state.buckets import RedisRateLimiter, SqliteRateLimiter
from lip.state.mapped import MappedRateLimiter
from lip.state.postgres_breakers import PostgresBreakers
from lip.state.postgres_buckets import PostgresRateLimiter
from lip.state.postgres_client import PostgresConnection
from lip.state.postgres_responses import PostgresResponseStore
from lip.state.postgres_sessions import PostgresSessionStore
from lip.state.redis_client import RedisConnection
from lip.state.responses import ResponseStore
from lip.state.sessions import MemorySessionStore, RedisSessionStore, Session, SqliteSessionStore
from lip.state.shared import open_state
from lip.state.shared_responses import RedisResponseStore, SqliteResponseStore


def test_memory_is_this_process() -> None:
    state = open_state("memory")
    assert state.kind == "memory" and state.server is None and state.remote == ()
    assert isinstance(state.limiter, MemoryRateLimiter) and isinstance(state.breakers, Breakers)
    assert isinstance(state.sessions, MemorySessionStore) and isinstance(state.responses, ResponseStore)
    assert asyncio.run(state.check()) is None
    asyncio.run(state.close())


@pytest.mark.parametrize(("scheme", "limiter"), [("mmap", MappedRateLimiter), ("sqlite", SqliteRateLimiter)])
def test_a_machine_file_has_sessions_and_responses_beside_it(tmp_path: Path, scheme: str, limiter: type) -> None:
    state = open_state(f"{scheme}:///{tmp_path / 'limits.db'}")
    assert state.kind == scheme and state.remote == ()
    assert isinstance(state.limiter, limiter) and isinstance(state.breakers, Breakers)
    assert isinstance(state.sessions, SqliteSessionStore) and isinstance(state.responses, SqliteResponseStore)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == [
        "limits-responses.db", "limits-sessions.db", "limits.db"]

    async def use_close_and_read_again() -> tuple[Session, object]:
        await state.limiter.acquire("k", Quota(requests_per_minute=5), 1)
        assert await state.sessions.save("s", Session(model="b:m"))
        state.responses.put("r", (Message("user", "hi"),))
        assert (await state.sessions.load("s")).model == "b:m" and await state.responses.fetch("r")
        await state.close()
        with pytest.raises((sqlite3.ProgrammingError, OSError)):  # its file is closed
            await state.limiter.acquire("k", Quota(requests_per_minute=5), 1)
        return await state.sessions.load("s"), await state.responses.fetch("r")

    session, stored = asyncio.run(use_close_and_read_again())
    assert session == Session() and stored is None  # a closed file reads as nothing kept


def test_a_redis_url_gives_one_client_for_the_four_stores() -> None:
    state = open_state("redis://127.0.0.1:1/0", on_store_error="deny", breaker_failures=2)  # nothing connects yet
    assert state.kind == "redis" and isinstance(state.server, RedisConnection)
    assert isinstance(state.limiter, RedisRateLimiter) and isinstance(state.breakers, RedisBreakers)
    assert isinstance(state.sessions, RedisSessionStore) and isinstance(state.responses, RedisResponseStore)
    assert state.remote == (state.server, state.limiter, state.breakers)  # connect, then load both scripts
    assert state.breakers.state("any:route") is None  # Redis knows; !/limits says nothing of the circuit


def test_a_postgresql_url_gives_one_pool_for_the_four_stores() -> None:
    state = open_state("postgres://lip:pw@127.0.0.1:1/lip", on_store_error="deny")  # nothing connects yet
    pool = state.server
    assert state.kind == "postgresql" and isinstance(pool, PostgresConnection)
    assert not pool.open and state.remote == (pool,)  # the warm-up opens it, makes the tables
    assert isinstance(state.limiter, PostgresRateLimiter) and isinstance(state.breakers, PostgresBreakers)
    assert state.breakers.state("any:route") is None  # the database knows
    assert isinstance(state.sessions, PostgresSessionStore) and isinstance(state.responses, PostgresResponseStore)
    assert pool.shown == "postgres://127.0.0.1:1/lip"
    asyncio.run(state.close())  # never opened: nothing to close


def test_a_password_never_shows_and_a_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        open_state("http://user:secret@host/0")
    assert "expected memory, redis://" in caught.value.problems[0]
    assert "secret" not in caught.value.problems[0]
