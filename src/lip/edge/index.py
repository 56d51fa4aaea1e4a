"""What the proxy serves, said once: the ``GET /`` index (``HEAD /`` too) and the start-up banner."""

from __future__ import annotations

from importlib import metadata

import orjson

from lip.edge.exchange import Caller, Endpoint, Reply
from lip.protocols.base import Incoming
from lip.protocols.registry import PROTOCOLS
from lip.protocols.routes import Listing

NAME = "LLM Interactive Proxy"
DISTRIBUTION = "llm-interactive-proxy"


OPERATOR = (  # the routes that are no protocol's, after the protocols' own (lip.protocols.registry)
    Listing("models", "Models", ("GET /v1/models",)),
    Listing("usage", "Usage", ("GET /v1/usage",)),
    Listing("dashboard", "Dashboard", ("GET /dashboard",)),
    Listing("metrics", "Metrics (Prometheus)", ("GET /metrics",)),
    Listing("health", "Health: liveness and readiness",
            ("GET /health", "GET /health/live", "GET /ready", "GET /health/ready")),
)
LINKS = {"health": "/health", "ready": "/ready", "metrics": "/metrics", "dashboard": "/dashboard",
         "models": "/v1/models", "usage": "/v1/usage"}


def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def listings() -> tuple[Listing, ...]:
    """Every surface the index names: each protocol's, in the registry's order, then the operator's."""
    protocols = (protocol.client.listing for protocol in PROTOCOLS.values() if protocol.client is not None)
    return (*protocols, *OPERATOR)


def banner(base_url: str) -> list[str]:
    """The start-up lines naming every surface, each with its paths under ``base_url``."""
    lines = [f"{NAME} {version()} on {base_url}"]
    lines.extend(f"  {s.title}: {', '.join(s.paths)}" for s in listings())
    return lines


def index_endpoint() -> Endpoint:
    """``GET /`` (and ``HEAD /``, answered with the same head and no body): the index."""
    body = orjson.dumps({
        "name": NAME,
        "version": version(),
        "surfaces": {s.key: list(s.paths) for s in listings()},
        "links": LINKS,
    })

    async def index(incoming: Incoming, caller: Caller) -> Reply:
        return Reply(200, body)

    return index
