"""The life of one proxy process: warm-up before it accepts, readiness, drain, and what outlives a reload.

starting ──(everything a request needs is loaded)──▶ ready ──(SIGTERM)──▶ draining ──▶ stopped

The ASGI lifespan's start-up warms everything a request needs before the server listens: the
tokenizers the configuration names (each loaded and run once, in a thread), the upstream HTTP
pool, the shared-state store's connections and scripts, the usage store. A cold replica thus
answers its first request as fast as its hundredth, and a balancer never sees it half-ready.

Readiness (``GET /ready``, also ``/health/ready``) is 200 only when the process is ready and not
draining, its tokenizers loaded, and the stores its requests depend on answer; otherwise 503, with
every check in the body. Liveness (``GET /health``, also ``/health/live``) stays 200 while the
event loop runs, draining or not: a balancer takes a draining replica out of rotation, an
orchestrator does not restart it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from lip.backends.http import HttpPool
from lip.config.loader import Config
from lip.core.errors import ProxyError
from lip.edge.asgi import Receive, Send
from lip.edge.exchange import Caller, Reply
from lip.edge.routes import Served
from lip.limits.tokens import SHA256, TokenCounter, local_tokenizer
from lip.observability.metrics import Metrics
from lip.observability.otel import Tracer
from lip.protocols.base import Incoming
from lip.routing.resolve import BackendRuntime
from lip.state.shared import SharedState
from lip.usage.recorder import UsageRecorder

log = logging.getLogger("lip.lifecycle")
SAMPLE = "Warm-up: the quick brown fox jumps over the lazy dog, 1234567890 times; ¿qué? 東京 🙂 " * 2


class KnownModels:
    """Whether a backend lists a model (bounded metrics labels), for the configuration served now."""

    def __init__(self) -> None:
        self.runtimes: Mapping[str, BackendRuntime] = {}

    def __call__(self, backend: str, model: str) -> bool:
        runtime = self.runtimes.get(backend)
        return runtime is None or model in runtime.backend.config.models  # None: "lip", "-": bounded names


@dataclass(slots=True)
class Shared:
    """What one process owns across configurations: a reload swaps routes, never these."""

    pool: HttpPool
    counter: TokenCounter
    state: SharedState
    metrics: Metrics
    recorder: UsageRecorder | None
    known: KnownModels  # models of the configuration served now (metrics labels); a reload sets it
    tracer: Tracer | None = None  # OpenTelemetry spans, when tracing.enabled


async def store_health(shared: Shared) -> None:
    """Set ``lip_store_up`` for the shared-state store (a ping, at most 1 s) and the usage store."""
    state = shared.state
    shared.metrics.store_up.labels("state", state.kind).set(0 if await state.check() else 1)
    recorder = shared.recorder
    if recorder is not None:
        kind = recorder.store.url.partition(":")[0]
        shared.metrics.store_up.labels("usage", kind).set(1 if recorder.failures == 0 else 0)


def tokenizers_of(config: Config) -> set[str]:
    """Every tokenizer a request under ``config`` may count with locally (o200k always: the mock, tiers,
    unknown families; ``upstream`` models: their local fallback). A built-in preset's heavier tokenizer
    (the mistral preset's Tekken: seconds and 150 MB) is left to its first request, in a worker thread."""
    names = {"o200k_base"}
    for backend in config.backends.values():
        for name, model in backend.config.models.items():
            local = local_tokenizer(model.upstream_model or name, model.tokenizer)
            if not backend.preset or local in SHA256:
                names.add(local)
    return names


def warm_tokenizers(counter: TokenCounter, names: set[str]) -> list[str]:
    """Load and run each tokenizer once (call in a thread); raises TokenizerUnavailable."""
    for name in sorted(names):
        counter.count(SAMPLE, name)
    return sorted(names)


@dataclass(slots=True)
class Lifecycle:
    """Phases, warm-up and readiness of one app; ``closing`` tells the front door to end keep-alives."""

    shared: Shared
    phase: str = "starting"
    tokenizers: list[str] = field(default_factory=list)
    tokenizer_error: str | None = None
    started_at: float = field(default_factory=time.monotonic)
    ready_after: float | None = None  # seconds from building the app to ready
    deny_on_store_error: bool = False
    last_reload: dict[str, Any] = field(default_factory=dict)

    @property
    def draining(self) -> bool:
        return self.phase in ("draining", "stopped")

    async def startup(self, config: Config) -> None:
        """Warm everything a request needs; a store that is down is logged and reported, not fatal."""
        shared = self.shared
        await shared.pool.start()
        await self.warm(config)
        try:
            await shared.state.warm()
        except Exception as exc:  # noqa: BLE001  (any failure: not reachable now; readiness says so)
            log.warning("shared-state store not reachable at start-up (%s); readiness reports it", exc)
        if shared.recorder is not None:
            await shared.recorder.start()
        if self.phase == "starting":
            self.phase = "ready"
        self.ready_after = time.monotonic() - self.started_at
        log.info("ready after %.2f s (tokenizers: %s; state: %s)", self.ready_after,
                 ", ".join(self.tokenizers) or "-", shared.state.kind)

    async def warm(self, config: Config) -> None:
        """Load the tokenizers ``config`` names (off the event loop); an unusable one is reported."""
        try:
            loaded = await asyncio.to_thread(warm_tokenizers, self.shared.counter, tokenizers_of(config))
        except ProxyError as error:
            self.tokenizer_error = str(error)
            log.error("tokenizers not loaded: %s; requests that need counting get 503", error)
            return
        self.tokenizer_error = None
        self.tokenizers = sorted({*self.tokenizers, *loaded})

    async def shutdown(self) -> None:
        shared = self.shared
        self.phase = "stopped"
        if shared.recorder is not None:
            await shared.recorder.close()  # flushes: nothing recorded is lost on a clean shutdown
        await shared.pool.close()
        await shared.state.close()
        if shared.tracer is not None:
            await asyncio.to_thread(shared.tracer.close)

    def drain(self) -> None:
        if self.phase != "stopped":
            self.phase = "draining"

    async def lifespan(self, config: Config, receive: Receive, send: Send) -> None:
        """The ASGI lifespan protocol: start-up warms, shut-down flushes and closes."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup(config)
                except Exception as exc:
                    log.error("start-up failed", exc_info=exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def checks(self) -> tuple[bool, dict[str, Any]]:
        """(ready, every check by name)."""
        shared = self.shared
        store_error = await shared.state.check()
        recorder = shared.recorder
        usage = "off" if recorder is None else ("ok" if recorder.failures == 0 else
                                                f"failing ({recorder.failures} writes in a row; records are kept)")
        checks: dict[str, Any] = {
            "phase": self.phase,
            "config": "ok",
            "tokenizers": self.tokenizer_error or ("ok: " + ", ".join(self.tokenizers)),
            "state_store": store_error or f"ok ({shared.state.kind})",
            "usage_store": usage,
        }
        if self.last_reload:
            checks["last_reload"] = self.last_reload
        ready = (self.phase == "ready" and self.tokenizer_error is None
                 and (store_error is None or not self.deny_on_store_error))
        return ready, checks

    async def ready(self, incoming: Incoming, caller: Caller) -> Reply:
        ready, checks = await self.checks()
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return Reply(200 if ready else 503, orjson.dumps(body), headers={"cache-control": "no-store"})

    def routes(self) -> list[Served]:
        """``/ready`` and ``/health/ready``: readiness (liveness is ``/health`` and ``/health/live``)."""
        return [Served("GET", "/ready", self.ready), Served("GET", "/health/ready", self.ready)]
