"""lip.limits.ratelimit: the in-process token buckets, with a fake clock; headers and durations."""

from __future__ import annotations

import asyncio

import pytest

from lip.limits.ratelimit import Decision, MemoryRateLimiter, Quota, duration

KEY = "backend:model"
REQUEST_HEADERS = {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"}
TOKEN_HEADERS = {"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"}


class Clock:
    """A list-backed clock: ``now[0]`` is the time; ``advance`` moves it."""

    def __init__(self) -> None:
        self.now = [0.0]

    def __call__(self) -> float:
        return self.now[0]

    def advance(self, seconds: float) -> None:
        self.now[0] += seconds


def limiter(clock: Clock, **kwargs: int) -> MemoryRateLimiter:
    return MemoryRateLimiter(clock=clock, **kwargs)


def acquire(rl: MemoryRateLimiter, quota: Quota, tokens: int = 0, key: str = KEY) -> Decision:
    return asyncio.run(rl.acquire(key, quota, tokens))


def adjust(rl: MemoryRateLimiter, quota: Quota, tokens: int, key: str = KEY) -> None:
    asyncio.run(rl.adjust(key, quota, tokens))


# ---- requests per minute ---------------------------------------------------------------------------


def test_rpm_two_denies_the_third_until_a_request_refills() -> None:
    clock = Clock()
    rl, quota = limiter(clock), Quota(requests_per_minute=2)
    first, second = acquire(rl, quota), acquire(rl, quota)
    assert first.allowed and second.allowed
    assert (first.remaining_requests, second.remaining_requests) == (1, 0)
    assert first.retry_after == 0.0
    third = acquire(rl, quota)
    assert not third.allowed
    assert third.retry_after == pytest.approx(30.0)
    clock.advance(29.9)
    early = acquire(rl, quota)
    assert not early.allowed
    assert early.retry_after == pytest.approx(0.1)
    clock.advance(0.1)
    assert acquire(rl, quota).allowed
    assert not acquire(rl, quota).allowed


def test_a_quiet_minute_refills_the_whole_burst_and_no_more() -> None:
    clock = Clock()
    rl, quota = limiter(clock), Quota(requests_per_minute=3)
    assert all(acquire(rl, quota).allowed for _ in range(3))
    clock.advance(600)  # ten quiet minutes still only fill the bucket once
    assert all(acquire(rl, quota).allowed for _ in range(3))
    assert not acquire(rl, quota).allowed


def test_no_quota_always_allows() -> None:
    rl = limiter(Clock())
    for _ in range(100):
        d = acquire(rl, Quota(), 10_000)
        assert d.allowed
        assert d.headers() == {}
        assert (d.remaining_requests, d.remaining_tokens) == (None, None)


# ---- tokens per minute -----------------------------------------------------------------------------


def test_tpm_reservation_and_denial_with_retry_after() -> None:
    clock = Clock()
    rl, quota = limiter(clock), Quota(tokens_per_minute=600)  # refills 10 tokens a second
    d = acquire(rl, quota, 400)
    assert d.allowed
    assert d.remaining_tokens == 200
    denied = acquire(rl, quota, 300)
    assert not denied.allowed
    assert denied.retry_after == pytest.approx(100 / (600 / 60))  # missing / (tpm / 60)
    assert denied.remaining_tokens == 200  # nothing taken
    clock.advance(5)
    again = acquire(rl, quota, 300)
    assert not again.allowed
    assert again.retry_after == pytest.approx(5.0)
    clock.advance(5)
    ok = acquire(rl, quota, 300)
    assert ok.allowed
    assert ok.remaining_tokens == 0


def test_tokens_refill_over_time_up_to_the_limit() -> None:
    clock = Clock()
    rl, quota = limiter(clock), Quota(tokens_per_minute=6_000)  # 100 a second
    assert acquire(rl, quota, 6_000).remaining_tokens == 0
    clock.advance(12)
    assert acquire(rl, quota, 0).remaining_tokens == 1_200
    clock.advance(3_600)
    assert acquire(rl, quota, 0).remaining_tokens == 6_000


def test_adjust_refund_gives_tokens_back() -> None:
    clock = Clock()
    rl, quota = limiter(clock), Quota(tokens_per_minute=600)
    assert acquire(rl, quota, 500).allowed
    assert not acquire(rl, quota, 400).allowed
    adjust(rl, quota, -300)  # the upstream used 300 fewer than reserved
    d = acquire(rl, quota, 400)
    assert d.allowed
    assert d.remaining_tokens == 0


def test_adjust_refund_never_overfills_the_bucket() -> None:
    rl, quota = limiter(Clock()), Quota(tokens_per_minute=600)
    acquire(rl, quota, 100)
    adjust(rl, quota, -10_000)
    assert acquire(rl, quota, 0).remaining_tokens == 600


def test_adjust_charge_can_go_below_zero_and_delays_later_requests() -> None:
    clock = Clock()
    rl, quota = limiter(clock), Quota(tokens_per_minute=600)
    assert acquire(rl, quota, 100).remaining_tokens == 500
    adjust(rl, quota, 800)  # the upstream used 800 more than reserved
    denied = acquire(rl, quota, 1)
    assert not denied.allowed
    assert denied.remaining_tokens == -300
    assert denied.retry_after == pytest.approx((1 + 300) / 10)
    assert denied.headers()["x-ratelimit-remaining-tokens"] == "0"
    clock.advance(30.1)
    assert acquire(rl, quota, 1).allowed


def test_a_charge_after_a_long_call_is_not_forgiven() -> None:
    clock = Clock()
    rl, quota = limiter(clock), Quota(tokens_per_minute=600)
    assert acquire(rl, quota, 100).allowed  # level 500 at t=0
    clock.advance(60)  # the call streams for a minute: the bucket is full again (600)
    adjust(rl, quota, 300)  # it used 300 more than reserved: 300 left
    d = acquire(rl, quota, 400)
    assert not d.allowed
    assert d.retry_after == pytest.approx(10.0)


def test_adjust_of_an_unknown_key_or_without_tpm_does_nothing() -> None:
    clock = Clock()
    rl = limiter(clock)
    quota = Quota(tokens_per_minute=600)
    adjust(rl, quota, 10_000, key="never-seen")
    assert acquire(rl, quota, 0, key="never-seen").remaining_tokens == 600
    rpm_only = Quota(requests_per_minute=1)
    assert acquire(rl, rpm_only, 0, key="rpm").allowed
    adjust(rl, rpm_only, -10, key="rpm")  # no tokens bucket: not a request refund either
    assert not acquire(rl, rpm_only, 0, key="rpm").allowed


def test_a_reservation_larger_than_a_minute_waits_for_a_full_bucket() -> None:
    clock = Clock()
    rl, quota = limiter(clock), Quota(tokens_per_minute=600)
    assert acquire(rl, quota, 100).allowed
    denied = acquire(rl, quota, 1_000)
    assert not denied.allowed
    assert denied.retry_after == pytest.approx(10.0)  # until the bucket is full, not forever
    clock.advance(10)
    ok = acquire(rl, quota, 1_000)
    assert ok.allowed
    assert ok.remaining_tokens == -400  # driven negative
    after = acquire(rl, quota, 1)
    assert not after.allowed
    assert after.retry_after == pytest.approx(40.1)


def test_a_huge_reservation_on_a_fresh_bucket_is_admitted() -> None:
    rl, quota = limiter(Clock()), Quota(tokens_per_minute=600)
    d = acquire(rl, quota, 5_000)
    assert d.allowed
    assert d.remaining_tokens == -4_400


# ---- both buckets at once --------------------------------------------------------------------------


def test_a_token_denial_does_not_consume_a_request() -> None:
    clock = Clock()
    rl, quota = limiter(clock), Quota(requests_per_minute=2, tokens_per_minute=100)
    assert acquire(rl, quota, 100).allowed  # requests 1, tokens 0
    for _ in range(5):
        denied = acquire(rl, quota, 10)
        assert not denied.allowed
        assert denied.remaining_requests == 1
    clock.advance(6)  # tokens back to 10; requests 1.2
    ok = acquire(rl, quota, 10)
    assert ok.allowed
    assert (ok.remaining_requests, ok.remaining_tokens) == (0, 0)


def test_a_request_denial_does_not_consume_tokens() -> None:
    clock = Clock()
    rl, quota = limiter(clock), Quota(requests_per_minute=1, tokens_per_minute=600)
    assert acquire(rl, quota, 100).remaining_tokens == 500
    for _ in range(3):
        denied = acquire(rl, quota, 100)
        assert not denied.allowed
        assert denied.remaining_tokens == 500
        assert denied.retry_after == pytest.approx(60.0)
    clock.advance(60)
    assert acquire(rl, quota, 600).allowed  # the bucket refilled to 600: nothing was taken


def test_retry_after_is_the_longer_of_both_waits() -> None:
    clock = Clock()
    rl, quota = limiter(clock), Quota(requests_per_minute=60, tokens_per_minute=600)
    assert acquire(rl, quota, 600).allowed
    denied = acquire(rl, quota, 300)
    assert denied.retry_after == pytest.approx(30.0)  # tokens: 30 s; requests: none needed


# ---- headers and durations -------------------------------------------------------------------------


def test_headers_with_both_limits() -> None:
    rl = limiter(Clock())
    d = acquire(rl, Quota(requests_per_minute=2, tokens_per_minute=600), 100)
    assert d.headers() == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "30s",
        "x-ratelimit-limit-tokens": "600",
        "x-ratelimit-remaining-tokens": "500",
        "x-ratelimit-reset-tokens": "10s",
    }


def test_headers_with_requests_only() -> None:
    d = acquire(limiter(Clock()), Quota(requests_per_minute=10))
    assert set(d.headers()) == REQUEST_HEADERS
    assert d.headers()["x-ratelimit-reset-requests"] == "6s"


def test_headers_with_tokens_only() -> None:
    d = acquire(limiter(Clock()), Quota(tokens_per_minute=1_000), 1)
    assert set(d.headers()) == TOKEN_HEADERS
    assert d.headers()["x-ratelimit-remaining-tokens"] == "999"
    assert d.headers()["x-ratelimit-reset-tokens"] == "60ms"


def test_headers_of_a_denial() -> None:
    rl = limiter(Clock())
    quota = Quota(requests_per_minute=1, tokens_per_minute=60)
    acquire(rl, quota, 60)
    denied = acquire(rl, quota, 1)
    assert not denied.allowed
    assert denied.headers() == {
        "x-ratelimit-limit-requests": "1",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "60",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "1m0s",
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.12, "120ms"),
        (0.0, "0ms"),
        (0.0004, "1ms"),
        (0.999, "999ms"),
        (1.0, "1s"),
        (1.5, "1.5s"),
        (1.04, "1s"),
        (30.0, "30s"),
        (59.9, "59.9s"),
        (60.0, "1m0s"),
        (90.0, "1m30s"),
        (360.0, "6m0s"),
        (3_600.0, "60m0s"),
    ],
)
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_duration_just_below_a_minute() -> None:
    assert duration(59.96) == "1m0s"


# ---- keys ------------------------------------------------------------------------------------------


def test_keys_are_independent() -> None:
    rl, quota = limiter(Clock()), Quota(requests_per_minute=1, tokens_per_minute=100)
    assert acquire(rl, quota, 100, key="a:x").allowed
    assert not acquire(rl, quota, 1, key="a:x").allowed
    other = acquire(rl, quota, 100, key="b:y")
    assert other.allowed
    assert other.remaining_tokens == 0
    adjust(rl, quota, -100, key="b:y")  # a refund to one key is not a refund to another
    assert not acquire(rl, quota, 1, key="a:x").allowed


def test_max_keys_evicts_the_oldest_key() -> None:
    rl, quota = limiter(Clock(), max_keys=2), Quota(requests_per_minute=1)
    assert acquire(rl, quota, key="a").allowed
    assert acquire(rl, quota, key="b").allowed
    assert acquire(rl, quota, key="c").allowed  # evicts "a"
    assert not acquire(rl, quota, key="b").allowed  # still tracked
    assert not acquire(rl, quota, key="c").allowed
    assert acquire(rl, quota, key="a").allowed  # forgotten: a fresh bucket (evicts "b")
    assert not acquire(rl, quota, key="c").allowed
    assert acquire(rl, quota, key="b").allowed


def test_close_forgets_every_bucket() -> None:
    rl, quota = limiter(Clock()), Quota(requests_per_minute=1)
    assert acquire(rl, quota).allowed
    assert not acquire(rl, quota).allowed
    asyncio.run(rl.close())
    assert acquire(rl, quota).allowed
