"""Router: a failed route's error is re-labelled as a new error (its origin, the route's headers), chained to
the connector's, which stays as it was raised."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from lip.config.loader import Backend
from lip.config.schema import BackendConfig, Limits, ModelConfig
from lip.core.errors import ProxyError, UpstreamStatus
from lip.core.model import ChatRequest, Message, StreamEvent
from lip.limits.admission import Admitter
from lip.limits.ratelimit import MemoryRateLimiter
from lip.limits.tokens import TokenCounter
from lip.routing.resolve import BackendRuntime
from lip.routing.router import Router
from lip.routing.selector import Selector
from shared_data import shared_encoding


class Failing:
    """A connector whose every call raises ``error`` before its first event."""

    def __init__(self, error: ProxyError) -> None:
        self.error = error

    async def stream(self, request: ChatRequest, upstream_model: str) -> AsyncGenerator[StreamEvent, None]:
        raise self.error
        yield  # never reached: it makes this an async generator, as a connector's stream is


def _router(connector: Failing, limits: Limits | None = None) -> Router:
    model = ModelConfig(upstream_model="up-model-2", limits=limits or Limits())
    config = BackendConfig(backend_type="custom", api_base_url="https://upstream.test/v1", models={"m": model},
                           max_retries=0)
    runtime = BackendRuntime(Backend(name="up", config=config, source="test", root_type="custom", preset=False),
                             connector)

    async def no_wait(seconds: float) -> None:
        return None

    return Router({"up": runtime}, Selector("up", "m"), Admitter(TokenCounter(shared_encoding)),
                  MemoryRateLimiter(clock=lambda: 0.0), sleep=no_wait, rng=lambda: 0.5)


def _failed(router: Router) -> ProxyError:
    request = ChatRequest(model="up:m", messages=(Message("user", "hi"),), parameters={"max_tokens": 5})
    with pytest.raises(ProxyError) as caught:
        asyncio.run(router.open(request))
    return caught.value


def test_the_error_names_its_route_and_is_chained_to_the_connectors() -> None:
    raised = UpstreamStatus("upstream is down", status=503)
    error = _failed(_router(Failing(raised)))
    assert type(error) is UpstreamStatus and (error.status, error.message) == (503, "upstream is down")
    assert error.origin == ("up", "m", "up-model-2")
    assert error.__cause__ is raised
    assert raised.origin is None  # what the connector raised is not changed


def test_the_routes_headers_are_on_a_new_error_not_on_the_connectors() -> None:
    raised = UpstreamStatus("upstream is down", status=503)
    error = _failed(_router(Failing(raised), Limits(requests_per_minute=10, tokens_per_minute=10_000)))
    assert error.headers["x-ratelimit-limit-tokens"] == "10000" and error.origin == ("up", "m", "up-model-2")
    assert dict(raised.headers) == {}
    assert error.__cause__ is not None and error.__cause__.__cause__ is raised  # each label a link of the chain


def test_an_error_that_names_its_origin_already_keeps_it() -> None:
    raised = UpstreamStatus("down", status=503, origin=("elsewhere", "x", "x-1"))
    error = _failed(_router(Failing(raised)))
    assert error is raised

