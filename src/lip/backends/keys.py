"""Rotation of a backend's API keys: round-robin, skipping keys resting after a 429."""

from __future__ import annotations

import time
from collections.abc import Callable


class KeyRing:
    def __init__(self, keys: tuple[str, ...], clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = keys
        self._resting: dict[str, float] = {}
        self._next = 0
        self._clock = clock

    def __bool__(self) -> bool:
        return bool(self._keys)

    def take(self) -> str:
        """The next key not resting; if all rest, the one whose rest ends first."""
        keys = self._keys
        now = self._clock()
        for _ in range(len(keys)):
            key = keys[self._next]
            self._next = (self._next + 1) % len(keys)
            if self._resting.get(key, 0.0) <= now:
                return key
        return min(keys, key=lambda k: self._resting.get(k, 0.0))

    def spare(self) -> bool:
        """Whether, with several keys, one is ready now (so a retry need not wait)."""
        now = self._clock()
        return len(self._keys) > 1 and any(self._resting.get(k, 0.0) <= now for k in self._keys)

    def rest(self, key: str, seconds: float) -> None:
        """``key`` got a 429: leave it out for ``seconds`` (its Retry-After)."""
        if len(self._keys) > 1:
            self._resting[key] = self._clock() + seconds
