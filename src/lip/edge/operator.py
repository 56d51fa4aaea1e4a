"""The operator's routes: liveness (``/health``), ``/metrics``, ``/v1/usage``, the ``/`` index and the
dashboard; readiness comes from the lifecycle (lip/lifecycle.py)."""

from __future__ import annotations

import contextlib
import dataclasses

import orjson

from lip import dashboard
from lip.core.errors import Forbidden, NotFound, ProxyError
from lip.edge.exchange import Caller, Endpoint, Reply
from lip.edge.index import index_endpoint
from lip.edge.routes import Served
from lip.edge.services import Services
from lip.protocols.base import Incoming
from lip.usage.records import parse_query

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def operator_routes(services: Services, *more: Served) -> list[Served]:
    """Every route that is no protocol's: these, the dashboard's and ``more`` (the lifecycle's)."""
    live = health(services)
    metrics_auth = services.auth.enabled and services.metrics_access != "public"
    return [
        Served("GET", "/", index_endpoint()),  # and HEAD: Claude Code sends HEAD / first
        Served("GET", "/health", live),
        Served("GET", "/health/live", live),
        Served("GET", "/metrics", metrics(services), auth=metrics_auth),
        Served("GET", "/v1/usage", usage(services), auth=True),
        *dashboard.routes(),
        *more,
    ]


def health(services: Services) -> Endpoint:
    """``GET /health``: the process answers, with the default route and which backends can serve."""
    router = services.router

    async def endpoint(incoming: Incoming, caller: Caller) -> Reply:
        runtimes = router.runtimes.values()
        body = {
            "status": "ok",
            "default": str(router.default),
            "backends": {
                "ready": sorted(rt.name for rt in runtimes if rt.unavailable is None),
                "unavailable": {rt.name: rt.unavailable for rt in runtimes if rt.unavailable is not None},
            },
        }
        return Reply(200, orjson.dumps(body))

    return endpoint


def metrics(services: Services) -> Endpoint:
    """``GET /metrics``: with clients configured, for admin clients (or as ``metrics.access`` says)."""

    async def endpoint(incoming: Incoming, caller: Caller) -> Reply:
        client = caller.client
        if services.metrics_access == "admin" and client is not None and not client.admin:
            raise Forbidden(f"Client '{client.name}' may not read /metrics: it is for admin clients "
                            "(proxy.yaml metrics.access).", code="metrics_forbidden")
        services.metrics.circuits(services.router.breakers.snapshot())
        if services.scrape is not None:
            await services.scrape()
        return Reply(200, services.metrics.render(), media_type=METRICS_TYPE)

    return endpoint


def usage(services: Services) -> Endpoint:
    """``GET /v1/usage``: a client sees its own records, an admin client everyone's."""

    async def endpoint(incoming: Incoming, caller: Caller) -> Reply:
        recorder = services.recorder
        if recorder is None:
            raise NotFound("Usage recording is off (usage.store: none).", code="usage_disabled")
        client = caller.client
        query = parse_query(incoming.query)
        if client is not None and not client.admin:
            query = dataclasses.replace(query, client=client.name)
        with contextlib.suppress(ProxyError):
            await recorder.flush()  # the caller's latest requests are in
        return Reply(200, orjson.dumps(await recorder.store.query(query)))

    return endpoint
