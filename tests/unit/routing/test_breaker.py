"""The in-process circuit breaker: closed, open, and the half-open probe told apart."""

from __future__ import annotations

import asyncio

from lip.routing.breaker import Breakers


def test_the_half_open_call_is_marked_as_the_probe_and_only_one_goes_through() -> None:
    now = [0.0]
    breakers = Breakers(failures=2, cooldown=10.0, clock=lambda: now[0])

    async def run() -> None:
        assert await breakers.allow("a:m") == await breakers.allow("b:m")  # nothing known: go
        assert not (await breakers.allow("a:m")).probe
        await breakers.failure("a:m")
        assert (await breakers.allow("a:m")).wait is None, "below the threshold the circuit is closed"
        await breakers.failure("a:m")
        assert (await breakers.allow("a:m")).wait == 10.0
        now[0] = 10.0
        first = await breakers.allow("a:m")
        assert first.wait is None and first.probe
        second = await breakers.allow("a:m")
        assert second.wait is not None, "one probe at a time"
        await breakers.failure("a:m")
        assert breakers.state("a:m") == "open"
        now[0] = 20.0
        assert (await breakers.allow("a:m")).probe
        await breakers.success("a:m")
        assert breakers.state("a:m") == "closed"
        assert not (await breakers.allow("a:m")).probe

    asyncio.run(run())
