"""FailFast: one failure opens it for ``pause`` seconds; then the next call is tried again."""

from __future__ import annotations

import asyncio

import pytest

from lip.core.guard import FailFast, StoreDown


def test_a_failure_opens_it_for_a_while_then_a_call_is_tried() -> None:
    now = [100.0]
    guard = FailFast(pause=5.0, clock=lambda: now[0])
    calls: list[str] = []

    async def failing() -> None:
        calls.append("tried")
        raise ConnectionError("down")

    async def scenario() -> None:
        with pytest.raises(ConnectionError):
            await guard.run(failing, (OSError,))
        with pytest.raises(StoreDown):
            await guard.run(failing, (OSError,))  # not tried: fails at once
        now[0] += 5.1
        with pytest.raises(ConnectionError):
            await guard.run(failing, (OSError,))

    asyncio.run(scenario())
    assert calls == ["tried", "tried"]


def test_a_success_closes_it() -> None:
    guard = FailFast(pause=5.0, clock=lambda: 0.0)
    guard.failed()
    assert guard.open
    guard.succeeded()
    assert not guard.open
