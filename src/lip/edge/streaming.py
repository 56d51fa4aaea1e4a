"""Coalescing a byte stream: everything that is ready now goes out in one write.

An upstream that sends several chunks in one read would otherwise cost one client write (one
system call) per chunk. ``coalesce`` drives the inner iterator by hand: items produced without
waiting are joined; as soon as producing the next item would wait for I/O, what is ready is
yielded first. Chunks are never held back: latency is unchanged, only writes are fewer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any


async def coalesce(items: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    ready: list[bytes] = []
    while True:
        step: Coroutine[Any, Any, bytes] = items.__anext__()  # type: ignore[assignment]
        try:
            waiting = step.send(None)
        except StopIteration as done:  # produced without waiting
            ready.append(done.value)
            continue
        except StopAsyncIteration:
            if ready:
                yield b"".join(ready)
            return
        except BaseException:
            if ready:
                yield b"".join(ready)
            raise
        if ready:
            yield b"".join(ready)
            ready = []
        try:
            ready.append(await _finish(step, waiting))
        except StopAsyncIteration:
            return


async def _finish(step: Coroutine[Any, Any, bytes], waiting: Any) -> bytes:
    """Complete ``step`` as its task would have: wait for what it yielded, resume it, repeat."""
    while True:
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                # The task's side of the hand-over: the future was yielded to us, not to the task.
                waiting._asyncio_future_blocking = False
                await waiting
        except BaseException as exc:  # noqa: BLE001  handed to the coroutine, as its task would
            try:
                waiting = step.throw(exc)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            continue
        try:
            waiting = step.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
