"""Shared state of one deployment, opened from the one shared-state URL (``limits.store``).

``open_state(url)`` gives the rate-limit buckets, circuit breakers, command sessions and stored
Responses together: Redis for replicas (``redis://``, ``rediss://``, ``unix://``); a file of one
machine's processes (``mmap:///path`` or ``sqlite:///path``: three slashes, then a relative path
or /an/absolute/one), with sessions and stored Responses in files beside it; else this process.
The state outlives a configuration reload: buckets and breakers keep their levels while the
routes that use them change.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from redis.exceptions import RedisError

from lip.commands.sessions import MemorySessionStore, RedisSessionStore, SessionStore, SqliteSessionStore
from lip.core.guard import FailFast
from lip.frontends.shared_responses import RedisResponseStore, SqliteResponseStore
from lip.limits.mapped import MappedRateLimiter
from lip.limits.ratelimit import MemoryRateLimiter, RateLimiter
from lip.limits.shared_stores import RedisRateLimiter, SqliteRateLimiter
from lip.protocols.openai_responses.surface import ResponseStore, StoresResponses
from lip.routing.breaker import Breakers, BreakerStore, RedisBreakers

log = logging.getLogger("lip.state")
MACHINE_SCHEMES = ("mmap:///", "sqlite:///")
CHECK_TIMEOUT = 1.0  # seconds a readiness check of the store may take


class Pings(Protocol):
    async def ping(self) -> None:
        """Reach the store (connect, load scripts); raises when it cannot."""
        ...


def is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "unix://"))


def machine_file(url: str, suffix: str = "") -> Path | None:
    """The limits file of a machine-wide ``url`` (with ``suffix``: a file beside it); None otherwise."""
    for scheme in MACHINE_SCHEMES:
        if url.startswith(scheme):
            path = Path(url.removeprefix(scheme))
            return path.with_name(path.stem + suffix) if suffix else path
    return None


def display(url: str) -> str:
    """``url`` without user-info (a password never reaches a log or a readiness answer)."""
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rpartition("@")[2]


@dataclass(slots=True)
class SharedState:
    """Buckets, breakers, sessions and stored Responses of one shared-state URL; one ``close``."""

    url: str
    limiter: RateLimiter
    breakers: BreakerStore
    sessions: SessionStore
    responses: StoresResponses

    @property
    def kind(self) -> str:
        if is_redis(self.url):
            return "redis"
        return self.url.partition(":")[0]  # memory, mmap, sqlite

    def _remote(self) -> list[Pings]:
        stores = (self.limiter, self.breakers, self.sessions, self.responses)
        return [s for s in stores if _pings(s)]  # type: ignore[misc]

    async def warm(self) -> None:
        """Open the connections and load the scripts a request needs (start-up; raises on failure)."""
        for store in self._remote():
            await store.ping()

    async def check(self) -> str | None:
        """None when the store answers; else what is wrong (for readiness and /metrics)."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                for store in self._remote():
                    await store.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            return f"{display(self.url)} unreachable ({type(exc).__name__})"
        return None

    async def close(self) -> None:
        await self.limiter.close()
        await self.breakers.close()
        await self.sessions.close()
        if isinstance(self.responses, SqliteResponseStore):
            self.responses.close()
        elif isinstance(self.responses, RedisResponseStore):
            await self.responses.close()


def _pings(store: object) -> bool:
    return callable(getattr(store, "ping", None))


def open_state(url: str, *, on_store_error: str = "allow", breaker_failures: int = 5,
               breaker_cooldown: float = 30.0) -> SharedState:
    """The state of ``url`` (not connected yet: ``warm`` does that)."""
    breakers: BreakerStore
    guard = FailFast()  # one for the stores of one Redis: a hung Redis is waited for once, then skipped
    if is_redis(url):
        breakers = RedisBreakers(url, failures=breaker_failures, cooldown=breaker_cooldown, guard=guard)
    else:
        breakers = Breakers(breaker_failures, breaker_cooldown)
    return SharedState(url, make_limiter(url, on_store_error, guard), breakers, session_store(url, guard),
                       response_store(url))


def session_store(url: str, guard: FailFast | None = None) -> SessionStore:
    if is_redis(url):
        return RedisSessionStore(url, guard=guard)
    path = machine_file(url, "-sessions.db")
    return SqliteSessionStore(path) if path is not None else MemorySessionStore()


def response_store(url: str) -> StoresResponses:
    if is_redis(url):
        return RedisResponseStore(url)
    path = machine_file(url, "-responses.db")
    return SqliteResponseStore(path) if path is not None else ResponseStore()


def make_limiter(url: str, on_error: str, guard: FailFast | None = None) -> RateLimiter:
    if url == "memory":
        return MemoryRateLimiter()
    path = machine_file(url)
    if path is not None:
        return MappedRateLimiter(path) if url.startswith("mmap:") else SqliteRateLimiter(path)
    return RedisRateLimiter(url, on_error=on_error, guard=guard)
