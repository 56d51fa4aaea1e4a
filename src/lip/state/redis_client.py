"""The one Redis client of a shared-state URL: every Redis store (buckets, breakers, sessions,
stored Responses) sends its commands through its one connection pool.

The client is made here and closed here, after the stores that use it. With it comes the one
``FailFast`` of the URL: a hung Redis is waited for once, then skipped for a while by every store.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lip.core.guard import FailFast
from lip.state.urls import display

REDIS_ERRORS = (RedisError, OSError)
TIMEOUT = 0.5  # seconds to connect or to wait for an answer: a request never waits long for shared state


class RedisConnection:
    """The client (not connected until its first command) and the guard the stores of ``url`` share."""

    def __init__(self, url: str, *, timeout: float = TIMEOUT, guard: FailFast | None = None) -> None:
        self.client: Any = aioredis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.guard = guard or FailFast()
        self.shown = display(url)  # the URL without its password, for logs
        self.errors: tuple[type[Exception], ...] = REDIS_ERRORS  # what a command to a Redis that is down raises

    async def ping(self) -> None:
        """Connect (start-up warm-up, readiness); raises when Redis is down."""
        await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()
