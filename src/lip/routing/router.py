"""Resolve a selector to a backend and model, then open the upstream stream with retries."""

from __future__ import annotations

import asyncio
import difflib
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass

from lip.backends.base import Connector
from lip.config.loader import Backend
from lip.config.schema import ModelConfig
from lip.core.errors import BackendUnavailable, InvalidRequest, NotFound, ProxyError, RateLimited
from lip.core.model import ChatRequest, StreamEvent, UsageReport
from lip.limits.admission import Admitter
from lip.limits.ratelimit import Quota, RateLimiter
from lip.limits.tokens import tokenizer_for
from lip.routing import selector
from lip.routing.retry import delay_before_retry

log = logging.getLogger("lip.router")


@dataclass(frozen=True, slots=True)
class BackendRuntime:
    """A configured backend with its connector, or the reason it cannot serve."""

    backend: Backend
    connector: Connector | None
    unavailable: str | None = None

    @property
    def name(self) -> str:
        return self.backend.name


@dataclass(frozen=True, slots=True)
class Route:
    runtime: BackendRuntime
    model: str
    upstream_model: str
    config: ModelConfig | None

    @property
    def label(self) -> str:
        return f"{self.runtime.name}:{self.model}"


@dataclass(frozen=True, slots=True)
class Call:
    """An upstream call that has produced its first event."""

    route: Route
    request: ChatRequest  # as sent upstream (defaults and output cap applied)
    events: AsyncIterator[StreamEvent]
    headers: dict[str, str]  # x-ratelimit-* of the route


class Router:
    def __init__(
        self,
        runtimes: Mapping[str, BackendRuntime],
        default: selector.Selector,
        admitter: Admitter,
        limiter: RateLimiter,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.runtimes = dict(runtimes)
        self.default = default
        self._admitter = admitter
        self._limiter = limiter
        self._sleep = sleep
        self._rng = rng

    # ---- resolution -------------------------------------------------------------------------

    def resolve(self, text: str) -> Route:
        sel = selector.parse(text)
        if sel.backend is None and sel.model is None:
            return self._route(self._runtime(self.default.backend or ""), self.default.model)
        if sel.backend is not None:
            runtime = self.runtimes.get(sel.backend)
            if runtime is not None:
                return self._route(runtime, sel.model)
            owner = self._owner(text)  # a listed model name that contains ':' (e.g. llama3:8b)
            if owner is not None:
                return self._route(owner, text)
            raise NotFound(
                f"Unknown backend '{sel.backend}'{_hint(sel.backend, self.runtimes)} in model '{text}'. "
                f"Backends: {', '.join(sorted(self.runtimes))}. Write backend:model, e.g. "
                f"'{self.default.backend}:{sel.model}'.",
                param="model",
            )
        model = sel.model or ""
        default = self._runtime(self.default.backend or "")
        if model in default.backend.config.models:
            return self._route(default, model)
        owner = self._owner(model)  # a ready backend that lists the model beats one that accepts any
        if owner is not None and (owner.unavailable is None or not default.backend.passthrough):
            return self._route(owner, model)
        if default.backend.passthrough:
            return self._route(default, model)
        raise NotFound(
            f"The model '{model}' is not served by the default backend '{default.name}' nor listed by "
            f"any other backend{_hint(model, self._all_models())}. Use backend:model; "
            f"GET /v1/models lists what can be routed.",
            param="model",
        )

    def _owner(self, model: str) -> BackendRuntime | None:
        owners = [rt for rt in self.runtimes.values() if model in rt.backend.config.models]
        ready = [rt for rt in owners if rt.unavailable is None]
        if len(ready) > 1:
            raise InvalidRequest(
                f"The model '{model}' is listed by several backends ({', '.join(rt.name for rt in ready)}); "
                f"name one, e.g. '{ready[0].name}:{model}'.",
                param="model",
                code="ambiguous_model",
            )
        if ready:
            return ready[0]
        return owners[0] if owners else None

    def _runtime(self, name: str) -> BackendRuntime:
        runtime = self.runtimes.get(name)
        if runtime is None:
            raise NotFound(f"Unknown backend '{name}'. Backends: {', '.join(sorted(self.runtimes))}.")
        return runtime

    def _route(self, runtime: BackendRuntime, model: str | None) -> Route:
        backend = runtime.backend
        model = model or backend.default_model
        if not model:
            raise InvalidRequest(
                f"Backend '{runtime.name}' has no default model; name one as '{runtime.name}:<model>'.",
                param="model",
            )
        config = backend.config.models.get(model)
        if config is None and not backend.passthrough:
            listed = ", ".join(backend.config.models) or "(none)"
            raise NotFound(
                f"The model '{model}' is not served by backend '{runtime.name}'"
                f"{_hint(model, backend.config.models)}. Its models: {listed}.",
                param="model",
            )
        if runtime.unavailable is not None:
            raise BackendUnavailable(f"Backend '{runtime.name}' is unavailable: {runtime.unavailable}.")
        upstream = config.upstream_model if config and config.upstream_model else model
        return Route(runtime=runtime, model=model, upstream_model=upstream, config=config)

    def _all_models(self) -> list[str]:
        return [m for rt in self.runtimes.values() for m in rt.backend.config.models]

    def routable(self) -> list[Route]:
        """Every listed backend:model that can serve now."""
        return [
            Route(rt, name, cfg.upstream_model or name, cfg)
            for rt in self.runtimes.values()
            if rt.unavailable is None
            for name, cfg in rt.backend.config.models.items()
        ]

    async def count_tokens(self, request: ChatRequest) -> int:
        """Input tokens of ``request`` as admission would count them for its route."""
        route = self.resolve(request.model)
        configured = route.config.tokenizer if route.config else None
        return await self._admitter.count(request, tokenizer_for(route.upstream_model, configured))

    # ---- calling ----------------------------------------------------------------------------

    async def open(self, request: ChatRequest) -> Call:
        """Resolve, admit, then call the upstream until it yields its first event (retrying before that)."""
        route = self.resolve(request.model)
        config = route.config
        if config is None:
            return await self._attempts(route, request, Quota(), 0, {})
        if config.parameters:
            request = request.with_parameters(config.parameters)
        limits = config.limits
        quota = Quota(limits.requests_per_minute, limits.tokens_per_minute)
        if not limits.sized and not quota:
            return await self._attempts(route, request, quota, 0, {})
        tokenizer = tokenizer_for(route.upstream_model, config.tokenizer)
        admission = await self._admitter.admit(
            request, route.model, limits, tokenizer, need_count=quota.tokens_per_minute is not None
        )
        request = admission.request
        if not quota:
            return await self._attempts(route, request, quota, 0, {})
        reserved = (admission.input_tokens or 0) + (admission.output_cap or 0)
        decision = await self._limiter.acquire(route.label, quota, reserved)
        headers = decision.headers()
        if not decision.allowed:
            raise RateLimited(
                f"Rate limit of {route.label} reached ({_quota_text(quota)}); retry in "
                f"{decision.retry_after:.1f} s.",
                retry_after=decision.retry_after,
                headers=headers,
            )
        return await self._attempts(route, request, quota, reserved, headers)

    async def _attempts(
        self, route: Route, request: ChatRequest, quota: Quota, reserved: int, headers: dict[str, str]
    ) -> Call:
        connector = route.runtime.connector
        assert connector is not None  # resolve() raised for unavailable backends
        settings = route.runtime.backend.config
        attempt = 0
        while True:
            stream = connector.stream(request, route.upstream_model)
            try:
                first = await anext(stream)
            except StopAsyncIteration:
                await self._refund(route, quota, reserved)
                raise ProxyError(f"backend '{route.runtime.name}' sent an empty answer", status=502,
                                 code="upstream_incomplete") from None
            except ProxyError as error:
                await stream.aclose()
                attempt += 1
                delay = delay_before_retry(error, attempt, settings.retry_delay, self._rng)
                if delay is None or attempt > settings.max_retries:
                    await self._refund(route, quota, reserved)
                    error.headers = {**headers, **error.headers}
                    raise
                log.warning("retrying %s in %.2fs after %s (attempt %d of %d)", route.label, delay,
                            error.code, attempt + 1, settings.max_retries + 1)
                await self._sleep(delay)
                continue
            events = _resume(first, stream)
            if quota.tokens_per_minute is not None:
                events = self._metered(events, route.label, quota, reserved)
            return Call(route, request, events, headers)

    async def _refund(self, route: Route, quota: Quota, reserved: int) -> None:
        """A failed call is not charged tokens (the request itself still counts)."""
        if reserved and quota.tokens_per_minute is not None:
            await self._limiter.adjust(route.label, quota, -reserved)

    async def _metered(
        self, events: AsyncIterator[StreamEvent], key: str, quota: Quota, reserved: int
    ) -> AsyncIterator[StreamEvent]:
        """Pass events through; reconcile the token reservation with the usage the upstream reported."""
        used: int | None = None
        try:
            async for event in events:
                if isinstance(event, UsageReport):
                    used = event.usage.total_tokens
                yield event
        finally:
            if used is not None:
                await self._limiter.adjust(key, quota, used - reserved)


def _quota_text(quota: Quota) -> str:
    parts = []
    if quota.requests_per_minute is not None:
        parts.append(f"{quota.requests_per_minute} requests/min")
    if quota.tokens_per_minute is not None:
        parts.append(f"{quota.tokens_per_minute} tokens/min")
    return ", ".join(parts)


async def _resume(
    first: StreamEvent, stream: AsyncGenerator[StreamEvent, None]
) -> AsyncIterator[StreamEvent]:
    async with aclosing(stream):
        yield first
        async for event in stream:
            yield event


def _hint(word: str, candidates: Mapping[str, object] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
