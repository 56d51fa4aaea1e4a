"""The HTTP side of every upstream protocol: auth, time-outs, error statuses, SSE reading, redaction.

A protocol plugs in a ``Codec`` (``lip.protocols.codecs``: how to address, encode, decode and read
its error bodies); ``HttpConnector`` does the rest, identically for every upstream protocol.
Foreign exceptions (aiohttp, time-outs) become ProxyErrors here and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time
from typing import TypeVar

import aiohttp
import orjson
from yarl import URL

from lip.backends.http import HttpPool
from lip.backends.keys import KeyRing
from lip.core.errors import (
    ProxyError,
    ResponseTooLarge,
    UpstreamMalformed,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnreachable,
    wait_seconds,
)
from lip.core.model import ChatRequest, StreamEvent, UsageReport
from lip.core.secrets import Secrets
from lip.core.sse import SSEDecoder
from lip.protocols.codecs import Codec, CodecCounts, CodecHeaders, CodecRequestHeaders


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Everything a connector needs about one backend, secrets resolved."""

    name: str
    base_url: str
    keys: tuple[str, ...]  # empty: no auth header
    auth_type: str | None  # "bearer", "custom" (the key in auth_header), None: the protocol's own way
    auth_header: str | None
    headers: Mapping[str, str]
    timeout: float
    connect_timeout: float
    first_token_timeout: float
    stream_idle_timeout: float
    secrets: tuple[str, ...] = ()  # besides the keys: values of the ${ENV} references in ``headers``
    max_response_bytes: int = 64 * 2**20  # a whole (non-streaming) answer
    max_event_bytes: int = 16 * 2**20  # one server-sent event of a stream


COUNT_TIMEOUT = 10.0  # seconds a counting call may take (at most the backend's timeout)


def _add(headers: dict[str, str], name: str, value: str) -> None:
    """Set ``name``; where the backend's configuration already sets it, join both lists of values."""
    for existing, current in headers.items():
        if existing.lower() == name.lower():
            values = [v.strip() for v in f"{current},{value}".split(",") if v.strip()]
            headers[existing] = ",".join(dict.fromkeys(values))
            return
    headers[name] = value


MAX_MESSAGE = 2000  # characters of an upstream's error message that are passed on
MAX_CODE = 100  # characters of an upstream's error code or param
DRAIN_TIMEOUT = 5.0  # seconds a settled stream's rest may take before its connection is closed instead
ERROR_BODY_CAP = 64 * 1024  # bytes of an upstream error body that are read (the rest is not needed)
E = TypeVar("E", bound=ProxyError)


async def read_capped(response: aiohttp.ClientResponse, cap: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed ``cap`` bytes (nothing more is read)."""
    if response.content_length is not None and response.content_length > cap:
        return None
    chunks: list[bytes] = []
    total = 0
    while chunk := await response.content.readany():
        total += len(chunk)
        if total > cap:
            return None
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class HttpConnector:
    """Calls one backend's upstream over the app's pooled session."""

    def __init__(self, endpoint: Endpoint, pool: HttpPool, codec: Codec) -> None:
        self._endpoint = endpoint
        self._pool = pool
        self._codec = codec
        self._keys = KeyRing(endpoint.keys)
        self._secrets = Secrets((*endpoint.keys, *endpoint.secrets), min_length=1)
        self._timeout_settings = aiohttp.ClientTimeout(
            total=None, connect=endpoint.connect_timeout, sock_connect=endpoint.connect_timeout
        )
        self._urls: dict[tuple[str, bool], URL] = {}  # parsed once: URL parsing is a hot-path cost
        own = {k.lower() for k in endpoint.headers}
        protocol = codec.headers() if isinstance(codec, CodecHeaders) else {}
        self._fixed = {"Content-Type": "application/json",
                       **{k: v for k, v in protocol.items() if k.lower() not in own}, **endpoint.headers}
        self._passed_on = codec if isinstance(codec, CodecRequestHeaders) else None
        self._draining: set[asyncio.Task[None]] = set()  # settled streams being read to their end

    def _url(self, upstream_model: str, stream: bool) -> URL:
        url = self._urls.get((upstream_model, stream))
        if url is None:
            if len(self._urls) > 1024:
                self._urls.clear()
            url = self._urls[(upstream_model, stream)] = URL(self._codec.url(self._endpoint.base_url, upstream_model,
                                                                             stream))
        return url

    def _headers(self, key: str | None, request: ChatRequest) -> dict[str, str]:
        headers = dict(self._fixed)
        if self._passed_on is not None:
            for name, value in self._passed_on.request_headers(request).items():
                _add(headers, name, value)
        if key is not None:
            ep = self._endpoint
            if ep.auth_type == "custom" and ep.auth_header:
                headers[ep.auth_header] = key
            elif ep.auth_type == "bearer":
                headers["Authorization"] = "Bearer " + key
            else:
                headers.update(self._codec.default_auth(key))
        return headers

    async def stream(self, request: ChatRequest, upstream_model: str) -> AsyncGenerator[StreamEvent, None]:
        ep = self._endpoint
        url = self._url(upstream_model, request.stream)
        payload = orjson.dumps(self._codec.body(request, upstream_model))
        # One deadline from sending the request to its first data (a stream's first chunk, or a whole
        # JSON answer): the response head and the body share it, so a head at 2 s and data at 4.5 s
        # break a 3 s limit.
        budget = ep.first_token_timeout if request.stream else ep.timeout
        deadline = asyncio.get_running_loop().time() + budget
        timeout = self._timeout_settings
        key = self._keys.take() if self._keys else None
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._pool.session.post(url, data=payload, headers=self._headers(key, request),
                                                         timeout=timeout)
        except aiohttp.ConnectionTimeoutError as exc:
            raise UpstreamTimeout(f"backend '{ep.name}' did not accept a connection within "
                                  f"{ep.connect_timeout:g} s (connect_timeout)") from exc
        except TimeoutError as exc:
            what = "first_token_timeout" if request.stream else "timeout"
            raise UpstreamTimeout(f"backend '{ep.name}' did not answer within {budget:g} s ({what})") from exc
        except aiohttp.ClientError as exc:
            raise self._unreachable(str(url), exc) from exc
        handed_over = False
        try:
            if response.status >= 400:
                error = await self._status_error(response)
                if error.status == 429 and key is not None:
                    self._keys.rest(key, error.retry_after if error.retry_after is not None else 60.0)
                    if self._keys.spare():
                        error = error.but(retry_after=0.0)  # another key is ready: retry at once with it
                raise error
            if request.stream:
                async for event in self._sse(response, upstream_model, deadline):
                    yield event
                if not response.content.is_eof():  # settled before the upstream's [DONE] and end
                    handed_over = True
                    self._drain(response)
            else:
                for event in await self._json(response, upstream_model, deadline):
                    yield event
        finally:
            if not handed_over:
                response.release()  # back to the pool if it was read to the end, else closed

    async def count_tokens(self, request: ChatRequest, upstream_model: str) -> tuple[int, bool]:
        """The backend's own count of ``request``'s input; ProxyError when it cannot say."""
        ep = self._endpoint
        codec = self._codec
        if not isinstance(codec, CodecCounts):
            raise ProxyError(f"backend '{ep.name}' has no token counting endpoint", code="count_unsupported")
        url = codec.count_url(ep.base_url, upstream_model)
        payload = orjson.dumps(codec.count_body(request, upstream_model))
        key = self._keys.take() if self._keys else None
        budget = min(ep.timeout, COUNT_TIMEOUT)
        try:
            async with asyncio.timeout(budget):
                async with self._pool.session.post(url, data=payload, headers=self._headers(key, request),
                                                   timeout=self._timeout_settings) as response:
                    if response.status >= 400:
                        raise await self._status_error(response)
                    raw = await response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(f"backend '{ep.name}' did not count within {budget:g} s") from exc
        except aiohttp.ClientError as exc:
            raise self._unreachable(url, exc) from exc
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        result = codec.count_result(body) if isinstance(body, dict) else None
        if result is None:
            raise UpstreamMalformed(f"backend '{ep.name}' answered its counting endpoint without a count")
        return result

    def _drain(self, response: aiohttp.ClientResponse) -> None:
        """Read what is left of a settled stream (its ``[DONE]`` and end) behind the client's back, so
        that the connection goes back to the pool: a connection released unread is closed, and the
        next stream would pay a new TCP (and TLS) handshake."""

        async def drain() -> None:
            try:
                async with asyncio.timeout(DRAIN_TIMEOUT):
                    while await response.content.readany():
                        pass
            except (TimeoutError, aiohttp.ClientError):
                pass
            finally:
                response.release()

        task = asyncio.get_running_loop().create_task(drain())
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def _json(self, response: aiohttp.ClientResponse, model: str, deadline: float) -> list[StreamEvent]:
        name = self._endpoint.name
        cap = self._endpoint.max_response_bytes
        try:
            if response.content.is_eof():  # the whole body came with the head: no wait, no timer
                raw: bytes | None = await response.read()
            else:
                async with asyncio.timeout_at(deadline):
                    raw = await read_capped(response, cap)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"backend '{name}' did not send its whole answer within "
                                  f"{self._endpoint.timeout:g} s (timeout)") from exc
        except aiohttp.ClientError as exc:
            raise self._broken(f"connection failed while sending its answer: {type(exc).__name__}", True) from exc
        if raw is None or len(raw) > cap:
            raise ResponseTooLarge(f"backend '{name}' sent an answer larger than {cap} bytes "
                                   "(max_response_bytes in its backend.yaml)")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamMalformed(f"backend '{name}' sent a body that is not JSON") from exc
        if not isinstance(body, dict):
            raise UpstreamMalformed(f"backend '{name}' sent an unexpected body")
        try:
            return self._codec.events(body, model)
        except ProxyError as error:  # an error in a 200 body (Anthropic's type: error, Gemini's error)
            raise self._scrub(error) from error.__cause__  # not from the unmasked one: it stays out of logs

    async def _sse(self, response: aiohttp.ClientResponse, model: str,
                   deadline: float) -> AsyncGenerator[StreamEvent, None]:
        ep = self._endpoint
        reader = SSEDecoder()
        decoder = self._codec.decoder(model)
        started = False
        settled = False  # finished, and the usage that follows the finish has arrived
        first = True  # the first chunk is due by ``deadline`` (first_token_timeout from the request)
        content = response.content
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout_at(deadline if first else loop.time() + ep.stream_idle_timeout):
                    chunk = await content.readany()
            except TimeoutError as exc:
                if first:
                    what = f"did not start its stream within {ep.first_token_timeout:g} s (first_token_timeout)"
                else:
                    what = f"stalled mid-stream ({ep.stream_idle_timeout:g} s without data)"
                raise self._timeout(f"backend '{ep.name}' {what}", not started) from exc
            except aiohttp.ClientError as exc:
                raise self._broken(f"connection failed mid-stream: {type(exc).__name__}", not started) from exc
            complete = reader.feed(chunk) if chunk else reader.finish()
            if reader.pending > ep.max_event_bytes:
                raise ResponseTooLarge(f"backend '{ep.name}' sent a stream event larger than "
                                         f"{ep.max_event_bytes} bytes (max_event_bytes in its backend.yaml)")
            for sse in complete:
                try:
                    events = decoder.feed(sse)
                except ProxyError as error:
                    raise self._scrub(error.but(retryable=error.retryable and not started,
                                                message=f"backend '{ep.name}': {error.message}")) from error.__cause__
                if events is None:
                    if not decoder.finished:
                        raise self._broken("ended its stream before finishing its answer", not started)
                    return
                for event in events:
                    yield event
                    started = True
                    settled = settled or (decoder.finished and isinstance(event, UsageReport))
                if settled:
                    return  # nothing is left to say: don't wait for a [DONE] or a close that may not come
            first = False
            if not chunk:
                if not decoder.finished:
                    raise self._broken("closed the stream before finishing its answer", not started)
                return

    def _timeout(self, message: str, retryable: bool) -> UpstreamTimeout:
        return UpstreamTimeout(message, retryable=retryable)

    def _broken(self, what: str, retryable: bool) -> UpstreamUnreachable:
        return UpstreamUnreachable(f"backend '{self._endpoint.name}' {what}", code="upstream_incomplete",
                                   retryable=retryable)

    def _unreachable(self, url: str, exc: BaseException) -> UpstreamUnreachable:
        reason = self._secrets.mask(str(exc) or type(exc).__name__)
        where = _without_userinfo(url)
        return UpstreamUnreachable(f"backend '{self._endpoint.name}' is unreachable at {where}: {reason}")

    async def _status_error(self, response: aiohttp.ClientResponse) -> ProxyError:
        try:
            async with asyncio.timeout(self._endpoint.timeout):
                raw = await read_capped(response, ERROR_BODY_CAP) or b""
        except (TimeoutError, aiohttp.ClientError):
            raw = b""
        said = self._codec.error_fields(raw)
        status = response.status
        wait = retry_after(response.headers)
        return self._scrub(UpstreamStatus(
            said.message or f"backend '{self._endpoint.name}' answered HTTP {status}",
            status=status,
            code=said.code or ("rate_limit_exceeded" if status == 429 else "upstream_error"),
            param=said.param,
            retry_after=wait if wait is not None else said.retry_after,
        ))

    def _scrub(self, error: E) -> E:
        """A copy of ``error`` with every string an upstream may have written (message, code, param,
        details) with the backend's secrets masked and its length bounded: the one place where
        what an upstream says about a failure is made fit to reach a client, a log or a record."""
        mask = self._secrets.mask
        return error.but(
            message=_clip(mask(error.message), MAX_MESSAGE),
            code=_clip(mask(error.code), MAX_CODE),
            param=None if error.param is None else _clip(mask(error.param), MAX_CODE),
            details=self._secrets.mask_value(error.details) if error.details else error.details,
        )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), clamped to
    [0, MAX_RETRY_AFTER] (``inf``, ``1e400`` and ``nan`` are an upstream's numbers too)."""
    ms = headers.get("retry-after-ms")
    if ms:
        wait = _seconds(ms, 1000.0)
        if wait is not None:
            return wait
    value = headers.get("Retry-After")
    if not value:
        return None
    wait = _seconds(value)
    if wait is not None:
        return wait
    try:
        return wait_seconds(parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError, OverflowError):
        return None


def _seconds(text: str, per_second: float = 1.0) -> float | None:
    try:
        return wait_seconds(float(text) / per_second)
    except ValueError:
        return None


def _without_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return scheme + sep + host.rpartition("@")[2] + slash + path
