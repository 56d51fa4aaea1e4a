"""What the proxy serves, said once: the ``GET /`` index (``HEAD /`` too) and the start-up banner."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

import orjson

from lip.edge.exchange import Caller, Endpoint, Reply
from lip.protocols.base import Incoming

NAME = "LLM Interactive Proxy"
DISTRIBUTION = "llm-interactive-proxy"


@dataclass(frozen=True, slots=True)
class SurfaceInfo:
    key: str  # the index's key
    title: str  # the banner's words
    paths: tuple[str, ...]


SURFACES = (
    SurfaceInfo("openai_chat", "OpenAI Chat Completions", ("POST /v1/chat/completions",)),
    SurfaceInfo("openai_responses", "OpenAI Responses",
                ("POST /v1/responses", "GET /v1/responses/{id}", "DELETE /v1/responses/{id}")),
    SurfaceInfo("anthropic", "Anthropic Messages",
                ("POST /v1/messages", "POST /v1/messages/count_tokens", "POST /anthropic/v1/messages",
                 "POST /anthropic/v1/messages/count_tokens")),
    SurfaceInfo("gemini", "Gemini (also at /v1, /v1alpha and no prefix)",
                ("POST /v1beta/models/{model}:generateContent", "POST /v1beta/models/{model}:streamGenerateContent",
                 "POST /v1beta/models/{model}:countTokens", "GET /v1beta/models")),
    SurfaceInfo("models", "Models", ("GET /v1/models",)),
    SurfaceInfo("usage", "Usage", ("GET /v1/usage",)),
    SurfaceInfo("dashboard", "Dashboard", ("GET /dashboard",)),
    SurfaceInfo("metrics", "Metrics (Prometheus)", ("GET /metrics",)),
    SurfaceInfo("health", "Health: liveness and readiness",
                ("GET /health", "GET /health/live", "GET /ready", "GET /health/ready")),
)
LINKS = {"health": "/health", "ready": "/ready", "metrics": "/metrics", "dashboard": "/dashboard",
         "models": "/v1/models", "usage": "/v1/usage"}


def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def banner(base_url: str) -> list[str]:
    """The start-up lines naming every surface, each with its paths under ``base_url``."""
    lines = [f"{NAME} {version()} on {base_url}"]
    lines.extend(f"  {s.title}: {', '.join(s.paths)}" for s in SURFACES)
    return lines


def index_endpoint() -> Endpoint:
    """``GET /`` (and ``HEAD /``, answered with the same head and no body): the index."""
    body = orjson.dumps({
        "name": NAME,
        "version": version(),
        "surfaces": {s.key: list(s.paths) for s in SURFACES},
        "links": LINKS,
    })

    async def index(incoming: Incoming, caller: Caller) -> Reply:
        return Reply(200, body)

    return index
