"""lip.limits.reservation: tokens reserved in a limiter, refunded on failure, settled with the usage reported."""

from __future__ import annotations

import asyncio

import pytest

from lip.core.errors import RateLimited
from lip.limits.ratelimit import Decision, MemoryRateLimiter, Quota
from lip.limits.reservation import Reservation, reserve

KEY = "client:alice"
TOKENS = Quota(requests_per_minute=10, tokens_per_minute=1000)


def limiter() -> MemoryRateLimiter:
    return MemoryRateLimiter(clock=lambda: 0.0)  # time stands still: no refill between steps


def take(rl: MemoryRateLimiter, quota: Quota, tokens: int) -> Reservation:
    return asyncio.run(reserve(rl, KEY, quota, tokens, refused=lambda: "Alice reached her limit"))


def levels(rl: MemoryRateLimiter, quota: Quota) -> Decision:
    """The buckets as the next request would find them (it takes one request and no tokens)."""
    return asyncio.run(rl.acquire(KEY, quota, 0))


def test_a_reservation_takes_a_request_and_its_tokens_and_says_what_is_left() -> None:
    rl = limiter()
    reservation = take(rl, TOKENS, 300)
    assert (reservation.key, reservation.quota, reservation.tokens) == (KEY, TOKENS, 300)
    assert reservation.metered
    assert reservation.headers["x-ratelimit-remaining-tokens"] == "700"
    assert reservation.headers["x-ratelimit-remaining-requests"] == "9"
    assert levels(rl, TOKENS).remaining_tokens == 700


def test_a_refund_gives_the_tokens_back_but_the_request_still_counts() -> None:
    rl = limiter()
    reservation = take(rl, TOKENS, 300)
    asyncio.run(reservation.refund())
    after = levels(rl, TOKENS)
    assert after.remaining_tokens == 1000
    assert after.remaining_requests == 8  # the refunded request and this one


def test_settling_charges_what_was_used_instead_of_the_reservation() -> None:
    rl = limiter()
    more, less = take(rl, TOKENS, 300), take(rl, TOKENS, 200)
    asyncio.run(more.settle(450))  # the answer was longer than reserved
    asyncio.run(less.settle(50))
    assert levels(rl, TOKENS).remaining_tokens == 1000 - 450 - 50


def test_a_refusal_is_a_429_naming_who_and_when_and_takes_nothing() -> None:
    rl, quota = limiter(), Quota(requests_per_minute=1)
    take(rl, quota, 0)
    with pytest.raises(RateLimited) as refused:
        take(rl, quota, 0)
    error = refused.value
    assert error.message == "Alice reached her limit; retry in 60.0 s."
    assert error.retry_after == pytest.approx(60.0)
    assert error.headers["x-ratelimit-limit-requests"] == "1"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"


def test_tokens_beyond_what_is_left_are_refused() -> None:
    rl = limiter()
    take(rl, TOKENS, 900)
    with pytest.raises(RateLimited, match=r"retry in 12\.0 s"):  # 200 tokens short at 1000 a minute
        take(rl, TOKENS, 300)
    assert levels(rl, TOKENS).remaining_tokens == 100


def test_without_a_tokens_limit_refund_and_settle_change_nothing() -> None:
    calls: list[tuple[str, int]] = []

    class Recording(MemoryRateLimiter):
        async def adjust(self, key: str, quota: Quota, tokens: int) -> None:
            calls.append((key, tokens))
            await super().adjust(key, quota, tokens)

    rl, quota = Recording(clock=lambda: 0.0), Quota(requests_per_minute=10)
    reservation = take(rl, quota, 300)
    assert not reservation.metered
    asyncio.run(reservation.refund())
    asyncio.run(reservation.settle(5000))
    assert calls == []
    assert "x-ratelimit-limit-tokens" not in reservation.headers


def test_an_empty_reservation_has_nothing_to_refund() -> None:
    calls: list[int] = []

    class Recording(MemoryRateLimiter):
        async def adjust(self, key: str, quota: Quota, tokens: int) -> None:
            calls.append(tokens)

    rl = Recording(clock=lambda: 0.0)
    reservation = take(rl, TOKENS, 0)
    asyncio.run(reservation.refund())
    asyncio.run(reservation.settle(40))
    assert calls == [40]
