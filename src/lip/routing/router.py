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
from dataclasses import dataclass
from typing import Any

from lip.config.schema import RoutingConfig
from lip.core.errors import (
    BackendUnavailable,
    ProxyError,
    UpstreamTimeout,
)
from lip.core.model import ChatRequest, StreamEvent, UsageReport
from lip.limits.admission import Admitter
from lip.limits.ratelimit import Quota, RateLimiter
from lip.limits.reservation import Reservation, reserve
from lip.observability import attempts
from lip.routing import selector
from lip.routing.breaker import Breakers, BreakerStore
from lip.routing.call import Access, Budget, Call
from lip.routing.chain import Chain, branch_request, option
from lip.routing.resolve import BackendRuntime, Resolver, Route
from lip.routing.retry import delay_before_retry
from lip.routing.rewrites import Rewrites

log = logging.getLogger("lip.router")


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

    def plan(self, model: str) -> tuple[str, selector.Plan]:
        """The selector ``model`` names after rewrites, and its plan (a bounded memo: clients send few
        distinct models)."""
        text = self.rewrites.apply(model)
        plan = self._plans.get(text)
        if plan is None:
            plan = selector.parse_plan(text)
            if len(self._plans) >= 1024:
                self._plans.clear()
            self._plans[text] = plan
        return text, plan

    def allowed(self, text: str, access: Access | None = None) -> Route:
        """The route a branch names, as the client's tier (``access``) allows it: its default route
        replaces the proxy's, and a route it does not allow raises Forbidden."""
        route = self.resolve(text, access.default if access is not None else None)
        if access is not None:
            access.check(route.label)
        return route

    def first_route(self, model: str, access: Access | None = None) -> Route:
        """The route of the first branch of what ``model`` names (the one counting and ``!/limits`` speak of)."""
        return self._first(self.plan(model)[1], access)[1]

    def _first(self, plan: selector.Plan, access: Access | None) -> tuple[selector.Branch, Route]:
        branch = plan.groups[0][0]
        return branch, self.allowed(branch.text, access)

    async def count_tokens(self, request: ChatRequest, access: Access | None = None) -> int:
        """Input tokens of ``request`` as admission would count them for its first route (which the
        client's tier must allow, as for the request itself)."""
        route = self.first_route(request.model, access)
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
        text, plan = self.plan(request.model)
        budget = Budget(self.settings.max_attempts)
        if plan.single:
            branch, route = self._first(plan, access)
            call = await self._try(route, branch_request(request, branch, overrides), budget)
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
    async def try_route(self, route: Route, request: ChatRequest, budget: Budget) -> Call:
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

    def _ordered(self, plan: selector.Plan) -> list[selector.Branch]:
        """Groups in order; inside a group, a weighted random order (each branch once)."""
        return [branch for group in plan.groups for branch in selector.weighted_order(group, self._rng)]

    async def _try(self, route: Route, request: ChatRequest, budget: Budget) -> Call:
        try:
            return await self._admit_and_call(route, request, budget)
        except ProxyError as error:
            if error.origin is not None:
                raise
            raise error.but(origin=(route.runtime.name, route.model, route.upstream_model)) from error

    async def _admit_and_call(self, route: Route, request: ChatRequest, budget: Budget) -> Call:
        permit = await self.breakers.allow(route.label)
        if permit.wait is not None:
            raise BackendUnavailable(
                f"{route.label} is failing and rests for {permit.wait:.0f} s (circuit open).",
                code="circuit_open", retry_after=permit.wait,
            )
        return await self._attempts(await self._admit(route, request, permit.probe), budget)

    async def _admit(self, route: Route, request: ChatRequest, probe: bool) -> _Admitted:
        """``request`` with the model's parameters, admitted against its size and rate limits."""
        config = route.config
        if config is None:
            return _Admitted(route, request, {}, probe=probe)
        if config.parameters:
            request = request.with_parameters(config.parameters)
        limits = config.limits
        quota = Quota(limits.requests_per_minute, limits.tokens_per_minute)
        if not limits.sized and not quota:
            return _Admitted(route, request, {}, probe=probe)
        counting = self._admitter.counting(route.label, route.upstream_model, config, route.runtime.connector)
        admission = await self._admitter.admit(
            request, route.model, limits, counting, need_count=quota.tokens_per_minute is not None
        )
        if not quota:
            return _Admitted(route, admission.request, admission.headers(), None, admission.input_tokens, probe)
        reservation = await reserve(
            self._limiter, route.label, quota, (admission.input_tokens or 0) + (admission.output_cap or 0),
            refused=lambda: f"Rate limit of {route.label} reached ({_quota_text(quota)})",
        )
        return _Admitted(route, admission.request, {**reservation.headers, **admission.headers()}, reservation,
                         admission.input_tokens, probe)

    async def _attempts(self, admitted: _Admitted, budget: Budget) -> Call:
        """Call the admitted route with its retries (see ``_retry``)."""
        route, request = admitted.route, admitted.request
        connector = route.runtime.connector
        assert connector is not None  # resolve() raised for unavailable backends
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
                await admitted.refund()
                raise
            except StopAsyncIteration:
                error = ProxyError(f"backend '{route.runtime.name}' sent an empty answer", status=502,
                                   code="upstream_incomplete", retryable=True)
            except ProxyError as caught:
                error = caught
            else:
                if noted is not None:
                    noted.append(_attempt(route, began, None))
                events = _resume(first, stream, self.breakers, route.label, admitted.meter)
                return Call(route, request, events, admitted.headers, started, admitted.input_tokens)
            await stream.aclose()
            if noted is not None:
                noted.append(_attempt(route, began, error.code))
            attempt += 1
            await self._retry(admitted, error, attempt, budget)

    async def _retry(self, admitted: _Admitted, error: ProxyError, attempt: int, budget: Budget) -> None:
        """After failed attempt number ``attempt``: wait before the next one, or raise ``error`` (the
        reservation refunded) — no retry for a half-open circuit's probe, nor after a time-out unless
        the backend sets ``retry_on_timeout``."""
        route = admitted.route
        settings = route.runtime.backend.config
        if _unwell(error):
            await self.breakers.failure(route.label)
        delay = delay_before_retry(error, attempt, settings.retry_delay, self._rng, cap=self.settings.retry_after_cap)
        if isinstance(error, UpstreamTimeout) and not settings.retry_on_timeout:
            delay = None  # a silent upstream costs one time-out: the next route is tried at once
        if delay is None or attempt > settings.max_retries or budget.attempts <= 0 or admitted.probe:
            await admitted.refund()
            if admitted.headers:
                raise error.but(headers={**admitted.headers, **error.headers}) from error
            raise error
        log.warning("retrying %s in %.2fs after %s (attempt %d of %d)", route.label, delay, error.code,
                    attempt + 1, settings.max_retries + 1)
        for hook in self._retry_hooks:
            hook(route.runtime.name)
        try:
            await self._sleep(delay)
        except asyncio.CancelledError:  # cancelled while waiting to retry: nothing was used
            await admitted.refund()
            raise


@dataclass(frozen=True, slots=True)
class _Admitted:
    """A route's request as admission left it, ready to be sent (with its retries)."""

    route: Route
    request: ChatRequest  # the model's parameters applied, its output cap too
    headers: dict[str, str]  # x-ratelimit-* of the route (and admission's own)
    reservation: Reservation | None = None  # what its rate limits took
    input_tokens: int | None = None  # counted at admission, when it was
    probe: bool = False  # the one call a half-open circuit lets through: no retries

    @property
    def meter(self) -> Reservation | None:
        """The reservation to settle with the usage the stream reports, if it reserved tokens."""
        return self.reservation if self.reservation is not None and self.reservation.metered else None

    async def refund(self) -> None:
        if self.reservation is not None:
            await self.reservation.refund()


def _attempt(route: Route, began: float, error: str | None) -> attempts.Attempt:
    return attempts.Attempt(route.label, route.upstream_model, route.runtime.backend.protocol, began, time.time(),
                            error)


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
    meter: Reservation | None,
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
                await meter.settle(used)
        await breakers.success(label)
