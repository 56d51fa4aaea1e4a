"""What one request did: who, which route, tokens, timings, outcome; reported once when it ends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from lip.core.errors import ProxyError
from lip.core.model import (
    Finish,
    ReasoningDelta,
    RedactedReasoningPart,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from lip.observability.attempts import Attempt
from lip.routing.continuation import Handover


@dataclass(slots=True)
class Trace:
    request_id: str
    surface: str
    started: float  # time.perf_counter() at arrival
    at: float  # time.time() at arrival
    selector: str = ""
    stream: bool = False
    client: str | None = None
    tier: str | None = None
    backend: str | None = None
    model: str | None = None
    upstream_model: str | None = None
    usage: Usage | None = None
    first_token: float | None = None  # perf_counter() of the first token
    upstream_started: float | None = None  # perf_counter() when the upstream call began
    status: int = 200
    error_code: str | None = None
    dropped: str | None = None  # the x-lip-dropped header's value
    input_estimate: int | None = None  # the proxy's own count, when the upstream reports none
    output_chars: int = 0  # characters streamed back, for an estimate when the upstream reports no usage
    done: bool = False
    hooks: list[Callable[[Trace], None]] = field(default_factory=list)  # run once the request has ended
    handovers: list[Handover] = field(default_factory=list)  # mid-stream continuations (the router's list)
    finish_reason: str | None = None
    attempts: list[Attempt] | None = None  # upstream attempts, noted only while tracing is on
    content: bytes | None = None  # the request's messages, kept only when tracing captures content

    @property
    def latency_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    @property
    def ttft_ms(self) -> float | None:
        return None if self.first_token is None else (self.first_token - self.started) * 1000

    def fail(self, error: ProxyError) -> None:
        self.status = error.status
        self.error_code = error.code


Report = Callable[[Trace], None]
TOKENS = (TextDelta, ToolCallDelta, ReasoningDelta)  # a tuple: ``A | B`` would build a union per event


async def observe(events: AsyncIterator[StreamEvent], trace: Trace, report: Report) -> AsyncIterator[StreamEvent]:
    """Pass events through, noting the first token and the usage; report once, however it ends."""
    try:
        async for event in events:
            if isinstance(event, TOKENS):
                if trace.first_token is None:
                    trace.first_token = time.perf_counter()
                trace.output_chars += len(event.text if not isinstance(event, ToolCallDelta) else event.arguments)
            elif isinstance(event, UsageReport):
                trace.usage = event.usage
            elif isinstance(event, Finish):
                trace.finish_reason = event.reason
            elif isinstance(event, RedactedReasoningPart) and trace.first_token is None:  # hidden reasoning, whole
                trace.first_token = time.perf_counter()
            yield event
    except ProxyError as error:
        trace.error_code = error.code  # after the first byte: the status stays what the client got
        raise
    except BaseException:
        trace.error_code = trace.error_code or "client_closed"
        raise
    finally:
        finish(trace, report)


def finish(trace: Trace, report: Report) -> None:
    if not trace.done:
        trace.done = True
        report(trace)
        for hook in trace.hooks:
            hook(trace)
