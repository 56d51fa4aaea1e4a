"""Coalescing a byte stream: everything that is ready now goes out in one write.

An upstream that sends several chunks in one read would otherwise cost one client write (one
system call) per chunk. ``coalesce`` drives the inner iterator by hand: items produced without
waiting are joined; as soon as producing the next item would wait for I/O, what is ready is
yielded first. Chunks are never held back: latency is unchanged, only writes are fewer.
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator, Coroutine, Generator
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


@types.coroutine
def _finish(step: Coroutine[Any, Any, bytes], waiting: Any) -> Generator[Any, Any, bytes]:
    """Complete ``step``, which has yielded ``waiting``, as if it had been awaited from the start.

    What it yields (a future, or None for a bare yield) goes on to the task running us, and what the
    task sends or throws back comes in to it: a ``yield from`` whose first step was already taken.
    """
    while True:
        try:
            sent = yield waiting
        except BaseException as exc:  # noqa: BLE001  handed to the coroutine, as its task would
            try:
                waiting = step.throw(exc)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            continue
        try:
            waiting = step.send(sent)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
