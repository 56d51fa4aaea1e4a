"""The usage dashboard: ``GET /dashboard`` and its assets, shipped with the package (no CDN).

The page is static; its script reads the proxy's own ``GET /v1/usage`` (with the client key the user
pastes, sent as a Bearer header) and draws everything by hand. A Content-Security-Policy keeps it
to this origin: no inline script, no third-party hosts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from lip.edge.exchange import Caller, Reply, Unrouted
from lip.edge.routes import Served
from lip.protocols.base import Incoming

PAGE = "dashboard.html"
# The assets the page may load: name -> content type. Anything else under /dashboard/assets/ is a 404.
ASSETS: dict[str, str] = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def asset(name: str) -> Asset:
    """A file shipped in this package, read once."""
    body = resources.files(__name__).joinpath(name).read_bytes()
    media_type = "text/html; charset=utf-8" if name == PAGE else ASSETS[name]
    return Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:16] + '"')


def _respond(incoming: Incoming, item: Asset, extra: dict[str, str] | None = None) -> Reply:
    headers = {**HEADERS, "ETag": item.etag, **(extra or {})}
    if incoming.headers.get("if-none-match") == item.etag:
        return Reply(304, media_type="", headers=headers)
    return Reply(200, item.body, media_type=item.media_type, headers=headers)


async def page(incoming: Incoming, caller: Caller) -> Reply:
    return _respond(incoming, asset(PAGE), {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY"})


async def static(incoming: Incoming, caller: Caller) -> Reply:
    name = incoming.path["name"]
    if name not in ASSETS:
        raise Unrouted  # answered as any unknown URL, in the proxy's error format
    return _respond(incoming, asset(name))


def routes() -> list[Served]:
    """The dashboard's routes, for the route table."""
    return [Served("GET", "/dashboard", page), Served("GET", "/dashboard/assets/{name}", static)]
