"""Shared state of one deployment (``open_state``), opened from the one shared-state URL (``limits.store``).

``open_state(url)`` gives the rate-limit buckets, circuit breakers, command sessions and stored
Responses together, over one client of the store's kind: one Redis client (one connection pool)
for replicas (``redis://``, ``rediss://``, ``unix://``); one asyncpg pool for replicas that share a
PostgreSQL database (``postgresql://``, ``postgres://``: a table each); files of one machine's processes
(``mmap:///path`` or ``sqlite:///path``, each SQLite file opened by ``lip.state.sqlite``), with
sessions and stored Responses in files beside it; else this process. ``close`` closes them all.
The state outlives a configuration reload: buckets and breakers keep their levels while the
routes that use them change. Store modules hold bytes and typed records, never protocol code.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from lip.core.errors import ConfigError
from lip.limits.ratelimit import MemoryRateLimiter, RateLimiter
from lip.routing.breaker import Breakers, BreakerStore
from lip.state import urls
from lip.state.breakers import RedisBreakers
from lip.state.buckets import RedisRateLimiter, SqliteRateLimiter
from lip.state.mapped import MappedRateLimiter
from lip.state.postgres_breakers import PostgresBreakers
from lip.state.postgres_buckets import PostgresRateLimiter
from lip.state.postgres_client import PostgresConnection
from lip.state.postgres_responses import PostgresResponseStore
from lip.state.postgres_sessions import PostgresSessionStore
from lip.state.redis_client import RedisConnection
from lip.state.responses import ResponseStore, StoredResponses
from lip.state.sessions import MemorySessionStore, RedisSessionStore, SessionStore, SqliteSessionStore
from lip.state.shared_responses import RedisResponseStore, SqliteResponseStore

CHECK_TIMEOUT = 1.0  # seconds a readiness check of the store may take


class Pings(Protocol):
    async def ping(self) -> None:
        """Reach the store (connect, load scripts); raises when it cannot."""
        ...


class Server(Pings, Protocol):
    """The one client (Redis) or pool (PostgreSQL) a URL's stores share, and what its failures raise."""

    errors: tuple[type[Exception], ...]

    async def close(self) -> None: ...


@dataclass(slots=True)
class SharedState:
    """Buckets, breakers, sessions and stored Responses of one shared-state URL; one ``close``."""

    url: str
    limiter: RateLimiter
    breakers: BreakerStore
    sessions: SessionStore
    responses: StoredResponses
    remote: tuple[Pings, ...] = ()  # what a warm-up or readiness check reaches (a server's stores)
    server: Server | None = None  # the one client or pool of a server's URL, shared by the four stores

    @property
    def kind(self) -> str:
        return urls.kind(self.url)  # memory, mmap, sqlite, redis, postgresql

    async def warm(self) -> None:
        """Open the connections and load the scripts a request needs (start-up; raises on failure)."""
        for store in self.remote:
            await store.ping()

    async def check(self) -> str | None:
        """None when the store answers; else what is wrong (for readiness and /metrics)."""
        errors: tuple[type[Exception], ...] = (OSError, TimeoutError)
        if self.server is not None:
            errors += self.server.errors
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                for store in self.remote:
                    await store.ping()
        except errors as exc:
            return f"{urls.display(self.url)} unreachable ({type(exc).__name__})"
        return None

    async def close(self) -> None:
        """Every store (each sends what it still owes), then the client or pool they share."""
        await self.limiter.close()
        await self.breakers.close()
        await self.sessions.close()
        await self.responses.close()
        if self.server is not None:
            await self.server.close()


def open_state(url: str, *, on_store_error: str = "allow", breaker_failures: int = 5,
               breaker_cooldown: float = 30.0) -> SharedState:
    """The state of ``url`` (not connected yet: ``warm`` does that); ConfigError if it names no store."""
    try:
        urls.check(url)
    except ValueError as exc:
        raise ConfigError([f"limits.store: {exc}; got {urls.display(url)!r}"]) from None
    if urls.is_redis(url):
        return _redis_state(url, on_store_error, breaker_failures, breaker_cooldown)
    if urls.is_postgres(url):
        return _postgres_state(url, on_store_error, breaker_failures, breaker_cooldown)
    breakers = Breakers(breaker_failures, breaker_cooldown)
    path = urls.machine_file(url)
    if path is None:
        return SharedState(url, MemoryRateLimiter(), breakers, MemorySessionStore(), ResponseStore())
    limiter = MappedRateLimiter(path) if url.startswith("mmap:") else SqliteRateLimiter(path)
    return SharedState(url, limiter, breakers, SqliteSessionStore(path.with_name(path.stem + "-sessions.db")),
                       SqliteResponseStore(path.with_name(path.stem + "-responses.db")))


def _redis_state(url: str, on_store_error: str, breaker_failures: int, breaker_cooldown: float) -> SharedState:
    redis = RedisConnection(url)
    limiter = RedisRateLimiter(redis, on_error=on_store_error)
    breakers = RedisBreakers(redis, failures=breaker_failures, cooldown=breaker_cooldown)
    # a warm-up connects, then loads the scripts of the buckets and the breakers
    return SharedState(url, limiter, breakers, RedisSessionStore(redis), RedisResponseStore(redis),
                       remote=(redis, limiter, breakers), server=redis)


def _postgres_state(url: str, on_store_error: str, breaker_failures: int, breaker_cooldown: float) -> SharedState:
    pg = PostgresConnection(url)
    limiter = PostgresRateLimiter(pg, on_error=on_store_error)
    breakers = PostgresBreakers(pg, failures=breaker_failures, cooldown=breaker_cooldown)
    # a warm-up connects and creates the tables the four stores declared
    return SharedState(url, limiter, breakers, PostgresSessionStore(pg), PostgresResponseStore(pg), remote=(pg,),
                       server=pg)
