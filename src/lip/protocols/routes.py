"""How a client protocol declares its HTTP routes: method, path pattern and endpoint kind, and which
requests outside its routes get its error envelope.

A protocol folder's ``__init__.py`` holds its ``ClientSide``; the registry carries it, and the edge
builds its one route table from the registry's declarations (lip/edge/routes.py). Path patterns:

- an exact path: ``/v1/chat/completions``;
- ``{prefix}{model}:{method}`` as ``/v1beta/models/{model}:generateContent``: ``model`` is everything
  between the prefix and the last ``:`` (slashes included, never empty), ``method`` the name after it;
- one last segment as ``/v1/responses/{id}``: ``id`` is a non-empty segment without ``/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Kind = Literal["chat", "count", "models", "stored-response"]
CHAT: Kind = "chat"
COUNT: Kind = "count"
MODELS: Kind = "models"
STORED: Kind = "stored-response"


@dataclass(frozen=True, slots=True)
class ClientRoute:
    """One route a protocol's clients call."""

    method: str  # GET, POST, DELETE (a GET route answers HEAD too)
    path: str  # a pattern, as this module's docstring says
    kind: Kind


@dataclass(frozen=True, slots=True)
class Listing:
    """How a protocol is named in the ``GET /`` index and the start-up banner."""

    key: str  # the index's key
    title: str  # the banner's words
    paths: tuple[str, ...]  # "METHOD /path", the routes a user is shown (not every alias)


@dataclass(frozen=True, slots=True)
class ClientSide:
    """A protocol's client routes, and how a request outside them is known to be its client's."""

    routes: tuple[ClientRoute, ...]
    listing: Listing
    prefixes: tuple[str, ...] = ()  # a path outside the routes starting so gets this protocol's errors
    client_headers: tuple[str, ...] = ()  # a request carrying one of these headers is this protocol's client
    client_query: tuple[str, ...] = ()  # ... and, where a path is shared (a model list), these query names
    fallback: bool = False  # a path no protocol claims gets this protocol's errors (OpenAI's)

    def claims(self, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
        """Whether a request on a path several protocols declare (``GET /v1/models``) is this protocol's."""
        return any(name in headers for name in self.client_headers) or any(name in query for name in self.client_query)


def colon_route(prefix: str, method: str, kind: Kind, http_method: str = "POST") -> ClientRoute:
    """``{prefix}{model}:{method}``: a route whose path carries a model and a method name (Gemini's)."""
    return ClientRoute(http_method, f"{prefix}{{model}}:{method}", kind)
