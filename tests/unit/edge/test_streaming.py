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


def test_a_waiting_step_gets_the_futures_result_and_its_exception() -> None:
    """The inner stream awaits futures that the loop completes later: results and failures reach it
    exactly where it awaited them (it catches one and goes on)."""

    async def source() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        ok: asyncio.Future[bytes] = loop.create_future()
        loop.call_later(0.01, ok.set_result, b"from a future")
        yield await ok
        bad: asyncio.Future[bytes] = loop.create_future()
        loop.call_later(0.01, bad.set_exception, OSError("reset"))
        try:
            await bad
        except OSError as error:
            yield f"caught {error}".encode()
        await asyncio.sleep(0)  # a bare yield to the loop
        yield b"after a bare yield"

    async def main() -> list[bytes]:
        return [chunk async for chunk in coalesce(source())]

    assert asyncio.run(main()) == [b"from a future", b"caught reset", b"after a bare yield"]


def test_cancelling_the_consumer_cancels_the_future_the_stream_awaits() -> None:
    seen: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        never: asyncio.Future[None] = loop.create_future()

        async def source() -> AsyncIterator[bytes]:
            yield b"a"
            try:
                await never
            except asyncio.CancelledError:
                seen.append("cancelled inside")
                raise
            yield b"never"

        async def consume() -> None:
            async for _ in coalesce(source()):
                seen.append("chunk")

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert never.cancelled()

    asyncio.run(main())
    assert seen == ["chunk", "cancelled inside"]


def test_the_stream_runs_in_the_consumers_task() -> None:
    """No task per item: what the stream awaits is awaited by the task that reads it (contextvars too)."""

    async def main() -> None:
        consumer = asyncio.current_task()

        async def source() -> AsyncIterator[bytes]:
            for _ in range(3):
                await asyncio.sleep(0.001)
                assert asyncio.current_task() is consumer
                yield b"x"

        assert [chunk async for chunk in coalesce(source())] == [b"x", b"x", b"x"]

    asyncio.run(main())
