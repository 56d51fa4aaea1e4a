"""The ASGI front door: the chat routes straight from ASGI messages, everything else through Starlette.

Every request gets an id here (the client's ``x-request-id`` when it is sane), echoed back on the
response. The chat routes, which carry all of the traffic, skip Starlette's middleware stack and its
Request/Response objects: the profile of a proxied request showed them costing more than routing,
limits and usage together (docs/performance.md). What they did that matters is done here: the body
is read, the reply goes out as one head and one body message (or a stream), and a client that
hangs up mid-stream stops the stream, which closes the upstream call.

Before a body is read the caller is authenticated (``admit``: the key is in the headers, or in
Gemini's ``?key=``) and its declared ``Content-Length`` is checked against ``max_body``; a chunked
body is counted as it arrives. A refused request's body is never buffered: the endpoint answers the
refusal (401, 413) in its protocol, and the connection is closed when what is left unread could
be large.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lip.core.errors import PayloadTooLarge, ProxyError, RequestTimeout
from lip.observability.access import AccessLog
from lip.protocols.base import Incoming

if TYPE_CHECKING:
    from lip.access.clients import Client

SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Gemini's chat paths at every API version the SDKs use (google-genai: v1 by default, v1beta and v1alpha on
# request; LiteLLM with a custom base: none), as ``{prefix}{model}:{method}``.
GEMINI_PREFIXES = ("/v1beta/models/", "/v1/models/", "/v1alpha/models/", "/models/")
CLOSE = (b"connection", b"close")
SPREAD = 0x9E37_79B9_7F4A_7C15  # odd: multiplying by it permutes 64-bit numbers
HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")  # kept as is when encoding
MAX_BODY = 32 * 1024 * 1024  # bytes of a request body, unless the app says otherwise


@dataclass(slots=True)
class Reply:
    """An answer to send: a whole body, or a stream of byte chunks."""

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
    client_name: str | None = None  # filled in by the endpoint, for the access log
    route: str | None = None  # and the backend:model that answered (or was tried last)


ChatEndpoint = Callable[[Incoming, Caller], Awaitable[Reply]]
Admission = Callable[[Mapping[str, str], Mapping[str, str], str], "Client | None"]  # (headers, query, address)
Refusal = Callable[[str, str], Reply]  # (method, path) -> the 405 answer
Failure = Callable[[ProxyError, str], Reply]  # (error, path) -> the error in the path's envelope


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
    """Routes ``POST`` chat paths to their endpoints; all else (and lifespan) goes to ``fallback``."""

    def __init__(
        self,
        fallback: ASGIApp,
        chat: Mapping[str, ChatEndpoint],
        gemini: Mapping[str, ChatEndpoint],
        refuse: Refusal,
        *,
        fail: Failure | None = None,
        body_timeout: float = 60.0,
        admit: Admission | None = None,
        max_body: int = MAX_BODY,
        access: AccessLog | None = None,
    ) -> None:
        self._refuse = refuse
        self._fail = fail
        self._body_timeout = body_timeout
        self._admit = admit
        self._max_body = max_body
        self._ids = RequestIds()
        self._access = access
        self.closing = False  # draining: every response ends its connection (``connection: close``)
        self.replace(fallback, chat, gemini)

    def replace(self, fallback: ASGIApp, chat: Mapping[str, ChatEndpoint], gemini: Mapping[str, ChatEndpoint]) -> None:
        """Serve new routes from the next request on (a reload); requests under way keep the old ones."""
        self._fallback = fallback
        self._chat = dict(chat)  # exact paths
        self._gemini = dict(gemini)  # {version}/models/{model}:{method} by method

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._fallback(scope, receive, send)
        elif self._access is None:
            await self._serve(scope, receive, send)
        else:
            await self._access(scope, receive, send, self._serve)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        receive = timed_receive(receive, self._body_timeout)
        request_id = self._ids.of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (b"x-request-id", request_id.encode())
        if self.closing:
            send = _with_header(send, CLOSE)
        path: str = scope["path"]
        endpoint, route_method = self._chat.get(path), ""
        params: dict[str, str] = {}
        if endpoint is None and ":" in path:
            endpoint, params, route_method = self._gemini_route(path)
        if endpoint is None:
            await self._other(scope, receive, send, id_header)
            return
        if scope["method"] != "POST":
            await send_reply(self._refuse(scope["method"], path), scope, receive, send, id_header)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"))) if scope["query_string"] else {}
        client = scope.get("client")
        caller = scope["state"]["caller"] = Caller(request_id, client[0] if client else "-")
        incoming = Incoming(body=b"", path=params, query=query, headers=headers, method=route_method)
        caller.refused = self._before_body(headers, query, caller)
        if caller.refused is None:
            try:
                body = await read_body(receive, self._max_body)
            except RequestTimeout as error:
                if self._fail is not None:
                    await send_reply(self._fail(error, path), scope, receive, send, id_header)
                return
            except PayloadTooLarge as error:
                caller.refused = error
            else:
                if body is None:
                    return  # the client left before its request was complete
                incoming.body = body
        reply = await endpoint(incoming, caller)
        await send_reply(reply, scope, receive, send, id_header)

    def _before_body(self, headers: Mapping[str, str], query: Mapping[str, str], caller: Caller) -> ProxyError | None:
        """Authenticate and check the declared size before a byte of the body is read; the refusal, if any."""
        declared = headers.get("content-length")
        try:
            if self._admit is not None:
                caller.client = self._admit(headers, query, caller.address)
                caller.admitted = True
            if declared is not None and (not declared.isdigit() or int(declared) > self._max_body):
                raise too_large(self._max_body)
        except ProxyError as error:
            unread = declared is None or not declared.isdigit() or int(declared) > self._max_body
            # what is left unread may be large: don't read it, close the connection after the answer
            return error.but(headers={**error.headers, "connection": "close"}) if unread else error
        return None

    async def _other(self, scope: Scope, receive: Receive, send: Send, id_header: tuple[bytes, bytes]) -> None:
        """Everything but the chat routes, to Starlette; a request with a body is admitted and its body
        capped first, as on the chat routes."""
        path: str = scope["path"]
        if scope["method"] == "POST" and self._fail is not None:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            query = dict(parse_qsl(scope["query_string"].decode("latin-1"))) if scope["query_string"] else {}
            client = scope.get("client")
            refused = self._before_body(headers, query, Caller("", client[0] if client else "-"))
            if refused is not None:
                await send_reply(self._fail(refused, path), scope, receive, send, id_header)
                return
            receive = capped_receive(receive, self._max_body)
        await self._fallback(scope, receive, _with_header(send, id_header))

    def _gemini_route(self, path: str) -> tuple[ChatEndpoint | None, dict[str, str], str]:
        """The Gemini endpoint of ``{prefix}{model}:{method}`` (any of GEMINI_PREFIXES), if it is one."""
        for prefix in GEMINI_PREFIXES:
            if path.startswith(prefix):
                model, _, method = path[len(prefix):].rpartition(":")
                endpoint = self._gemini.get(method) if model else None
                return endpoint, {"model": model}, method
        return None, {}, ""


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


def capped_receive(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises PayloadTooLarge once more than ``limit`` body bytes have arrived."""
    size = 0

    async def receive_capped() -> Message:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > limit:
            raise too_large(limit)
        return message

    return receive_capped


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


def _head(reply: Reply, id_header: tuple[bytes, bytes], length: int | None) -> Message:
    media = reply.media_type
    if media.startswith("text/") and "charset" not in media:
        media += "; charset=utf-8"
    headers = [(b"content-type", media.encode("latin-1"))]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    headers.extend((k.lower().encode("latin-1"), header_value(v)) for k, v in reply.headers.items())
    headers.append(id_header)
    return {"type": "http.response.start", "status": reply.status, "headers": headers}


def header_value(value: str) -> bytes:
    """``value`` as header bytes: printable ASCII as is, anything else (``oké中``, CR, LF, NUL) as UTF-8
    percent-escapes, so that a model name never breaks or splits the head of an answer."""
    if value.isascii() and value.isprintable():
        return value.encode("ascii")
    return quote(value, safe=HEADER_SAFE).encode("ascii")


async def send_reply(reply: Reply, scope: Scope, receive: Receive, send: Send,
                     id_header: tuple[bytes, bytes]) -> None:
    if reply.stream is None:
        body = b"" if scope["method"] == "HEAD" else reply.body
        await send(_head(reply, id_header, len(reply.body)))
        await send({"type": "http.response.body", "body": body})
        return
    await _stream(reply.stream, _head(reply, id_header, None), receive, send)


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


def _with_header(send: Send, header: tuple[bytes, bytes]) -> Send:
    async def send_with_header(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), header]
        await send(message)

    return send_with_header
