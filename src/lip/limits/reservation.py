"""Tokens reserved in a rate limiter for one call: taken at admission, refunded on failure, then settled.

Admission takes one request and the tokens a call may use (input + requested output) from a key's
buckets (``reserve``; a refusal is a 429 naming who is limited). A call that fails before it
answers gives its tokens back (``refund``; the request itself still counts); one that answers is
charged what the upstream reported instead of the reservation (``settle``). The router reserves
per route (a model's limits), the client quota per client (a tier's limits): one cycle for both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lip.core.errors import RateLimited
from lip.limits.ratelimit import Quota, RateLimiter


@dataclass(frozen=True, slots=True)
class Reservation:
    """``tokens`` taken from the buckets of ``key`` under ``quota``; ``headers``: the x-ratelimit-* after it."""

    limiter: RateLimiter
    key: str
    quota: Quota
    tokens: int
    headers: dict[str, str]

    @property
    def metered(self) -> bool:
        """Whether the key has a tokens bucket (else neither refund nor settle changes anything)."""
        return self.quota.tokens_per_minute is not None

    async def refund(self) -> None:
        """Give the reserved tokens back: a failed call is not charged tokens (its request still counts)."""
        if self.tokens and self.metered:
            await self.limiter.adjust(self.key, self.quota, -self.tokens)

    async def settle(self, used: int) -> None:
        """Charge ``used`` tokens (what the upstream reported) instead of the reservation."""
        if self.metered:
            await self.limiter.adjust(self.key, self.quota, used - self.tokens)


async def reserve(
    limiter: RateLimiter, key: str, quota: Quota, tokens: int, *, refused: Callable[[], str]
) -> Reservation:
    """One request and ``tokens`` from the buckets of ``key``; when they are short, RateLimited
    saying ``refused()`` (who reached which limit) and when to retry."""
    decision = await limiter.acquire(key, quota, tokens)
    headers = decision.headers()
    if not decision.allowed:
        raise RateLimited(f"{refused()}; retry in {decision.retry_after:.1f} s.", retry_after=decision.retry_after,
                          headers=headers)
    return Reservation(limiter, key, quota, tokens, headers)
