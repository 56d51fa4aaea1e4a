"""OpenTelemetry traces (optional: ``pip install 'llm-interactive-proxy[otel]'``), exported over OTLP/HTTP.

One SERVER span per request, named ``chat {model}``, from its arrival to its last byte, and one
CLIENT span per upstream attempt under it (failed attempts carry ``error.type``). Attributes follow
the GenAI semantic conventions: ``gen_ai.operation.name``, ``gen_ai.system``,
``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` /
``output_tokens``, ``gen_ai.response.finish_reasons``; plus ``lip.request_id``, the client and tier,
the route and the HTTP status. Bodies are never put in a span unless ``tracing.capture_content``
asks for the request's messages. Spans are built when the request has ended, from what the request
noted anyway, and exported in batches from the SDK's thread: nothing waits on the collector.

With ``tracing.enabled: false`` (the default) this module is not imported and nothing is noted.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from lip.config.schema import TracingConfig
from lip.core.errors import ConfigError
from lip.observability.trace import Trace
from lip.usage.records import UsageRecord

EXTRA_HINT = "install the [otel] extra: pip install 'llm-interactive-proxy[otel]'"


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class Tracer:
    """Turns each ended request into spans and hands them to a batching OTLP exporter."""

    def __init__(self, config: TracingConfig, *, replica: str, systems: Mapping[str, str]) -> None:
        """``systems``: each upstream protocol's ``gen_ai.system`` (from the protocol registry)."""
        if importlib.util.find_spec("opentelemetry.sdk") is None or importlib.util.find_spec(
                "opentelemetry.exporter.otlp.proto.http") is None:
            raise ConfigError([f"proxy.yaml: tracing.enabled: OpenTelemetry is not installed; {EXTRA_HINT}"])
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
        from opentelemetry.sdk.trace.sampling import TraceIdRatioBased  # noqa: PLC0415
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context  # noqa: PLC0415

        self._kind, self._status, self._code, self._in = SpanKind, Status, StatusCode, set_span_in_context
        resource = Resource.create({"service.name": config.service_name, "service.instance.id": replica})
        self._provider = TracerProvider(resource=resource, sampler=TraceIdRatioBased(config.sample_ratio))
        exporter = OTLPSpanExporter(endpoint=config.endpoint) if config.endpoint else OTLPSpanExporter()
        self._provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
        self._tracer = self._provider.get_tracer("lip")
        self.capture_content = config.capture_content
        self._systems = dict(systems)

    def __call__(self, trace: Trace, record: UsageRecord) -> None:
        system = self._systems.get(trace.attempts[-1].protocol, "_OTHER") if trace.attempts else "lip"
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": system,
            "gen_ai.request.model": trace.selector or "",
            "lip.request_id": trace.request_id,
            "lip.surface": trace.surface,
            "lip.stream": trace.stream,
            "http.response.status_code": record.status,
            "gen_ai.usage.input_tokens": record.input_tokens,
            "gen_ai.usage.output_tokens": record.output_tokens,
        }
        optional = {"gen_ai.response.model": record.upstream_model, "lip.backend": record.backend,
                    "lip.model": record.model, "lip.client": record.client, "lip.tier": record.tier,
                    "error.type": record.error_code, "lip.replica": record.replica}
        attributes.update({k: v for k, v in optional.items() if v is not None})
        if trace.finish_reason is not None:
            attributes["gen_ai.response.finish_reasons"] = [trace.finish_reason]
        end = _ns(trace.at + record.latency_ms / 1000)
        span = self._tracer.start_span(f"chat {trace.selector}".strip(), kind=self._kind.SERVER,
                                       start_time=_ns(trace.at), attributes=attributes)
        if self.capture_content and trace.content is not None:
            span.add_event("gen_ai.content.prompt", {"gen_ai.prompt": trace.content.decode()}, timestamp=_ns(trace.at))
        if record.status >= 400:
            span.set_status(self._status(self._code.ERROR, record.error_code or str(record.status)))
        context = self._in(span)
        for attempt in trace.attempts or ():
            backend, _, model = attempt.label.partition(":")
            child = self._tracer.start_span(
                f"chat {attempt.upstream_model}", context=context, kind=self._kind.CLIENT,
                start_time=_ns(attempt.started),
                attributes={"gen_ai.operation.name": "chat",
                            "gen_ai.system": self._systems.get(attempt.protocol, "_OTHER"),
                            "gen_ai.request.model": attempt.upstream_model, "lip.backend": backend, "lip.model": model,
                            "lip.request_id": trace.request_id,
                            **({"error.type": attempt.error} if attempt.error else {})})
            if attempt.error:
                child.set_status(self._status(self._code.ERROR, attempt.error))
            child.end(end_time=_ns(attempt.ended))
        span.end(end_time=end)

    def close(self) -> None:
        """Export what is waiting, then stop the exporter's thread."""
        self._provider.shutdown()
