"""Turns a finished request's trace into a usage record, metrics and (optionally) a log line."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable

import orjson

from lip.config.schema import Pricing
from lip.core.model import Usage
from lip.observability.access import escape
from lip.observability.metrics import Metrics
from lip.observability.trace import Trace
from lip.usage.records import UsageRecord

log = logging.getLogger("lip.requests")
LIMIT_CODES = frozenset({"input_limit_exceeded", "output_limit_exceeded", "context_window_exceeded",
                         "rate_limit_exceeded", "too_many_failed_keys"})

PricingOf = Callable[[str | None, str | None], Pricing | None]
Sink = Callable[[UsageRecord], None]


class Reporter:
    """Never raises and never blocks: recording must not fail or slow a request."""

    def __init__(self, metrics: Metrics, sink: Sink | None, pricing: PricingOf, *, log_format: str = "text",
                 log_requests: bool = False, replica: str | None = None,
                 spans: Callable[[Trace, UsageRecord], None] | None = None) -> None:
        self._replica = replica
        self._spans = spans
        self._metrics = metrics
        self._sink = sink
        self._pricing = pricing
        self._json = log_format == "json"
        self._log_requests = log_requests or self._json

    def __call__(self, trace: Trace) -> None:
        try:
            record = self.record(trace)
            self._observe(record)
            if self._sink is not None:
                self._sink(record)
            if self._spans is not None:
                self._spans(trace, record)
            if self._log_requests or log.isEnabledFor(logging.DEBUG):
                self._log(record)
        except Exception:  # a bug here must not break the request path; it is logged, never swallowed silently
            log.exception("could not report request %s", trace.request_id)

    def record(self, trace: Trace) -> UsageRecord:
        usage = trace.usage
        estimated = False
        if usage is None:
            estimated = trace.status < 400 and trace.input_estimate is not None
            usage = Usage(input_tokens=trace.input_estimate or 0 if trace.status < 400 else 0,
                          output_tokens=math.ceil(trace.output_chars / 4) if trace.status < 400 else 0)
        backend, model, upstream_model = trace.backend, trace.model, trace.upstream_model
        continued_from = None
        if trace.handovers:  # the answer was finished by another route: it is named; every attempt is billed
            last = trace.handovers[-1]
            backend, model, upstream_model = last.to_backend, last.to_model, last.to_upstream_model
            continued_from = ",".join(f"{h.label}@{h.at}" for h in trace.handovers)
            estimated = estimated or usage.estimated
        return UsageRecord(
            at=trace.at, request_id=trace.request_id, client=trace.client, tier=trace.tier,
            surface=trace.surface, selector=trace.selector, backend=backend, model=model,
            upstream_model=upstream_model, stream=trace.stream, input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens, cached_tokens=usage.cached_tokens, estimated=estimated,
            cost=self._cost(trace, usage, backend, model), latency_ms=round(trace.latency_ms, 3),
            ttft_ms=_round(trace.ttft_ms), status=trace.status, error_code=trace.error_code,
            dropped=trace.dropped, continued_from=continued_from, replica=self._replica,
        )

    def _cost(self, trace: Trace, usage: Usage, backend: str | None, model: str | None) -> float | None:
        """``usage`` at the answering route's pricing; the part of a failed attempt (a continued stream)
        at its own route's pricing."""
        parts: list[tuple[str | None, str | None, int, int]] = []
        rest_in, rest_out = usage.input_tokens, usage.output_tokens
        for handover in trace.handovers:
            spent = handover.usage
            parts.append((handover.backend, handover.model, spent.input_tokens, spent.output_tokens))
            rest_in, rest_out = rest_in - spent.input_tokens, rest_out - spent.output_tokens
        parts.append((backend, model, max(0, rest_in), max(0, rest_out)))
        cost = None
        for part_backend, part_model, tokens_in, tokens_out in parts:
            pricing = self._pricing(part_backend, part_model)
            if pricing is not None:
                cost = (cost or 0.0) + (tokens_in * pricing.input_per_million
                                        + tokens_out * pricing.output_per_million) / 1_000_000
        return cost

    def _observe(self, record: UsageRecord) -> None:
        ttft = record.ttft_ms
        backend = record.backend or "-"
        self._metrics.series.observe(
            record.surface, backend, self._metrics.model_label(backend, record.model or "-"), status=record.status,
            latency_s=record.latency_ms / 1000, ttft_s=None if ttft is None else ttft / 1000,
            input_tokens=record.input_tokens, output_tokens=record.output_tokens,
            cached_tokens=record.cached_tokens, cost=record.cost,
        )
        if record.error_code in LIMIT_CODES:
            self._metrics.rejections.labels(record.error_code).inc()

    def _log(self, record: UsageRecord) -> None:
        if self._json:
            log.info(orjson.dumps({"event": "request", **dataclasses.asdict(record)}).decode())
        else:
            log.info("%s %s %s -> %s:%s %d %.1fms in=%d out=%d%s", record.request_id, record.surface,
                     escape(record.selector), escape(record.backend or "-"), escape(record.model or "-"),
                     record.status, record.latency_ms, record.input_tokens, record.output_tokens,
                     f" error={escape(record.error_code)}" if record.error_code else "")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
