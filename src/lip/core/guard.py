"""A shared store's own small breaker: after a failure, calls fail at once for a while.

A hung Redis answers nothing until each call's socket time-out (0.5 s); a request touches the
limiter, the breakers and the sessions, so every request waited out about three time-outs in a
row. The stores of one URL share one ``FailFast``: the first failure opens it, and for ``pause``
seconds every store answers as if Redis were down (their fail-open or fail-closed rule) without
waiting; then the next call tries again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class FailFast:
    __slots__ = ("_clock", "_pause", "_until")

    def __init__(self, pause: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._pause = pause
        self._clock = clock
        self._until = 0.0

    @property
    def open(self) -> bool:
        """True while calls should not be tried (a failure happened less than ``pause`` s ago)."""
        return self._until != 0.0 and self._clock() < self._until

    def failed(self) -> None:
        self._until = self._clock() + self._pause

    def succeeded(self) -> None:
        self._until = 0.0

    async def run(self, call: Callable[[], Awaitable[T]], errors: tuple[type[BaseException], ...]) -> T:
        """``call()``, or StoreDown at once while open; one of ``errors`` opens it."""
        if self.open:
            raise StoreDown("the store failed moments ago; not tried again yet")
        try:
            result = await call()
        except errors:
            self.failed()
            raise
        if self._until:
            self._until = 0.0
        return result


class StoreDown(OSError):
    """Raised instead of calling a store whose ``FailFast`` is open (caught like its own errors)."""
