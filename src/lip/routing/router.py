"""From a client's request to an upstream stream that has started: plan, admit, call, retry, fail over.

``open`` rewrites the model name, parses the selector into a plan (failover groups of weighted
branches), and walks it: each route is resolved, skipped when its ``max_context`` is too small or
its circuit is open, admitted against its limits, and called with retries; a failure that another
route may cure (upstream 5xx/429/time-outs after retries, the route's own limits, an upstream
context-length error) moves on to the next route. Everything happens before the first byte reaches
the client; after it the stream is committed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

from lip.config.schema import RoutingConfig
from lip.core.errors import (
    BackendUnavailable,
    ProxyError,
    RateLimited,
    UpstreamTimeout,
)
from lip.core.model import ChatRequest, StreamEvent, UsageReport
from lip.limits.admission import Admitter
from lip.limits.ratelimit import Quota, RateLimiter
from lip.observability import attempts
from lip.routing import selector
from lip.routing.breaker import Breakers, BreakerStore
from lip.routing.chain import Chain, option
from lip.routing.continuation import Handover
from lip.routing.resolve import BackendRuntime, Resolver, Route
from lip.routing.retry import delay_before_retry
from lip.routing.rewrites import Rewrites

log = logging.getLogger("lip.router")


@dataclass(slots=True)
class Call:
    """An upstream call that has produced its first event."""

    route: Route
    request: ChatRequest  # as sent upstream (defaults and output cap applied)
    events: AsyncIterator[StreamEvent]
    headers: dict[str, str]  # x-ratelimit-* of the route
    upstream_started: float = 0.0  # perf_counter() when the first upstream attempt began
    input_tokens: int | None = None  # counted at admission, when it was
    handovers: list[Handover] = field(default_factory=list)  # mid-stream continuations, as they happen


@dataclass(slots=True)
class _Budget:
    attempts: int


class Access(Protocol):
    """What a client's tier says about routes (see lip.access)."""

    @property
    def default(self) -> selector.Selector | None: ...

    def check(self, label: str) -> None:
        """Raise Forbidden when the route is not allowed."""
        ...


class Router(Resolver):
    def __init__(
        self,
        runtimes: Mapping[str, BackendRuntime],
        default: selector.Selector,
        admitter: Admitter,
        limiter: RateLimiter,
        *,
        settings: RoutingConfig | None = None,
        rewrites: Rewrites | None = None,
        breakers: BreakerStore | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(runtimes, default)
        self.settings = settings or RoutingConfig()
        self.rewrites = rewrites or Rewrites([])
        self.breakers: BreakerStore = breakers or Breakers(
            self.settings.breaker_failures, self.settings.breaker_cooldown
        )
        self._admitter = admitter
        self._limiter = limiter
        self._sleep = sleep
        self._rng = rng
        self._retry_hooks: list[Callable[[str], None]] = []
        self._plans: dict[str, selector.Plan] = {}
        self._no_prefill: set[str] = set()  # routes learnt to refuse a prefill (an upstream 400)

    def on_retry(self, hook: Callable[[str], None]) -> None:
        """Call ``hook(backend)`` on every retry (metrics)."""
        self._retry_hooks.append(hook)

    async def count_tokens(self, request: ChatRequest, access: Access | None = None) -> int:
        """Input tokens of ``request`` as admission would count them for its first route (which the
        client's tier must allow, as for the request itself)."""
        plan = selector.parse_plan(self.rewrites.apply(request.model))
        route = self.resolve(plan.groups[0][0].text, access.default if access is not None else None)
        if access is not None:
            access.check(route.label)
        counting = self._admitter.counting(route.label, route.upstream_model, route.config, route.runtime.connector)
        return await self._admitter.measure(request, counting)

    async def open(
        self, request: ChatRequest, overrides: Mapping[str, Any] | None = None, access: Access | None = None
    ) -> Call:
        """The first route of the plan that starts answering; the most telling error if none does.

        ``overrides`` (a session's settings) win over URI parameters, the body and model defaults;
        ``access`` (the client's tier) limits the routes and may bring its own default route. A
        stream is returned continuable: should it fail mid-answer, the chain finishes it.
        """
        text = self.rewrites.apply(request.model)
        plan = self._plan(text)
        budget = _Budget(self.settings.max_attempts)
        if plan.single:
            branch = plan.groups[0][0]
            route = self.resolve(branch.text, access.default if access is not None else None)
            if access is not None:
                access.check(route.label)
            call = await self._try(route, _with_uri(request, branch, overrides), budget)
            if not request.stream or not self._continuable(route):
                return call
            chain = Chain(self, text, [branch], request, overrides, access, budget)
            return chain.continued(call, 0)
        chain = Chain(self, text, self._ordered(plan), request, overrides, access, budget)
        call, position = await chain.first()
        return chain.continued(call, position) if request.stream and self._continuable(call.route) else call

    def _continuable(self, route: Route) -> bool:
        return self.settings.max_continuations > 0 and bool(option(route, "continuation"))

    # ---- what the chain (lip.routing.chain) asks of the router ----------------------------------
    async def try_route(self, route: Route, request: ChatRequest, budget: _Budget) -> Call:
        return await self._try(route, request, budget)

    async def count_o200k(self, request: ChatRequest) -> int:
        return await self._admitter.count(request, "o200k_base")

    def prefills(self, route: Route) -> bool:
        """Whether the route's model continues a final assistant message: configured, else learnt, else
        by protocol (Anthropic's API does; OpenAI's answers it anew, so OpenAI-protocol routes do not)."""
        if route.label in self._no_prefill:
            return False
        configured = option(route, "prefill")
        return bool(configured) if configured is not None else route.runtime.prefills

    def learn_no_prefill(self, label: str) -> None:
        if len(self._no_prefill) >= 4096:
            self._no_prefill.clear()
        self._no_prefill.add(label)

    def rng(self) -> float:
        return self._rng()

    async def pause(self, seconds: float) -> None:
        await self._sleep(seconds)

    def _plan(self, text: str) -> selector.Plan:
        """Parsed selectors are remembered (a bounded memo: clients send few distinct models)."""
        plan = self._plans.get(text)
        if plan is None:
            plan = selector.parse_plan(text)
            if len(self._plans) >= 1024:
                self._plans.clear()
            self._plans[text] = plan
        return plan

    def _ordered(self, plan: selector.Plan) -> list[selector.Branch]:
        """Groups in order; inside a group, a weighted random order (each branch once)."""
        return [branch for group in plan.groups for branch in selector.weighted_order(group, self._rng)]

    async def _try(self, route: Route, request: ChatRequest, budget: _Budget) -> Call:
        try:
            return await self._admit_and_call(route, request, budget)
        except ProxyError as error:
            if error.origin is not None:
                raise
            raise error.but(origin=(route.runtime.name, route.model, route.upstream_model)) from error

    async def _admit_and_call(self, route: Route, request: ChatRequest, budget: _Budget) -> Call:
        permit = await self.breakers.allow(route.label)
        if permit.wait is not None:
            raise BackendUnavailable(
                f"{route.label} is failing and rests for {permit.wait:.0f} s (circuit open).",
                code="circuit_open", retry_after=permit.wait,
            )
        config = route.config
        if config is None:
            return await self._attempts(route, request, Quota(), 0, {}, budget=budget, input_tokens=None,
                                        probe=permit.probe)
        if config.parameters:
            request = request.with_parameters(config.parameters)
        limits = config.limits
        quota = Quota(limits.requests_per_minute, limits.tokens_per_minute)
        if not limits.sized and not quota:
            return await self._attempts(route, request, quota, 0, {}, budget=budget, input_tokens=None,
                                        probe=permit.probe)
        counting = self._admitter.counting(route.label, route.upstream_model, config, route.runtime.connector)
        admission = await self._admitter.admit(
            request, route.model, limits, counting, need_count=quota.tokens_per_minute is not None
        )
        request = admission.request
        if not quota:
            return await self._attempts(route, request, quota, 0, admission.headers(), budget=budget,
                                        input_tokens=admission.input_tokens, probe=permit.probe)
        reserved = (admission.input_tokens or 0) + (admission.output_cap or 0)
        decision = await self._limiter.acquire(route.label, quota, reserved)
        headers = decision.headers()
        if not decision.allowed:
            raise RateLimited(
                f"Rate limit of {route.label} reached ({_quota_text(quota)}); retry in {decision.retry_after:.1f} s.",
                retry_after=decision.retry_after,
                headers=headers,
            )
        return await self._attempts(route, request, quota, reserved, {**headers, **admission.headers()},
                                    budget=budget, input_tokens=admission.input_tokens, probe=permit.probe)

    async def _attempts(
        self, route: Route, request: ChatRequest, quota: Quota, reserved: int, headers: dict[str, str],
        *, budget: _Budget, input_tokens: int | None, probe: bool = False,
    ) -> Call:
        """Call ``route`` with its retries (none for a half-open circuit's probe, nor after a time-out
        unless the backend sets ``retry_on_timeout``)."""
        connector = route.runtime.connector
        assert connector is not None  # resolve() raised for unavailable backends
        settings = route.runtime.backend.config
        attempt = 0
        started = time.perf_counter()
        while True:
            budget.attempts -= 1
            stream = connector.stream(request, route.upstream_model)
            noted = attempts.CURRENT.get()  # a traced request notes each attempt
            began = time.time() if noted is not None else 0.0
            try:
                first = await anext(stream)
            except asyncio.CancelledError:  # a hedge that lost, or a client that left: nothing was used
                await stream.aclose()
                await self._refund(route, quota, reserved)
                raise
            except StopAsyncIteration:
                error = ProxyError(f"backend '{route.runtime.name}' sent an empty answer", status=502,
                                   code="upstream_incomplete", retryable=True)
            except ProxyError as caught:
                error = caught
            else:
                if noted is not None:
                    noted.append(_attempt(route, began, None))
                meter = _Meter(self._limiter, route.label, quota, reserved) if quota.tokens_per_minute else None
                events = _resume(first, stream, self.breakers, route.label, meter)
                return Call(route, request, events, headers, started, input_tokens)
            await stream.aclose()
            if noted is not None:
                noted.append(_attempt(route, began, error.code))
            if _unwell(error):
                await self.breakers.failure(route.label)
            attempt += 1
            delay = delay_before_retry(error, attempt, settings.retry_delay, self._rng,
                                       cap=self.settings.retry_after_cap)
            if isinstance(error, UpstreamTimeout) and not settings.retry_on_timeout:
                delay = None  # a silent upstream costs one time-out: the next route is tried at once
            if delay is None or attempt > settings.max_retries or budget.attempts <= 0 or probe:
                await self._refund(route, quota, reserved)
                if headers:
                    raise error.but(headers={**headers, **error.headers}) from error
                raise error
            log.warning("retrying %s in %.2fs after %s (attempt %d of %d)", route.label, delay, error.code,
                        attempt + 1, settings.max_retries + 1)
            for hook in self._retry_hooks:
                hook(route.runtime.name)
            try:
                await self._sleep(delay)
            except asyncio.CancelledError:  # cancelled while waiting to retry: nothing was used
                await self._refund(route, quota, reserved)
                raise

    async def _refund(self, route: Route, quota: Quota, reserved: int) -> None:
        """A failed call is not charged tokens (the request itself still counts)."""
        if reserved and quota.tokens_per_minute is not None:
            await self._limiter.adjust(route.label, quota, -reserved)


def _attempt(route: Route, began: float, error: str | None) -> attempts.Attempt:
    return attempts.Attempt(route.label, route.upstream_model, route.runtime.backend.protocol, began, time.time(),
                            error)


@dataclass(slots=True)
class _Meter:
    """Reconciles a route's token reservation with the usage the upstream reported."""

    limiter: RateLimiter
    key: str
    quota: Quota
    reserved: int


def _with_uri(request: ChatRequest, branch: selector.Branch, overrides: Mapping[str, Any] | None) -> ChatRequest:
    """Session settings > URI model parameters > the body (> the model's defaults, applied later)."""
    if not branch.parameters and not overrides:
        return request
    return request.evolve(parameters={**request.parameters, **branch.parameters, **(overrides or {})})


def _unwell(error: ProxyError) -> bool:
    """Failures that say the upstream itself is in trouble (they count for its circuit breaker)."""
    return error.retryable and error.status != 429


def _quota_text(quota: Quota) -> str:
    parts = []
    if quota.requests_per_minute is not None:
        parts.append(f"{quota.requests_per_minute} requests/min")
    if quota.tokens_per_minute is not None:
        parts.append(f"{quota.tokens_per_minute} tokens/min")
    return ", ".join(parts)


async def _resume(
    first: StreamEvent, stream: AsyncGenerator[StreamEvent, None], breakers: BreakerStore, label: str,
    meter: _Meter | None,
) -> AsyncIterator[StreamEvent]:
    """The whole stream again, first event included; its outcome feeds the circuit breaker, and
    the usage it reports replaces the route's token reservation."""
    used: int | None = None
    async with aclosing(stream):
        try:
            yield first
            async for event in stream:
                if meter is not None and isinstance(event, UsageReport):
                    used = event.usage.total_tokens
                yield event
        except ProxyError as error:
            if _unwell(error):
                await breakers.failure(label)
            raise
        finally:
            if meter is not None and used is not None:
                await meter.limiter.adjust(meter.key, meter.quota, used - meter.reserved)
        await breakers.success(label)
