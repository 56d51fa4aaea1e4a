"""Requests- and tokens-per-minute limits as token buckets, in process or shared through a store.

Each key (``backend:model``) has two buckets: requests and tokens. A bucket holds up to its
per-minute limit and refills continuously at limit/60 a second, so a burst of a full minute's
quota is allowed after a quiet minute and the long-run rate never exceeds the limit. Admission
takes one request and the reserved tokens (input + requested output) from both buckets at once,
or from neither; a reservation larger than a whole minute's tokens waits for a full bucket and
then drives it negative. ``adjust`` reconciles a reservation with the usage the upstream reported.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Quota:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    def __bool__(self) -> bool:
        return self.requests_per_minute is not None or self.tokens_per_minute is not None


@dataclass(slots=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until this request would be admitted; 0 when allowed
    quota: Quota
    remaining_requests: int | None
    remaining_tokens: int | None
    reset_requests: float  # seconds until the requests bucket is full again
    reset_tokens: float

    def headers(self) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers for the limits that exist."""
        out: dict[str, str] = {}
        q = self.quota
        if q.requests_per_minute is not None:
            out["x-ratelimit-limit-requests"] = str(q.requests_per_minute)
            out["x-ratelimit-remaining-requests"] = str(max(0, self.remaining_requests or 0))
            out["x-ratelimit-reset-requests"] = duration(self.reset_requests)
        if q.tokens_per_minute is not None:
            out["x-ratelimit-limit-tokens"] = str(q.tokens_per_minute)
            out["x-ratelimit-remaining-tokens"] = str(max(0, self.remaining_tokens or 0))
            out["x-ratelimit-reset-tokens"] = duration(self.reset_tokens)
        return out


def duration(seconds: float) -> str:
    """OpenAI's style: ``120ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if round(seconds, 1) < 60:
        return f"{round(seconds, 1):g}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest}s"


class RateLimiter(Protocol):
    async def acquire(self, key: str, quota: Quota, tokens: int) -> Decision: ...

    async def adjust(self, key: str, quota: Quota, tokens: int) -> None:
        """Charge ``tokens`` more (negative: give back) to the tokens bucket of ``key``."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Buckets:
    requests: float
    tokens: float
    at: float


def take(
    requests: float, tokens: float, elapsed: float, quota: Quota, want: int
) -> tuple[bool, float, float, float]:
    """One admission on bucket levels after ``elapsed`` seconds: (allowed, requests, tokens, retry_after).

    The same arithmetic runs in the Redis script, so both stores behave alike.
    """
    rpm, tpm = quota.requests_per_minute, quota.tokens_per_minute
    requests, tokens = refill(requests, tokens, elapsed, quota)
    waits = [0.0]
    if rpm is not None and requests < 1:
        waits.append((1 - requests) * 60 / rpm)
    if tpm is not None and tokens < min(want, tpm):
        waits.append((min(want, tpm) - tokens) * 60 / tpm)
    wait = max(waits)
    if wait > 0:
        return False, requests, tokens, wait
    if rpm is not None:
        requests -= 1
    if tpm is not None:
        tokens -= want
    return True, requests, tokens, 0.0


def refill(requests: float, tokens: float, elapsed: float, quota: Quota) -> tuple[float, float]:
    """Bucket levels after ``elapsed`` seconds of refilling at limit/60 a second, capped at the limit."""
    rpm, tpm = quota.requests_per_minute, quota.tokens_per_minute
    if rpm is not None:
        requests = min(float(rpm), requests + elapsed * rpm / 60)
    if tpm is not None:
        tokens = min(float(tpm), tokens + elapsed * tpm / 60)
    return requests, tokens


def decision(allowed: bool, wait: float, quota: Quota, requests: float, tokens: float) -> Decision:
    rpm, tpm = quota.requests_per_minute, quota.tokens_per_minute
    return Decision(
        allowed=allowed,
        retry_after=wait,
        quota=quota,
        remaining_requests=math.floor(requests) if rpm is not None else None,
        remaining_tokens=math.floor(tokens) if tpm is not None else None,
        reset_requests=(rpm - requests) * 60 / rpm if rpm else 0.0,
        reset_tokens=(tpm - tokens) * 60 / tpm if tpm else 0.0,
    )


class MemoryRateLimiter:
    """Buckets in this process (one worker). ``clock`` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._buckets: dict[str, _Buckets] = {}
        self._max_keys = max_keys

    def _get(self, key: str, quota: Quota, now: float) -> _Buckets:
        found = self._buckets.get(key)
        if found is None:
            if len(self._buckets) >= self._max_keys:
                self._buckets.pop(next(iter(self._buckets)))
            found = self._buckets[key] = _Buckets(
                float(quota.requests_per_minute or 0), float(quota.tokens_per_minute or 0), now
            )
        return found

    async def acquire(self, key: str, quota: Quota, tokens: int) -> Decision:
        now = self._clock()
        b = self._get(key, quota, now)
        allowed, requests, level, wait = take(b.requests, b.tokens, now - b.at, quota, tokens)
        b.requests, b.tokens, b.at = requests, level, now
        return decision(allowed, wait, quota, requests, level)

    async def adjust(self, key: str, quota: Quota, tokens: int) -> None:
        b = self._buckets.get(key)
        if b is not None and quota.tokens_per_minute is not None:
            now = self._clock()
            b.requests, level = refill(b.requests, b.tokens, now - b.at, quota)
            b.tokens, b.at = min(float(quota.tokens_per_minute), level - tokens), now

    async def close(self) -> None:
        self._buckets.clear()
