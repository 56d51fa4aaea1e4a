"""Circuit breakers: a backend:model that keeps failing is taken out of rotation, then probed back.

closed ──(``failures`` consecutive failures)──▶ open ──(``cooldown`` s)──▶ half-open
half-open lets exactly one probe through: success closes the breaker, failure opens it again.
The probe is told apart (``Permit.probe``) so that the router makes it one attempt without
retries: a still-failing route then costs one call per cooldown, and a route that healed is back
within one cooldown. Only failures that say the upstream is unwell count (5xx, time-outs, resets,
cut streams); a 4xx or a 429 does not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lip.core.guard import FailFast

log = logging.getLogger("lip.breaker")
REDIS_ERRORS = (RedisError, OSError)


@dataclass(frozen=True, slots=True)
class Permit:
    """A breaker's answer: ``wait`` None lets the call go ahead (as the half-open probe when ``probe``)."""

    wait: float | None = None
    probe: bool = False


GO = Permit()
PROBE = Permit(probe=True)


class BreakerStore(Protocol):
    async def allow(self, key: str) -> Permit:
        """Whether a call may go ahead now (perhaps as the probe), else how long until it may."""
        ...

    async def success(self, key: str) -> None: ...

    async def failure(self, key: str) -> None: ...

    async def close(self) -> None: ...

    def snapshot(self) -> dict[str, str]:
        """Routes this process knows to be in trouble: label -> closed/open/half-open (for metrics)."""
        ...


@dataclass(slots=True)
class _State:
    failures: int = 0
    open_until: float = 0.0
    probe_since: float | None = None


class Breakers:
    """Breakers of this process."""

    def __init__(self, failures: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._states: dict[str, _State] = {}

    async def allow(self, key: str) -> Permit:
        state = self._states.get(key)
        if state is None or state.failures < self._threshold:
            return GO
        now = self._clock()
        if now < state.open_until:
            return Permit(state.open_until - now)
        if state.probe_since is not None and now - state.probe_since < self._cooldown:
            return Permit(self._cooldown / 10)  # another request is probing right now
        state.probe_since = now  # this request is the probe (a probe that never reports is replaced)
        return PROBE

    async def success(self, key: str) -> None:
        if key in self._states:
            del self._states[key]

    async def failure(self, key: str) -> None:
        state = self._states.setdefault(key, _State())
        state.failures += 1
        state.probe_since = None
        if state.failures >= self._threshold:
            state.open_until = self._clock() + self._cooldown

    async def close(self) -> None:
        self._states.clear()

    def snapshot(self) -> dict[str, str]:
        return {key: self.state(key) for key in self._states}

    def state(self, key: str) -> str:
        """``closed``, ``open`` or ``half-open`` (for metrics and !/limits)."""
        state = self._states.get(key)
        if state is None or state.failures < self._threshold:
            return "closed"
        return "open" if self._clock() < state.open_until else "half-open"


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

    def __init__(self, url: str, *, failures: int = 5, cooldown: float = 30.0, prefix: str = "lip:cb:",
                 fresh: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 guard: FailFast | None = None) -> None:
        self._client: Any = aioredis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._guard = guard or FailFast()  # a hung Redis is waited for once, then skipped for a while
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
        await self._client.aclose()

    def snapshot(self) -> dict[str, str]:
        """``open`` while this process knows the circuit open, else ``troubled`` (failures, not open)."""
        now = self._clock()
        for key in [k for k, until in self._open_until.items() if until <= now]:
            del self._open_until[key]
        return {key: "open" if key in self._open_until else "troubled" for key in self._troubled}
