"""Circuit breakers every replica shares, in Redis: the rules of ``lip.routing.breaker`` in one script."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

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


class RedisBreakers:
    """Breakers shared by every replica through Redis.

    A route seen healthy (no recorded failure) is not asked about again for ``fresh`` seconds,
    so a healthy route costs one Redis round trip a second, not one a request; another replica's
    opened circuit is noticed within that time. An unreachable Redis never blocks a request.
    """

    def __init__(self, redis: RedisConnection, *, failures: int = 5, cooldown: float = 30.0, prefix: str = "lip:cb:",
                 fresh: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._client: Any = redis.client
        self._guard = redis.guard  # a hung Redis is waited for once, then skipped for a while
        self._script = self._client.register_script(BREAKER_SCRIPT)
        self._args = (failures, cooldown)
        self._prefix = prefix
        self._fresh = fresh
        self._clock = clock
        self._healthy: dict[str, float] = {}  # key -> when Redis last said it had no failures
        self._troubled: set[str] = set()
        self._open_until: dict[str, float] = {}  # circuits this process saw open, until when (for metrics)

    async def allow(self, key: str) -> Permit:
        seen = self._healthy.get(key)
        if seen is not None and self._clock() - seen < self._fresh:
            return GO
        try:
            reply = await self._guard.run(lambda: self._script(keys=[self._prefix + key], args=["allow", *self._args]),
                                          REDIS_ERRORS)
        except (RedisError, OSError) as exc:
            log.debug("breaker store unreachable (%s); allowing %s", type(exc).__name__, key)
            return GO
        text = reply.decode() if isinstance(reply, bytes) else str(reply)
        if text == "probe":
            self._troubled.add(key)
            return PROBE
        answer = float(text)
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
                await self._guard.run(lambda: self._client.delete(self._prefix + key), REDIS_ERRORS)
            except (RedisError, OSError):
                return

    async def failure(self, key: str) -> None:
        self._healthy.pop(key, None)
        self._troubled.add(key)
        try:
            opened = float(await self._guard.run(
                lambda: self._script(keys=[self._prefix + key], args=["failure", *self._args]), REDIS_ERRORS))
        except (RedisError, OSError):
            return
        if opened > 0:
            self._open_until[key] = self._clock() + opened

    async def ping(self) -> None:
        """Connect and load the breaker script (start-up warm-up, readiness); raises when Redis is down."""
        await self._client.script_load(BREAKER_SCRIPT)

    async def close(self) -> None:
        """Nothing of its own to close: the client is the state's, closed after every store."""

    def state(self, key: str) -> str | None:
        """None: whether the circuit is open is Redis's to say (``snapshot`` has what this process saw)."""
        return None

    def snapshot(self) -> dict[str, str]:
        """``open`` while this process knows the circuit open, else ``troubled`` (failures, not open)."""
        now = self._clock()
        for key in [k for k, until in self._open_until.items() if until <= now]:
            del self._open_until[key]
        return {key: "open" if key in self._open_until else "troubled" for key in self._troubled}
