"""Rate-limit buckets shared between processes: Redis (replicas) and SQLite (workers of one machine);
PostgreSQL (replicas) is ``lip.state.postgres_buckets``, over ``advance`` and ``FailurePolicy`` here.

Both run the same bucket arithmetic as the in-process limiter (``ratelimit.take``): Redis in one
Lua script per admission (atomic, one round trip, the server's clock), SQLite in one
``BEGIN IMMEDIATE`` transaction on a file every worker opens. When the store cannot be reached,
``on_store_error`` decides: ``allow`` (fail open, logged at most once a minute) or ``deny`` (503).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis.exceptions import NoScriptError, RedisError

from lip.core.errors import BackendUnavailable
from lip.limits.ratelimit import Decision, Quota, decision, refill, take
from lip.state import sqlite
from lip.state.redis_client import REDIS_ERRORS, RedisConnection

log = logging.getLogger("lip.limits")

# KEYS[1]: bucket hash. ARGV: rpm (-1: none), tpm (-1: none), tokens wanted, mode ("take"|"adjust"),
# tokens owed by earlier reconciliations of this process (charged first; negative: given back).
BUCKET_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rpm, tpm, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'r', 't', 'at')
local r = tonumber(s[1]) or math.max(rpm, 0)
local k = tonumber(s[2]) or math.max(tpm, 0)
local elapsed = math.max(0, now - (tonumber(s[3]) or now))
if rpm >= 0 then r = math.min(rpm, r + elapsed * rpm / 60) end
if tpm >= 0 then k = math.min(tpm, k + elapsed * tpm / 60 - (tonumber(ARGV[5]) or 0)) end
local allowed, wait = 1, 0
if ARGV[4] == 'adjust' then
  if tpm >= 0 then k = math.min(tpm, k - want) end
else
  if rpm >= 0 and r < 1 then wait = math.max(wait, (1 - r) * 60 / rpm) end
  local need = math.min(want, math.max(tpm, 0))
  if tpm >= 0 and k < need then wait = math.max(wait, (need - k) * 60 / tpm) end
  if wait > 0 then
    allowed = 0
  else
    if rpm >= 0 then r = r - 1 end
    if tpm >= 0 then k = k - want end
  end
end
redis.call('HSET', KEYS[1], 'r', tostring(r), 't', tostring(k), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], 120000)
return {allowed, tostring(r), tostring(k), tostring(wait)}
"""


class FailurePolicy:
    """``on_store_error`` of a limiter over a server (Redis, PostgreSQL): admit uncounted, or 503."""

    def __init__(self, store: str, on_error: str) -> None:
        self._store = store
        self._deny = on_error == "deny"
        self._last_log = -math.inf
        self.uncounted = 0  # admissions let through without the store (fail open), for /metrics

    def handle(self, quota: Quota, exc: Exception) -> Decision:
        now = time.monotonic()
        if now - self._last_log > 60:
            self._last_log = now
            action = "denying" if self._deny else "allowing"
            log.warning("rate-limit store %s unreachable (%s); %s requests", self._store, type(exc).__name__, action)
        if self._deny:
            raise BackendUnavailable("The rate-limit store is unreachable; try again shortly.",
                                     code="rate_limit_store_unavailable", retry_after=1.0) from exc
        self.uncounted += 1
        return Decision(True, 0.0, Quota(), None, None, 0.0, 0.0)


class RedisRateLimiter:
    """Buckets in Redis, shared by every worker and replica that names the same store.

    An admission is one script call (one round trip). Reconciliations (``adjust``, after a response)
    are summed per bucket in this process and go with the next admission to that bucket (charged
    before it is decided), or, for a bucket without one, in one pipeline ``adjust_every`` seconds
    later: a request costs one round trip, not two.
    """

    def __init__(self, redis: RedisConnection, *, prefix: str = "lip:rl:", on_error: str = "allow",
                 adjust_every: float = 0.05) -> None:
        self._guard = redis.guard  # a hung Redis is waited for once, then skipped for a while
        self._client: Any = redis.client
        self._script = self._client.register_script(BUCKET_SCRIPT)
        self._batch = _Batch(self._client, self._script)
        self._prefix = prefix
        self._policy = FailurePolicy(redis.shown, on_error)
        self._adjust_every = adjust_every
        self._owed: dict[str, tuple[Quota, int]] = {}  # bucket -> (its quota, tokens to charge)
        self._flusher: asyncio.Task[None] | None = None

    async def _run(self, key: str, quota: Quota, want: int, mode: str) -> tuple[bool, float, float, float]:
        rpm = quota.requests_per_minute if quota.requests_per_minute is not None else -1
        tpm = quota.tokens_per_minute if quota.tokens_per_minute is not None else -1
        owed = self._owed.pop(key, (quota, 0))[1] if self._owed else 0
        allowed, r, k, wait = await self._guard.run(
            lambda: self._batch.call(self._prefix + key, (rpm, tpm, want, mode, owed)), REDIS_ERRORS)
        return bool(allowed), float(r), float(k), float(wait)

    @property
    def uncounted(self) -> int:
        """Admissions let through while Redis could not count them (``on_store_error: allow``)."""
        return self._policy.uncounted

    async def acquire(self, key: str, quota: Quota, tokens: int) -> Decision:
        try:
            allowed, r, k, wait = await self._run(key, quota, tokens, "take")
        except (RedisError, OSError) as exc:
            return self._policy.handle(quota, exc)
        return decision(allowed, wait, quota, r, k)

    async def adjust(self, key: str, quota: Quota, tokens: int) -> None:
        if quota.tokens_per_minute is None or not tokens:
            return
        _, owed = self._owed.get(key, (quota, 0))
        self._owed[key] = (quota, owed + tokens)
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self._adjust_every)
        finally:
            self._flusher = None
            await self._flush()

    async def _flush(self) -> None:
        owed, self._owed = self._owed, {}
        if not owed:
            return

        async def send() -> None:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, (quota, tokens) in owed.items():
                    tpm = quota.tokens_per_minute if quota.tokens_per_minute is not None else -1
                    rpm = quota.requests_per_minute if quota.requests_per_minute is not None else -1
                    await self._script(keys=[self._prefix + key], args=[rpm, tpm, 0, "adjust", tokens], client=pipe)
                await pipe.execute()

        try:
            await self._guard.run(send, REDIS_ERRORS)
        except (RedisError, OSError) as exc:
            log.debug("rate-limit adjustments of %d buckets lost: %s", len(owed), type(exc).__name__)

    async def ping(self) -> None:
        """Connect and load the bucket script (start-up warm-up, readiness); raises when Redis is down."""
        await self._client.script_load(BUCKET_SCRIPT)

    async def close(self) -> None:
        """Send the adjustments still owed (the client is the state's, closed after every store)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self._flush()


class _Batch:
    """Admissions asked for in the same turn of the event loop go to Redis in one pipeline (one write,
    one read), each an EVALSHA of the loaded bucket script: under concurrency a request's share of
    the round trip's CPU shrinks; alone, it is the one call it was. A script Redis lost (a restart)
    is loaded again and the batch sent once more."""

    def __init__(self, client: Any, script: Any) -> None:
        self._client = client
        self._script = script
        self._waiting: list[tuple[str, tuple[object, ...], asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def call(self, key: str, args: tuple[object, ...]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((key, args, future))
        if len(self._waiting) == 1:
            loop.call_soon(self._send_waiting)
        return await future

    def _send_waiting(self) -> None:
        batch, self._waiting = self._waiting, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[str, tuple[object, ...], asyncio.Future[Any]]]) -> None:
        try:
            try:
                results = await self._execute(batch)
            except NoScriptError:
                await self._client.script_load(BUCKET_SCRIPT)
                results = await self._execute(batch)
        except (RedisError, OSError) as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _execute(self, batch: list[tuple[str, tuple[object, ...], asyncio.Future[Any]]]) -> list[Any]:
        sha = self._script.sha
        if len(batch) == 1:
            key, args, _ = batch[0]
            return [await self._client.evalsha(sha, 1, key, *args)]
        async with self._client.pipeline(transaction=False) as pipe:
            for key, args, _ in batch:
                pipe.evalsha(sha, 1, key, *args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        if any(isinstance(r, NoScriptError) for r in results):
            raise NoScriptError("the bucket script is not loaded")
        return results


def advance(stored: tuple[float, float, float] | None, now: float, quota: Quota, want: int,
            adjust: bool) -> tuple[bool, float, float, float]:
    """A stored bucket (requests, tokens, when last written; None: new, so full) at ``now``, after one
    admission of ``want`` tokens (``take``) or, ``adjust``, ``want`` more tokens charged (negative:
    given back): (allowed, requests, tokens, retry_after). The SQLite and PostgreSQL limiters share it."""
    r, k, at = stored if stored else (float(quota.requests_per_minute or 0), float(quota.tokens_per_minute or 0), now)
    if not adjust:
        return take(r, k, max(0.0, now - at), quota, want)
    r, k = refill(r, k, max(0.0, now - at), quota)
    if quota.tokens_per_minute is not None:
        k = min(float(quota.tokens_per_minute), k - want)
    return True, r, k, 0.0


class SqliteRateLimiter:
    """Buckets in a SQLite file shared by the workers of one machine (``lip serve --workers N``)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._db = sqlite.connect(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, r REAL, t REAL, at REAL)")
        self._clock = clock

    def _update(self, key: str, quota: Quota, want: int, adjust: bool) -> tuple[bool, float, float, float]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            now = self._clock()
            row = db.execute("SELECT r, t, at FROM buckets WHERE key = ?", (key,)).fetchone()
            allowed, r, k, wait = advance(row, now, quota, want, adjust)
            db.execute("INSERT OR REPLACE INTO buckets (key, r, t, at) VALUES (?, ?, ?, ?)", (key, r, k, now))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return allowed, r, k, wait

    async def acquire(self, key: str, quota: Quota, tokens: int) -> Decision:
        allowed, r, k, wait = self._update(key, quota, tokens, adjust=False)
        return decision(allowed, wait, quota, r, k)

    async def adjust(self, key: str, quota: Quota, tokens: int) -> None:
        self._update(key, quota, tokens, adjust=True)

    async def close(self) -> None:
        self._db.close()
