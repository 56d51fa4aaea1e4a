"""An upstream call that has started answering, and what a walk over routes carries: the attempts
left, and what the client's tier says about routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from lip.core.model import ChatRequest, StreamEvent
from lip.routing import selector
from lip.routing.continuation import Handover
from lip.routing.resolve import Route


@dataclass(slots=True)
class Call:
    """An upstream call that has produced its first event."""

    route: Route
    request: ChatRequest  # as sent upstream (defaults and output cap applied)
    events: AsyncIterator[StreamEvent]
    headers: dict[str, str]  # x-ratelimit-* of the route
    upstream_started: float = 0.0  # perf_counter() when the first upstream attempt began
    input_tokens: int | None = None  # counted at admission, when it was
    handovers: list[Handover] = field(default_factory=list)  # mid-stream continuations, as they happen


@dataclass(slots=True)
class Budget:
    """The upstream attempts one request may still make (``routing.max_attempts``), over every route."""

    attempts: int


class Access(Protocol):
    """What a client's tier says about routes (see lip.access)."""

    @property
    def default(self) -> selector.Selector | None: ...

    def check(self, label: str) -> None:
        """Raise Forbidden when the route is not allowed."""
        ...
