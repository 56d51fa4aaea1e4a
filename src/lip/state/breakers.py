"""Circuit breakers every replica shares: what a process sees of them (``SharedBreakers``), and Redis's
(the rules of ``lip.routing.breaker`` in one script). PostgreSQL's are ``lip.state.postgres_breakers``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from lip.core.guard import FailFast
from lip.routing.breaker import GO, PROBE, Permit
from lip.state.redis_client import REDIS_ERRORS, RedisConnection

log = logging.getLogger("lip.breaker")


# KEYS[1]: the breaker's hash. ARGV: mode ("allow"|"failure"), threshold, cooldown.
BREAKER_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local threshold, cooldown = tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'failures', 'open_until', 'probe_since')
local failures = tonumber(s[1]) or 0
if ARGV[1] == 'failure' then
  failures = failures + 1
  redis.call('HSET', KEYS[1], 'failures', failures)
  redis.call('HDEL', KEYS[1], 'probe_since')
  redis.call('PEXPIRE', KEYS[1], 600000)
  if failures >= threshold then
    redis.call('HSET', KEYS[1], 'open_until', tostring(now + cooldown))
    return tostring(cooldown)
  end
  return '0'
end
if failures < threshold then return '-' .. failures end
local open_until = tonumber(s[2]) or 0
if now < open_until then return tostring(open_until - now) end
local probe = tonumber(s[3])
if probe and now - probe < cooldown then return tostring(cooldown / 10) end
redis.call('HSET', KEYS[1], 'probe_since', tostring(now))
return 'probe'
"""


class SharedBreakers:
    """Breakers every replica shares in a store (Redis, PostgreSQL), as this process sees them.

    A route seen healthy (no recorded failure) is not asked about again for ``fresh`` seconds,
    so a healthy route costs one question to the store a second, not one a request; another
    replica's opened circuit is noticed within that time. An unreachable store never blocks a
    request. A subclass asks the store (``_ask``), reports a failure (``_fail``) and clears (``_clear``).
    """

    def __init__(self, guard: FailFast, errors: tuple[type[Exception], ...], *, fresh: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._guard = guard  # a hung store is waited for once, then skipped for a while
        self._errors = errors
        self._fresh = fresh
        self._clock = clock
        self._healthy: dict[str, float] = {}  # key -> when the store last said it had no failures
        self._troubled: set[str] = set()
        self._open_until: dict[str, float] = {}  # circuits this process saw open, until when (for metrics)

    async def _ask(self, key: str) -> float | None:
        """None: this call is the probe; > 0: seconds the circuit stays open; 0: no failures; < 0: some."""
        raise NotImplementedError

    async def _fail(self, key: str) -> float:
        """Count a failure; seconds the circuit is now open for (0: still closed)."""
        raise NotImplementedError

    async def _clear(self, key: str) -> None:
        raise NotImplementedError

    async def allow(self, key: str) -> Permit:
        seen = self._healthy.get(key)
        if seen is not None and self._clock() - seen < self._fresh:
            return GO
        try:
            answer = await self._guard.run(lambda: self._ask(key), self._errors)
        except self._errors as exc:
            log.debug("breaker store unreachable (%s); allowing %s", type(exc).__name__, key)
            return GO
        if answer is None:
            self._troubled.add(key)
            return PROBE
        if answer > 0:
            self._open_until[key] = self._clock() + answer
            return Permit(answer)
        if answer == 0:
            self._healthy[key] = self._clock()
            self._troubled.discard(key)
        else:
            self._troubled.add(key)
        return GO

    async def success(self, key: str) -> None:
        self._open_until.pop(key, None)
        if key in self._troubled:
            self._troubled.discard(key)
            try:
                await self._guard.run(lambda: self._clear(key), self._errors)
            except self._errors:
                return

    async def failure(self, key: str) -> None:
        self._healthy.pop(key, None)
        self._troubled.add(key)
        try:
            opened = await self._guard.run(lambda: self._fail(key), self._errors)
        except self._errors:
            return
        if opened > 0:
            self._open_until[key] = self._clock() + opened

    async def close(self) -> None:
        """Nothing of its own to close: the client is the state's, closed after every store."""

    def state(self, key: str) -> str | None:
        """None: whether the circuit is open is the store's to say (``snapshot`` has what this process saw)."""
        return None

    def snapshot(self) -> dict[str, str]:
        """``open`` while this process knows the circuit open, else ``troubled`` (failures, not open)."""
        now = self._clock()
        for key in [k for k, until in self._open_until.items() if until <= now]:
            del self._open_until[key]
        return {key: "open" if key in self._open_until else "troubled" for key in self._troubled}


class RedisBreakers(SharedBreakers):
    """Breakers shared by every replica through Redis (the rules in one script, one round trip)."""

    def __init__(self, redis: RedisConnection, *, failures: int = 5, cooldown: float = 30.0, prefix: str = "lip:cb:",
                 fresh: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(redis.guard, REDIS_ERRORS, fresh=fresh, clock=clock)
        self._client: Any = redis.client
        self._script = self._client.register_script(BREAKER_SCRIPT)
        self._args = (failures, cooldown)
        self._prefix = prefix

    async def _ask(self, key: str) -> float | None:
        reply = await self._script(keys=[self._prefix + key], args=["allow", *self._args])
        text = reply.decode() if isinstance(reply, bytes) else str(reply)
        return None if text == "probe" else float(text)

    async def _fail(self, key: str) -> float:
        return float(await self._script(keys=[self._prefix + key], args=["failure", *self._args]))

    async def _clear(self, key: str) -> None:
        await self._client.delete(self._prefix + key)

    async def ping(self) -> None:
        """Connect and load the breaker script (start-up warm-up, readiness); raises when Redis is down."""
        await self._client.script_load(BREAKER_SCRIPT)
