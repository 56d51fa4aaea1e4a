"""lip.access.quota: a client's tier limits (requests and tokens per minute) taken, given back and reconciled.

Observed through what the client is told (the x-ratelimit-* headers of its next admission, or its 429),
over the in-process limiter with a clock that only moves when a test moves it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from lip.access.clients import Client
from lip.access.quota import ClientLimits
from lip.config.schema import TierConfig
from lip.core.errors import RateLimited
from lip.core.model import ChatRequest, Message, Usage
from lip.limits.admission import Admitter
from lip.limits.ratelimit import MemoryRateLimiter
from lip.limits.tokens import TokenCounter
from shared_data import shared_encoding

TEXT = "Summarise the plot of Hamlet in three sentences."


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def setup() -> tuple[ClientLimits, Admitter, Clock]:
    clock = Clock()
    admitter = Admitter(TokenCounter(shared_encoding))
    return ClientLimits(admitter, MemoryRateLimiter(clock=clock)), admitter, clock


def tier_client(name: str = "alice", rpm: int | None = None, tpm: int | None = None) -> Client:
    return Client(name, "t", False, TierConfig(requests_per_minute=rpm, tokens_per_minute=tpm))


def chat(max_tokens: int | None = None) -> ChatRequest:
    params = {} if max_tokens is None else {"max_tokens": max_tokens}
    return ChatRequest(model="mock:echo", messages=(Message("user", TEXT),), parameters=params)


def remaining(headers: dict[str, str], what: str) -> int:
    return int(headers[f"x-ratelimit-remaining-{what}"])


async def settle() -> None:
    for _ in range(5):  # reconciling runs in the background
        await asyncio.sleep(0)


def test_no_client_or_no_quota_admits_without_a_grant() -> None:
    limits, _, _ = setup()

    async def go() -> tuple[object, object]:
        return await limits.admit(None, chat()), await limits.admit(tier_client(), chat())

    assert asyncio.run(go()) == (None, None)


def test_requests_per_minute_are_counted_and_then_refused_with_retry_after() -> None:
    limits, _, clock = setup()
    alice = tier_client(rpm=2)

    async def go() -> None:
        first = await limits.admit(alice, chat())
        assert first is not None
        assert first.headers["x-ratelimit-limit-requests"] == "2" and remaining(first.headers, "requests") == 1
        assert "x-ratelimit-limit-tokens" not in first.headers
        await limits.admit(alice, chat())
        with pytest.raises(RateLimited) as refused:
            await limits.admit(alice, chat())
        error = refused.value
        assert error.status == 429 and error.retry_after == pytest.approx(30.0)  # one request per 30 s
        assert error.message == "Client 'alice' reached its tier's limit; retry in 30.0 s."
        assert error.headers["x-ratelimit-remaining-requests"] == "0"
        assert (await limits.admit(tier_client("bob", rpm=2), chat())) is not None  # bob has his own buckets
        clock.now += 30.0
        assert (await limits.admit(alice, chat())) is not None

    asyncio.run(go())


def test_the_reservation_is_the_counted_input_plus_the_requested_output() -> None:
    limits, admitter, _ = setup()
    alice = tier_client(tpm=10_000)

    async def go() -> None:
        request = chat(max_tokens=500)
        counted = await admitter.count(request, "o200k_base")
        assert counted > 0
        grant = await limits.admit(alice, request)
        assert grant is not None and remaining(grant.headers, "tokens") == 10_000 - counted - 500
        nothing_asked = await limits.admit(alice, chat())
        assert nothing_asked is not None
        assert remaining(nothing_asked.headers, "tokens") == 10_000 - 2 * counted - 500

    asyncio.run(go())


def test_a_refund_gives_the_reservation_back() -> None:
    limits, admitter, _ = setup()
    alice = tier_client(tpm=10_000)

    async def go() -> None:
        request = chat(max_tokens=1000)
        counted = await admitter.count(request, "o200k_base")
        grant = await limits.admit(alice, request)
        await limits.refund(grant)
        after = await limits.admit(alice, chat())
        assert after is not None and remaining(after.headers, "tokens") == 10_000 - counted
        await limits.refund(None)  # nothing reserved: nothing to do

    asyncio.run(go())


@pytest.mark.parametrize(("max_tokens", "usage", "charged"), [
    (1000, Usage(input_tokens=40, output_tokens=60), lambda counted: 100),  # what the upstream reported
    (10, Usage(input_tokens=3000, output_tokens=2000), lambda counted: 5000),  # more than was reserved
    (700, None, lambda counted: counted + 700),  # no usage: the reservation stands
])
def test_reconcile_charges_what_the_upstream_reported_else_the_reservation_stands(
        max_tokens: int, usage: Usage | None, charged: Callable[[int], int]) -> None:
    limits, admitter, _ = setup()
    alice = tier_client(tpm=10_000)

    async def go() -> None:
        request = chat(max_tokens=max_tokens)
        counted = await admitter.count(request, "o200k_base")
        grant = await limits.admit(alice, request)
        limits.reconcile(grant, usage)
        limits.reconcile(None, Usage(input_tokens=1))  # no grant (no client): nothing to do
        await settle()
        after = await limits.admit(alice, chat())
        assert after is not None and remaining(after.headers, "tokens") == 10_000 - charged(counted) - counted

    asyncio.run(go())


def test_tokens_per_minute_refuse_a_request_the_bucket_cannot_hold() -> None:
    limits, _, clock = setup()
    alice = tier_client(tpm=1000)

    async def go() -> None:
        await limits.admit(alice, chat(max_tokens=900))
        with pytest.raises(RateLimited) as refused:
            await limits.admit(alice, chat(max_tokens=900))
        assert refused.value.retry_after is not None and 0 < refused.value.retry_after <= 60.0
        assert refused.value.headers["x-ratelimit-limit-tokens"] == "1000"
        clock.now += 60.0  # a full minute refills the bucket
        assert (await limits.admit(alice, chat(max_tokens=900))) is not None

    asyncio.run(go())
