"""What the endpoints are bound to: one configuration's router, commands, clients, limits and reporting."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lip.access.clients import Authenticator
from lip.access.quota import ClientLimits
from lip.access.redact import KeyRedactor
from lip.commands.processor import Commands
from lip.observability.metrics import Metrics
from lip.observability.trace import Report
from lip.routing.router import Router
from lip.usage.recorder import UsageRecorder


@dataclass(frozen=True, slots=True)
class Services:
    """What the endpoints use, built by the app."""

    router: Router
    commands: Commands
    auth: Authenticator
    client_limits: ClientLimits
    report: Report
    metrics: Metrics
    recorder: UsageRecorder | None
    redactor: KeyRedactor
    metrics_access: str = "admin"  # proxy.yaml metrics.access
    scrape: Callable[[], Awaitable[None]] | None = None  # brings gauges up to date before /metrics renders
    traced: bool = False  # OpenTelemetry on: each request notes its upstream attempts
    capture_content: bool = False  # ... and its messages
