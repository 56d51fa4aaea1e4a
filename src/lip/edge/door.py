"""The ASGI front door: every route from ASGI messages to its endpoint and back, with no framework.

Every request gets an id here (the client's ``x-request-id`` when it is sane), echoed back on the
response. The route table (lip/edge/routes.py) gives the path's endpoint; this module builds its
``Incoming`` once, reads its body, and sends its ``Reply`` as one head and one body message (or a
stream). A client that hangs up mid-stream stops the stream, which closes the upstream call.
Starlette used to serve all but the chat routes; its middleware stack and Request/Response objects
cost more than routing, limits and usage together (docs/performance.md), and nothing of it is left.

Before a body is read the caller is authenticated once (``admit``: the key is in the headers, or in
Gemini's ``?key=``) and its declared ``Content-Length`` is checked against ``max_body``; a chunked
body is counted as it arrives. A refused request's body is never buffered: the refusal (401, 413) is
answered in the route's protocol, and the connection is closed when what is left unread could be
large. A route without a body (a GET) is not waited for one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, parse_qsl, quote

from lip.core.errors import PayloadTooLarge, ProxyError, RequestTimeout
from lip.edge.asgi import Message, Receive, Scope, Send
from lip.edge.errors import error_reply, internal, method_not_allowed, unknown_url
from lip.edge.exchange import Caller, Reply, Unrouted
from lip.edge.routes import Methods, Route, Table
from lip.observability.access import AccessLog
from lip.protocols.base import Incoming
from lip.protocols.routes import CHAT

if TYPE_CHECKING:
    from lip.access.clients import Client

__all__ = ["Caller", "FrontDoor", "Message", "Receive", "Reply", "RequestIds", "Scope", "Send"]

SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
VALID_HOST = re.compile(r"^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
CLOSE = (b"connection", b"close")
SPREAD = 0x9E37_79B9_7F4A_7C15  # odd: multiplying by it permutes 64-bit numbers
HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")  # kept as is when encoding
LOCATION_SAFE = ":/%#?=@[]!$&'()*+,;"
MAX_BODY = 32 * 1024 * 1024  # bytes of a request body, unless the app says otherwise
NO_LENGTH = frozenset({204, 304})  # statuses sent without a content-length (as those below 200)
Admission = Callable[[Mapping[str, str], Mapping[str, str], str], "Client | None"]  # (headers, query, address)


class RequestIds:
    """Request ids: a random per-process prefix and a permuted counter (unique, no system call per request)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)

    def of(self, scope: Scope) -> str:
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate: str = value.decode("latin-1")
                if SAFE_REQUEST_ID.match(candidate):
                    return candidate
                break
        number: int = next(self._counter) * SPREAD & 0xFFFF_FFFF_FFFF_FFFF  # unique, and not a visible count
        return f"{self._prefix}{number:016x}"


class FrontDoor:
    """Serves every HTTP request from ``table``; a websocket is closed (the proxy has none)."""

    def __init__(
        self,
        table: Table,
        *,
        body_timeout: float = 60.0,
        admit: Admission | None = None,
        max_body: int = MAX_BODY,
        access: AccessLog | None = None,
    ) -> None:
        self._body_timeout = body_timeout
        self._admit = admit
        self._max_body = max_body
        self._ids = RequestIds()
        self._access = access
        self.closing = False  # draining: every response ends its connection (``connection: close``)
        self.replace(table)

    def replace(self, table: Table) -> None:
        """Serve new routes from the next request on (a reload); requests under way keep the old ones."""
        self._table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1000, "reason": ""})
        elif self._access is None:
            await self._serve(scope, receive, send)
        else:
            await self._access(scope, receive, send, self._serve)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        receive = timed_receive(receive, self._body_timeout)
        request_id = self._ids.of(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        tail = [(b"x-request-id", request_id.encode())]
        if self.closing:
            tail.append(CLOSE)
        path: str = scope["path"]
        table = self._table
        methods, params, name = table.resolve(path)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        route = methods.get(scope["method"]) if methods is not None else None
        if route is None:
            await send_reply(self._unrouted(scope, methods, headers), scope, receive, send, tail)
            return
        query = (dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
                 if scope["query_string"] else {})
        if route.pick is not None:
            route = route.pick(headers, query)
        client = scope.get("client")
        caller = state["caller"] = Caller(request_id, client[0] if client else "-")
        incoming = Incoming(body=b"", path=params, query=query, headers=headers, method=name)
        if route.auth or route.body:
            caller.refused = self._before_body(headers, query, caller, route.body)
            if caller.refused is not None and route.body and _unread(headers, self._max_body):
                tail.append(CLOSE)  # what is left unread may be large: don't read it
        if route.body and caller.refused is None:
            try:
                body = await read_body(receive, self._max_body)
            except RequestTimeout as error:
                await send_reply(error_reply(error, route.errors), scope, receive, send, tail)
                return
            except PayloadTooLarge as error:
                caller.refused = error
            else:
                if body is None:
                    return  # the client left before its request was complete
                incoming.body = body
        reply = await self._answer(route, incoming, caller, scope, headers)
        await send_reply(reply, scope, receive, send, tail)

    async def _answer(self, route: Route, incoming: Incoming, caller: Caller, scope: Scope,
                      headers: Mapping[str, str]) -> Reply:
        """The endpoint's reply, or its error in the route's envelope (a chat endpoint renders its own)."""
        if caller.refused is not None and not route.hears_refusals:
            return error_reply(caller.refused, route.errors)
        try:
            return await route.endpoint(incoming, caller)
        except ProxyError as error:
            return error_reply(error, route.errors)
        except Unrouted:
            return unknown_url(scope["method"], scope["path"], self._table.envelope(scope["path"], headers))
        except Exception as exc:  # noqa: BLE001  (a bug of ours, logged by internal(): a 500, never a traceback)
            return error_reply(internal(caller.request_id, exc), route.errors)

    def _unrouted(self, scope: Scope, methods: Methods | None, headers: Mapping[str, str]) -> Reply:
        """A path without routes (404, or a redirect to the same path without or with its trailing slash
        where that has routes other than chat), or a method the path has none for (405)."""
        method, path = scope["method"], scope["path"]
        if methods is not None:
            return method_not_allowed(method, path, self._table.envelope(path))
        if path != "/":
            other = path.rstrip("/") if path.endswith("/") else path + "/"
            found = self._table.resolve(other)[0]
            if found is not None and any(route.kind != CHAT for route in found.values()):
                return Reply(307, media_type="", headers={"location": _location(scope, other)})
        return unknown_url(method, path, self._table.envelope(path, headers))

    def _before_body(self, headers: Mapping[str, str], query: Mapping[str, str], caller: Caller,
                     sized: bool) -> ProxyError | None:
        """Authenticate (and, for a route with a body, check its declared size) before a byte of the
        body is read; the refusal, if any."""
        try:
            if self._admit is not None:
                caller.client = self._admit(headers, query, caller.address)
                caller.admitted = True
                if caller.client is not None:
                    caller.client_name = caller.client.name
            declared = headers.get("content-length")
            if sized and declared is not None and (not declared.isdigit() or int(declared) > self._max_body):
                raise too_large(self._max_body)
        except ProxyError as error:
            return error
        return None


def _unread(headers: Mapping[str, str], limit: int) -> bool:
    """Whether a refused request's unread body may be large (no declared length, or too long)."""
    declared = headers.get("content-length")
    return declared is None or not declared.isdigit() or int(declared) > limit


def _location(scope: Scope, path: str) -> str:
    """The URL of ``path`` on the host the request was sent to (as Starlette's slash redirects said it)."""
    host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
    scheme = scope.get("scheme", "http")
    if host is None or not VALID_HOST.match(host):
        server = scope.get("server")
        if server is None:
            host = None
        else:
            name, port = server
            name = f"[{name}]" if ":" in name and not name.startswith("[") else name
            host = name if port == {"http": 80, "https": 443}.get(scheme) else f"{name}:{port}"
    path = path.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    query = scope.get("query_string", b"").decode("latin-1")
    url = SplitResult(scheme, host, path, query, "").geturl() if host is not None else (
        f"{path}?{query}" if query else path)
    return quote(url, safe=LOCATION_SAFE)


async def read_body(receive: Receive, limit: int = MAX_BODY) -> bytes | None:
    """The whole request body, or None if the client disconnected first; PayloadTooLarge past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than this proxy accepts ({limit} bytes; "
                           "server.max_request_body).", headers={"connection": "close"})


def timed_receive(receive: Receive, seconds: float) -> Receive:
    """``receive`` that raises RequestTimeout when the request body is not complete ``seconds`` after the
    head (a chunked body that never ends, a Content-Length longer than what is sent); once the body is
    in, messages (a disconnect) are awaited without a deadline."""
    deadline = asyncio.get_running_loop().time() + seconds
    complete = False

    async def receive_in_time() -> Message:
        nonlocal complete
        if complete:
            return await receive()
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            complete = True  # answered now; what the client sends later is not waited for
            raise RequestTimeout(f"The request body was not complete within {seconds:g} s "
                                 "(server.body_timeout).", headers={"connection": "close"}) from None
        if not message.get("more_body", False):
            complete = True
        return message

    return receive_in_time


def _head(reply: Reply, tail: list[tuple[bytes, bytes]], length: int | None) -> Message:
    headers = []
    media = reply.media_type
    if media:
        if media.startswith("text/") and "charset" not in media:
            media += "; charset=utf-8"
        headers.append((b"content-type", media.encode("latin-1")))
    if length is not None and reply.status >= 200 and reply.status not in NO_LENGTH:
        headers.append((b"content-length", str(length).encode()))
    if reply.headers:
        headers.extend((k.lower().encode("latin-1"), header_value(v)) for k, v in reply.headers.items())
        if "connection" in reply.headers:
            tail = [header for header in tail if header[0] != b"connection"]
    headers.extend(tail)
    return {"type": "http.response.start", "status": reply.status, "headers": headers}


def header_value(value: str) -> bytes:
    """``value`` as header bytes: printable ASCII as is, anything else (``oké中``, CR, LF, NUL) as UTF-8
    percent-escapes, so that a model name never breaks or splits the head of an answer."""
    if value.isascii() and value.isprintable():
        return value.encode("ascii")
    return quote(value, safe=HEADER_SAFE).encode("ascii")


async def send_reply(reply: Reply, scope: Scope, receive: Receive, send: Send,
                     tail: list[tuple[bytes, bytes]]) -> None:
    """Send ``reply`` with the ``tail`` headers (the request id, ``connection: close``) after its own."""
    if reply.stream is None:
        body = b"" if scope["method"] == "HEAD" else reply.body
        await send(_head(reply, tail, len(reply.body)))
        await send({"type": "http.response.body", "body": body})
        return
    await _stream(reply.stream, _head(reply, tail, None), receive, send)


async def _stream(chunks: AsyncIterator[bytes], head: Message, receive: Receive, send: Send) -> None:
    """Relay ``chunks``; if the client disconnects, stop waiting for the next one and close them."""
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        try:
            await send(head)
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            watcher.cancel()  # before any other await: no cancellation from it after this
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()  # the cancellation was the watcher's: the client left
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
