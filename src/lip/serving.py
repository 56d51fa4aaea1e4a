"""How uvicorn serves the app: slow clients timed out, connections bounded, forwarded headers trusted
only from configured proxies.

uvicorn arms its keep-alive timer only between requests, so a client that connects and sends nothing,
or sends half a request head, holds its connection for ever. ``protocol_class`` adds a header deadline
to uvicorn's HTTP protocol: from the connection (or the first byte of the next request on a kept-alive
connection) to the end of the request head. A client that started a head and missed it gets a 408;
one that sent nothing is closed. The body has its own deadline in the front door (``edge.door.timed_receive``).
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol

from lip.config.schema import ServerConfig

TIMEOUT_BODY = orjson.dumps({"error": {
    "message": "The request head was not complete in time (server.header_timeout); the connection is closed.",
    "type": "invalid_request_error", "param": None, "code": "request_timeout"}})


def _closing(status: bytes, body: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)


TIMEOUT_RESPONSE = _closing(b"408 Request Timeout", TIMEOUT_BODY)
TOO_LARGE_RESPONSE = _closing(b"431 Request Header Fields Too Large", orjson.dumps({"error": {
    "message": "The request head is larger than server.max_header_bytes; the connection is closed.",
    "type": "invalid_request_error", "param": None, "code": "request_header_too_large"}}))


class HeaderDeadline:
    """Mixed into a uvicorn HTTP protocol: a request head must be complete ``header_timeout`` s after it
    began, and within ``max_header_bytes`` (uvicorn's httptools parser keeps a head of any size)."""

    header_timeout: float = 10.0
    max_header_bytes: int = 65536
    transport: asyncio.Transport
    cycle: Any

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._lip_timer: asyncio.TimerHandle | None = None
        self._lip_started = False  # bytes of the awaited head have arrived
        self._arm(started=False)

    def data_received(self, data: bytes) -> None:
        if self._lip_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._arm(started=True)  # the first byte of the next request on a kept-alive connection
        elif self._lip_timer is not None:
            self._lip_started = True
        if self._lip_timer is not None:
            self._lip_head_bytes += len(data)
        super().data_received(data)  # type: ignore[misc]
        if self._lip_timer is not None and self.cycle is not self._lip_awaited:
            self._disarm()  # a new request's head is complete
        elif self._lip_timer is not None and self._lip_head_bytes > self.max_header_bytes:
            self._disarm()  # the parser would keep every byte of a head that never ends
            if not self.transport.is_closing():
                self.transport.write(TOO_LARGE_RESPONSE)
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self, *, started: bool) -> None:
        self._lip_awaited = self.cycle
        self._lip_started = started
        self._lip_head_bytes = 0
        self._lip_timer = asyncio.get_running_loop().call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        timer = getattr(self, "_lip_timer", None)
        if timer is not None:
            timer.cancel()
            self._lip_timer = None

    def _expired(self) -> None:
        self._lip_timer = None
        if self.transport.is_closing():
            return
        if self._lip_started:
            self.transport.write(TIMEOUT_RESPONSE)
        self.transport.close()


def _base() -> type[asyncio.Protocol]:
    if importlib.util.find_spec("httptools") is not None:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: PLC0415

        return HttpToolsProtocol
    return H11Protocol


class HttpProtocol(HeaderDeadline, _base()):  # type: ignore[misc]
    """With the default header deadline, importable by name (spawned uvicorn workers on other systems)."""


def protocol_class(header_timeout: float, max_header_bytes: int = 65536) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools when installed, else h11) with a header deadline and size cap."""
    return type("HttpProtocol", (HttpProtocol,), {"header_timeout": header_timeout,
                                                  "max_header_bytes": max_header_bytes})


def uvicorn_options(server: ServerConfig) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config``/``uvicorn.run`` from proxy.yaml's ``server:``."""
    trusted = list(server.trusted_proxies)
    return {
        "http": protocol_class(server.header_timeout, server.max_header_bytes),
        "timeout_keep_alive": server.keep_alive_timeout,
        "limit_concurrency": server.max_connections,
        "proxy_headers": bool(trusted),  # uvicorn's default trusts X-Forwarded-For from 127.0.0.1
        "forwarded_allow_ips": trusted or None,
        "server_header": False,
    }
