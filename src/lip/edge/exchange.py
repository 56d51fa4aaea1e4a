"""What every endpoint gets and gives: the request (``Incoming``) and its ``Caller`` in, a ``Reply`` out.

One endpoint type serves every route (chat, token counts, model lists, stored responses, health,
metrics, the dashboard): ``(Incoming, Caller) -> Reply``. An endpoint raises ProxyError for an
answer in its route's error envelope (lip/edge/errors.py renders it), and ``Unrouted`` when what it
was asked for does not exist under its route (the answer to an unknown URL).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lip.core.errors import ProxyError
from lip.protocols.base import Incoming

if TYPE_CHECKING:
    from lip.access.clients import Client


@dataclass(slots=True)
class Reply:
    """An answer to send: a whole body, or a stream of byte chunks. An empty ``media_type`` sends no
    ``content-type`` (a 304)."""

    status: int
    body: bytes = b""
    media_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: AsyncIterator[bytes] | None = None


@dataclass(slots=True)
class Caller:
    """Who sent the request, as far as the transport tells."""

    request_id: str
    address: str  # the peer's IP ("-" when unknown)
    admitted: bool = False  # the front door authenticated it before reading the body (``client`` is who)
    client: Client | None = None
    refused: ProxyError | None = None  # why it is refused before its body was read: the endpoint answers it
    client_name: str | None = None  # for the access log
    route: str | None = None  # and the backend:model that answered (or was tried last)


Endpoint = Callable[[Incoming, Caller], Awaitable[Reply]]


class Unrouted(Exception):
    """Raised by an endpoint for a path its route matched but that names nothing (an unknown asset)."""
