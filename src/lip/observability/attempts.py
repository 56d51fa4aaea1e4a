"""Upstream attempts of the request being served, noted only while tracing is on.

The router adds one ``Attempt`` per upstream call to the list of the current context (set by the
endpoint for a traced request; unset otherwise, which costs the router one context-variable read
per attempt). A context variable, not a module-level list: each request's task has its own.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Attempt:
    label: str  # backend:model
    upstream_model: str
    protocol: str  # the upstream's protocol: openai, anthropic, gemini, openai-responses
    started: float  # time.time()
    ended: float
    error: str | None  # the error code when the attempt failed; None when it started answering


CURRENT: ContextVar[list[Attempt] | None] = ContextVar("lip_attempts", default=None)
