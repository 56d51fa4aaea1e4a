"""One request's walk along its failover chain: the first route that starts, hedging, and continuations.

``Chain.first`` tries the routes in order (a route with ``hedge_after`` races the rest of the chain
once it has been silent that long: whichever produces a first token first is kept, the other is
cancelled). ``Chain.continued`` wraps the started call so that a stream failing mid-answer is
continued (``lip.routing.continuation``): ``reopen`` offers the next routes of the chain, then the
same route again (after a back-off, when it has retries and the failure was not a time-out),
with a prefill where the target accepts one, else a restart whose answer must begin with what the
client already has. A 400 to a prefill teaches the router that the model takes none, and the same
route is asked again without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from lip.config.schema import RoutingConfig
from lip.core.errors import (
    BackendUnavailable,
    Forbidden,
    LimitExceeded,
    ProxyError,
    RateLimited,
    UpstreamStatus,
    UpstreamTimeout,
)
from lip.core.model import ChatRequest
from lip.routing import selector
from lip.routing.call import Access, Budget, Call
from lip.routing.continuation import PREFILL, RESTART, Attempt, Handover, Transcript, continuing, prefill_request
from lip.routing.resolve import Route
from lip.routing.retry import delay_before_retry

log = logging.getLogger("lip.router")
CONTEXT_ERROR_HINTS = ("context_length", "context length", "maximum context", "too many tokens", "too long",
                       "maximum number of tokens",  # Gemini: "... exceeds the maximum number of tokens allowed"
                       "context window")  # OpenAI Responses: "Your input exceeds the context window of this model."


def option(route: Route, name: str) -> Any:
    """A resilience key of the route: the model's, else the backend's."""
    value = getattr(route.config, name, None) if route.config is not None else None
    return value if value is not None else getattr(route.runtime.backend.config, name)


def branch_request(
    request: ChatRequest, branch: selector.Branch, overrides: Mapping[str, Any] | None
) -> ChatRequest:
    """Session settings > URI model parameters > the body (> the model's defaults, applied later)."""
    if not branch.parameters and not overrides:
        return request
    return request.evolve(parameters={**request.parameters, **branch.parameters, **(overrides or {})})


def says_context(error: ProxyError) -> bool:
    text = f"{error.code} {error.message}".lower()
    return any(hint in text for hint in CONTEXT_ERROR_HINTS)


class Routes(Protocol):
    """What the chain asks of the router (lip.routing.router): a route a tier allows, a call on it, counts
    and prefill knowledge, and its clock and dice."""

    settings: RoutingConfig

    def allowed(self, text: str, access: Access | None = None) -> Route: ...

    async def try_route(self, route: Route, request: ChatRequest, budget: Budget) -> Call: ...

    async def count_o200k(self, request: ChatRequest) -> int: ...

    def prefills(self, route: Route) -> bool: ...

    def learn_no_prefill(self, label: str) -> None: ...

    def rng(self) -> float: ...

    async def pause(self, seconds: float) -> None: ...


@dataclass(slots=True)
class Chain:
    router: Routes
    text: str  # the selector after rewrites
    branches: list[selector.Branch]
    request: ChatRequest  # as the client sent it
    overrides: Mapping[str, Any] | None
    access: Access | None
    budget: Budget
    input_tokens: int | None = None  # o200k count for max_context, once needed
    handovers: list[Handover] = field(default_factory=list)

    def request_for(self, branch: selector.Branch) -> ChatRequest:
        return branch_request(self.request, branch, self.overrides)

    def route(self, branch: selector.Branch, errors: list[ProxyError] | None = None) -> Route | None:
        """The branch's route; None (the error noted in ``errors``) when it is unavailable or not allowed."""
        try:
            return self.router.allowed(branch.text, self.access)
        except (BackendUnavailable, Forbidden) as error:
            if errors is not None:
                errors.append(error)
            return None

    async def too_large(self, branch: selector.Branch, route: Route) -> bool:
        if branch.max_context is None:
            return False
        if self.input_tokens is None:
            self.input_tokens = await self.router.count_o200k(self.request)
        if self.input_tokens > branch.max_context:
            log.debug("skipping %s: %d input tokens > max_context %d", route.label, self.input_tokens,
                      branch.max_context)
            return True
        return False

    async def first(self, start: int = 0, errors: list[ProxyError] | None = None) -> tuple[Call, int]:
        """The first route from ``start`` on that starts answering, and its place in the chain."""
        errors = [] if errors is None else errors
        for position in range(start, len(self.branches)):
            branch = self.branches[position]
            route = self.route(branch, errors)
            if route is None or await self.too_large(branch, route):
                continue
            hedge = option(route, "hedge_after") if self.request.stream else None
            if hedge is not None and position + 1 < len(self.branches):
                return await self._hedged(position, route, float(hedge), errors)
            try:
                return await self.router.try_route(route, self.request_for(branch), self.budget), position
            except ProxyError as error:
                if not may_fail_over(error) or self.budget.attempts <= 0:
                    raise
                log.warning("route %s failed (%s); trying the next route", route.label, error.code)
                errors.append(error)
        raise final_error(errors, self.text)

    async def _hedged(self, position: int, route: Route, after: float,
                      errors: list[ProxyError]) -> tuple[Call, int]:
        """``route``, and after ``after`` s without its first token the rest of the chain too: the first
        to start answering wins and the other is cancelled (or closed, had it started too)."""
        request = self.request_for(self.branches[position])
        primary: asyncio.Future[Any] = asyncio.ensure_future(self.router.try_route(route, request, self.budget))
        done, _ = await asyncio.wait({primary}, timeout=after)
        if primary in done:
            try:
                return primary.result(), position
            except ProxyError as error:
                if not may_fail_over(error) or self.budget.attempts <= 0:
                    raise
                errors.append(error)
                return await self.first(position + 1, errors)
        log.info("%s has not answered within hedge_after %.2g s; starting the next route too", route.label, after)
        backup: asyncio.Future[Any] = asyncio.ensure_future(self.first(position + 1, []))
        pending: set[asyncio.Future[Any]] = {primary, backup}
        failures: dict[asyncio.Future[Any], ProxyError] = {}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in (primary, backup):
                    if task not in done:
                        continue
                    failure = task.exception()
                    if failure is None:
                        return await self._keep(task, primary, backup, position)
                    if not isinstance(failure, ProxyError):
                        raise failure
                    failures[task] = failure
            raise failures.get(backup) or failures[primary]
        finally:
            for task in pending:
                task.cancel()

    async def _keep(self, winner: asyncio.Future[Any], primary: asyncio.Future[Any], backup: asyncio.Future[Any],
                    position: int) -> tuple[Call, int]:
        loser = backup if winner is primary else primary
        if loser.done() and loser.exception() is None:  # both started at once: close the other's stream
            call = loser.result()
            stream = call[0] if isinstance(call, tuple) else call
            await _close(stream.events)
        loser.cancel()
        result = winner.result()
        return result if isinstance(result, tuple) else (result, position)

    def continued(self, call: Call, position: int) -> Call:
        """``call`` whose stream, should it fail mid-answer, is continued along the chain."""
        route = call.route
        first = Attempt(route.label, route.runtime.name, route.model, route.upstream_model, call.events,
                        call.input_tokens, request=call.request, position=position)
        call.events = continuing(first, self.reopen, self.router.settings.max_continuations, self.handovers)
        call.handovers = self.handovers
        return call

    async def reopen(self, attempt: Attempt, sent: Transcript, error: ProxyError) -> Attempt | None:
        """The next attempt to continue the answer with, or None when no route can."""
        if attempt.usage is None and attempt.input_tokens is None and attempt.request is not None:
            attempt.input_tokens = await self.router.count_o200k(attempt.request)
        order = [*range(attempt.position + 1, len(self.branches)), attempt.position]
        for position in order:
            if self.budget.attempts <= 0:
                return None
            branch = self.branches[position]
            route = self.route(branch)
            if route is None or not option(route, "continuation") or await self.too_large(branch, route):
                continue
            if position == attempt.position and not await self._again(route, error):
                continue
            started = await self._start(route, self.request_for(branch), sent)
            if started is None:
                continue
            call, mode = started
            log.warning("the stream of %s failed after %d characters (%s); continuing on %s (%s)",
                        attempt.label, sent.chars, error.code, route.label, mode)
            return Attempt(route.label, route.runtime.name, route.model, route.upstream_model, call.events,
                           call.input_tokens, mode=mode, request=call.request, position=position)
        return None

    async def _again(self, route: Route, error: ProxyError) -> bool:
        """Whether the route whose stream failed may continue it itself (after a back-off)."""
        settings = route.runtime.backend.config
        if settings.max_retries == 0 or (isinstance(error, UpstreamTimeout) and not settings.retry_on_timeout):
            return False
        retry = ProxyError(error.message, retryable=True)
        delay = delay_before_retry(retry, 1, settings.retry_delay, self.router.rng)
        await self.router.pause(delay or 0.0)
        return True

    async def _start(self, route: Route, request: ChatRequest, sent: Transcript) -> tuple[Call, str] | None:
        prefilled = prefill_request(request, sent) if self.router.prefills(route) else None
        if prefilled is not None:
            try:
                return await self.router.try_route(route, prefilled, self.budget), PREFILL
            except UpstreamStatus as error:
                if error.status not in (400, 422) or says_context(error):
                    return None
                log.warning("%s refused a prefill (%s); it is asked without one from now on", route.label,
                            error.code)
                self.router.learn_no_prefill(route.label)
            except ProxyError:
                return None
        try:
            return await self.router.try_route(route, request, self.budget), RESTART
        except ProxyError:
            return None


async def _close(events: Any) -> None:
    """Close a started call nobody will read: its first event is taken (it is at hand) so that the
    generator runs, and closing it then lets its upstream connection go."""
    with contextlib.suppress(ProxyError, StopAsyncIteration):
        await anext(events)
        await events.aclose()


def may_fail_over(error: ProxyError) -> bool:
    if isinstance(error, RateLimited | LimitExceeded | BackendUnavailable) or error.retryable:
        return True
    if isinstance(error, UpstreamStatus) and error.status in (400, 413):
        return says_context(error)
    return False


def final_error(errors: list[ProxyError], text: str) -> ProxyError:
    """The error to answer with when no route served: a rate limit if any route was limited."""
    if not errors:
        return BackendUnavailable(f"No route of '{text}' can take this request (every one was skipped).",
                                  code="no_route")
    limited = [e for e in errors if e.status == 429]
    if all(isinstance(e, Forbidden) for e in errors):
        return errors[0]
    if limited:
        return min(limited, key=lambda e: e.retry_after if e.retry_after is not None else float("inf"))
    return errors[-1]
