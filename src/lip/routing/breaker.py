"""Circuit breakers: a backend:model that keeps failing is taken out of rotation, then probed back.

closed ──(``failures`` consecutive failures)──▶ open ──(``cooldown`` s)──▶ half-open
half-open lets exactly one probe through: success closes the breaker, failure opens it again.
The probe is told apart (``Permit.probe``) so that the router makes it one attempt without
retries: a still-failing route then costs one call per cooldown, and a route that healed is back
within one cooldown. Only failures that say the upstream is unwell count (5xx, time-outs, resets,
cut streams); a 4xx or a 429 does not. Breakers every replica shares live in Redis
(``lip.state.breakers``, the same rules in a script) or PostgreSQL (``lip.state.postgres_breakers``,
these rules, ``permit`` and ``record_failure``, on a locked row).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Permit:
    """A breaker's answer: ``wait`` None lets the call go ahead (as the half-open probe when ``probe``)."""

    wait: float | None = None
    probe: bool = False


GO = Permit()
PROBE = Permit(probe=True)


class BreakerStore(Protocol):
    async def allow(self, key: str) -> Permit:
        """Whether a call may go ahead now (perhaps as the probe), else how long until it may."""
        ...

    async def success(self, key: str) -> None: ...

    async def failure(self, key: str) -> None: ...

    async def close(self) -> None: ...

    def snapshot(self) -> dict[str, str]:
        """Routes this process knows to be in trouble: label -> closed/open/half-open (for metrics)."""
        ...

    def state(self, key: str) -> str | None:
        """``closed``, ``open`` or ``half-open`` (for !/limits); None when only the shared store knows."""
        ...


@dataclass(slots=True)
class BreakerState:
    failures: int = 0
    open_until: float = 0.0
    probe_since: float | None = None


def permit(state: BreakerState | None, now: float, threshold: int, cooldown: float) -> Permit:
    """The rule of ``allow`` on a breaker's state at ``now`` (claiming the probe sets ``probe_since``)."""
    if state is None or state.failures < threshold:
        return GO
    if now < state.open_until:
        return Permit(state.open_until - now)
    if state.probe_since is not None and now - state.probe_since < cooldown:
        return Permit(cooldown / 10)  # another request is probing right now
    state.probe_since = now  # this request is the probe (a probe that never reports is replaced)
    return PROBE


def record_failure(state: BreakerState, now: float, threshold: int, cooldown: float) -> None:
    """The rule of ``failure``: one more in a row; at ``threshold`` the circuit opens for ``cooldown``."""
    state.failures += 1
    state.probe_since = None
    if state.failures >= threshold:
        state.open_until = now + cooldown


class Breakers:
    """Breakers of this process."""

    def __init__(self, failures: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._states: dict[str, BreakerState] = {}

    async def allow(self, key: str) -> Permit:
        state = self._states.get(key)  # none for a route without a failure in a row: no clock read
        return GO if state is None else permit(state, self._clock(), self._threshold, self._cooldown)

    async def success(self, key: str) -> None:
        if key in self._states:
            del self._states[key]

    async def failure(self, key: str) -> None:
        record_failure(self._states.setdefault(key, BreakerState()), self._clock(), self._threshold, self._cooldown)

    async def close(self) -> None:
        self._states.clear()

    def snapshot(self) -> dict[str, str]:
        return {key: self.state(key) for key in self._states}

    def state(self, key: str) -> str:
        """``closed``, ``open`` or ``half-open`` (for metrics and !/limits)."""
        state = self._states.get(key)
        if state is None or state.failures < self._threshold:
            return "closed"
        return "open" if self._clock() < state.open_until else "half-open"
