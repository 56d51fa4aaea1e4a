"""coalesce: what is ready goes out in one write; nothing waits for more; errors and cancellation pass."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from lip.edge.streaming import coalesce


async def produce(plan: list[str | float]) -> AsyncIterator[bytes]:
    """Yield each string; a number means: wait that long first (real I/O-like suspension)."""
    for step in plan:
        if isinstance(step, float):
            await asyncio.sleep(step)
        else:
            yield step.encode()


async def collect(plan: list[str | float]) -> list[bytes]:
    return [chunk async for chunk in coalesce(produce(plan))]


def test_ready_items_are_joined_and_waits_split_them() -> None:
    got = asyncio.run(collect(["a", "b", "c", 0.01, "d", "e", 0.01, "f"]))
    assert got == [b"abc", b"de", b"f"]


def test_an_item_after_a_wait_is_not_held_for_the_next_one() -> None:
    events: list[str] = []

    async def source() -> AsyncIterator[bytes]:
        await asyncio.sleep(0.01)
        events.append("x ready")
        yield b"x"
        await asyncio.sleep(0.05)
        events.append("y ready")
        yield b"y"

    async def main() -> None:
        async for chunk in coalesce(source()):
            events.append(f"{chunk.decode()} sent")

    asyncio.run(main())
    assert events == ["x ready", "x sent", "y ready", "y sent"], "x went out before y's wait ended"


def test_errors_inside_the_stream_surface_after_what_was_ready() -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"a"
        await asyncio.sleep(0.01)
        yield b"b"
        raise ValueError("cut")

    async def main() -> list[bytes]:
        out = []
        with pytest.raises(ValueError, match="cut"):
            async for chunk in coalesce(failing()):
                out.append(chunk)
        return out

    assert asyncio.run(main()) == [b"a", b"b"]


def test_cancellation_reaches_the_inner_stream() -> None:
    cleaned: list[bool] = []

    async def slow() -> AsyncIterator[bytes]:
        try:
            yield b"a"
            await asyncio.sleep(10)
            yield b"never"
        finally:
            cleaned.append(True)

    async def main() -> None:
        async def consume() -> None:
            async for _ in coalesce(slow()):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert cleaned == [True]
