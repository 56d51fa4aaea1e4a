"""Router: a route's token reservation over its attempts (refunded, settled), and the first route a model names."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from lip.config.loader import Backend
from lip.config.schema import BackendConfig, Limits, ModelConfig
from lip.core.errors import Forbidden, ProxyError, RateLimited, UpstreamStatus
from lip.core.model import ChatRequest, Finish, Message, ResponseStart, StreamEvent, TextDelta, Usage, UsageReport
from lip.limits.admission import Admitter
from lip.limits.ratelimit import Decision, MemoryRateLimiter, Quota
from lip.limits.tokens import TokenCounter
from lip.routing.chain import branch_request
from lip.routing.resolve import BackendRuntime
from lip.routing.rewrites import Rewrites
from lip.routing.router import Router
from lip.routing.selector import Selector, parse_plan
from shared_data import shared_encoding

RPM, TPM = 100, 10_000
QUOTA = Quota(requests_per_minute=RPM, tokens_per_minute=TPM)
USED = 1234  # the total tokens the scripted upstream reports


class Scripted:
    """A connector answering each call from a script: an error raised before the first event, or an answer."""

    def __init__(self, *failures: ProxyError) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def stream(self, request: ChatRequest, upstream_model: str) -> AsyncGenerator[StreamEvent, None]:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        yield ResponseStart(id="r", model=upstream_model, created=0)
        yield TextDelta("hi")
        yield Finish("stop")
        yield UsageReport(Usage(input_tokens=USED - 1, output_tokens=1))


class Tier:
    """A client's tier: its own default route, and only ``allowed`` labels."""

    def __init__(self, default: Selector | None, allowed: set[str]) -> None:
        self.default = default
        self.allowed = allowed

    def check(self, label: str) -> None:
        if label not in self.allowed:
            raise Forbidden(f"{label} is not allowed")


def backend(name: str, models: dict[str, ModelConfig], **settings: Any) -> Backend:
    config = BackendConfig(backend_type="custom", api_base_url="https://upstream.test/v1", models=models, **settings)
    return Backend(name=name, config=config, source="test", root_type="custom", preset=False)


def router(connector: Scripted, limiter: MemoryRateLimiter, *, rewrites: Rewrites | None = None,
           sleep: Any = None, **settings: Any) -> Router:
    limited = ModelConfig(limits=Limits(requests_per_minute=RPM,
                                        tokens_per_minute=TPM))
    runtimes = {
        "up": BackendRuntime(backend("up", {"m": limited, "free": ModelConfig()}, **settings), connector),
        "other": BackendRuntime(backend("other", {"x": ModelConfig()}), connector),
    }

    async def no_wait(seconds: float) -> None:
        return None

    return Router(runtimes, Selector("up", "m"), Admitter(TokenCounter(shared_encoding)), limiter,
                  rewrites=rewrites, sleep=sleep or no_wait, rng=lambda: 0.5)


def request(model: str = "up:m", **parameters: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=(Message("user", "Say hi."),), parameters={"max_tokens": 50, **parameters})


def tokens_left(limiter: MemoryRateLimiter) -> int | None:
    return asyncio.run(limiter.acquire("up:m", QUOTA, 0)).remaining_tokens


async def answer(r: Router, req: ChatRequest) -> list[StreamEvent]:
    call = await r.open(req)
    return [event async for event in call.events]


def failure() -> UpstreamStatus:
    return UpstreamStatus("upstream is down", status=503)


def test_an_answer_is_charged_the_usage_its_upstream_reported() -> None:
    limiter = MemoryRateLimiter(clock=lambda: 0.0)
    events = asyncio.run(answer(router(Scripted(), limiter), request()))
    assert isinstance(events[-1], UsageReport)
    assert tokens_left(limiter) == TPM - USED  # not the reservation (input + 50)


def test_the_route_headers_come_from_its_reservation() -> None:
    limiter = MemoryRateLimiter(clock=lambda: 0.0)
    call = asyncio.run(router(Scripted(), limiter).open(request()))
    assert call.headers["x-ratelimit-limit-tokens"] == "10000"
    reserved = TPM - int(call.headers["x-ratelimit-remaining-tokens"])
    assert reserved == (call.input_tokens or 0) + 50


def test_retries_share_one_reservation_and_the_answer_settles_it() -> None:
    limiter, connector = MemoryRateLimiter(clock=lambda: 0.0), Scripted(failure(), failure())
    asyncio.run(answer(router(connector, limiter, max_retries=2), request()))
    assert connector.calls == 3
    assert tokens_left(limiter) == TPM - USED


def test_a_route_that_fails_every_attempt_gives_its_tokens_back() -> None:
    limiter, connector = MemoryRateLimiter(clock=lambda: 0.0), Scripted(failure(), failure())
    with pytest.raises(UpstreamStatus) as failed:
        asyncio.run(answer(router(connector, limiter, max_retries=1), request()))
    assert connector.calls == 2
    assert failed.value.headers["x-ratelimit-limit-tokens"] == "10000"  # the route's headers on the error
    after = asyncio.run(limiter.acquire("up:m", QUOTA, 0))
    assert after.remaining_tokens == TPM
    assert after.remaining_requests == RPM - 2  # the failed request and this one


def test_a_call_cancelled_while_waiting_to_retry_gives_its_tokens_back() -> None:
    async def cancelled(seconds: float) -> None:
        raise asyncio.CancelledError

    limiter = MemoryRateLimiter(clock=lambda: 0.0)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(answer(router(Scripted(failure()), limiter, sleep=cancelled), request()))
    assert tokens_left(limiter) == TPM


def test_a_route_out_of_tokens_is_rate_limited_naming_its_limits() -> None:
    limiter = MemoryRateLimiter(clock=lambda: 0.0)
    asyncio.run(limiter.acquire("up:m", QUOTA, TPM))  # another request took them all
    with pytest.raises(RateLimited, match=r"^Rate limit of up:m reached \(100 requests/min, 10000 tokens/min\); "
                                          r"retry in \d+\.\d s\.$") as limited:
        asyncio.run(router(Scripted(), limiter).open(request()))
    assert limited.value.headers["x-ratelimit-remaining-tokens"] == "0"


def test_a_route_without_limits_reserves_nothing() -> None:
    taken: list[str] = []

    class Noting(MemoryRateLimiter):
        async def acquire(self, key: str, quota: Quota, tokens: int) -> Decision:
            taken.append(key)
            return await super().acquire(key, quota, tokens)

    call = asyncio.run(router(Scripted(), Noting()).open(request("up:free")))
    assert call.headers == {}
    assert call.input_tokens is None
    assert taken == []


def test_the_first_route_is_that_of_the_first_branch_after_rewrites() -> None:
    r = router(Scripted(), MemoryRateLimiter(), rewrites=Rewrites([("fast", "other:x|up:m")]))
    assert r.plan("fast") == ("other:x|up:m", parse_plan("other:x|up:m"))
    assert r.first_route("fast").label == "other:x"
    assert r.first_route("up:free|other:x").label == "up:free"


def test_the_first_route_as_a_tier_allows_it() -> None:
    r = router(Scripted(), MemoryRateLimiter())
    tier = Tier(Selector("other", "x"), {"other:x"})
    assert r.first_route("", tier).label == "other:x"  # the tier's default route, not the proxy's
    assert r.allowed("", None).label == "up:m"
    with pytest.raises(Forbidden, match="up:m is not allowed"):
        r.first_route("up:m", tier)
    with pytest.raises(Forbidden):
        asyncio.run(r.count_tokens(request("up:m"), tier))


def test_a_branch_request_layers_session_over_uri_over_body() -> None:
    body = request(temperature=0.1, top_p=0.5)
    branch = parse_plan("up:m?temperature=0.7&seed=3").groups[0][0]
    assert branch_request(body, parse_plan("up:m").groups[0][0], None) is body
    layered = branch_request(body, branch, {"seed": 9})
    assert dict(layered.parameters) == {"max_tokens": 50, "temperature": 0.7, "top_p": 0.5, "seed": 9}
