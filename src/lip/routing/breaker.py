"""Circuit breakers: a backend:model that keeps failing is taken out of rotation, then probed back.

closed ──(``failures`` consecutive failures)──▶ open ──(``cooldown`` s)──▶ half-open
half-open lets exactly one probe through: success closes the breaker, failure opens it again.
Only failures that say the upstream is unwell count (5xx, time-outs, resets, cut streams);
a 4xx or a 429 does not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _State:
    failures: int = 0
    open_until: float = 0.0
    probe_since: float | None = None


class Breakers:
    def __init__(self, failures: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._states: dict[str, _State] = {}

    def allow(self, key: str) -> float | None:
        """None when a call may go ahead (perhaps as the probe); else seconds until it may."""
        state = self._states.get(key)
        if state is None or state.failures < self._threshold:
            return None
        now = self._clock()
        if now < state.open_until:
            return state.open_until - now
        if state.probe_since is not None and now - state.probe_since < self._cooldown:
            return self._cooldown / 10  # another request is probing right now
        state.probe_since = now  # this request is the probe (a probe that never reports is replaced)
        return None

    def success(self, key: str) -> None:
        if key in self._states:
            del self._states[key]

    def failure(self, key: str) -> None:
        state = self._states.setdefault(key, _State())
        state.failures += 1
        state.probe_since = None
        if state.failures >= self._threshold:
            state.open_until = self._clock() + self._cooldown

    def state(self, key: str) -> str:
        """``closed``, ``open`` or ``half-open`` (for metrics and !/limits)."""
        state = self._states.get(key)
        if state is None or state.failures < self._threshold:
            return "closed"
        return "open" if self._clock() < state.open_until else "half-open"
