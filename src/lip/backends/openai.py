"""Connector for upstreams that speak OpenAI Chat Completions (custom backends, openai and kin)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time
from typing import Any

import aiohttp
import orjson

from lip.backends.http import HttpPool
from lip.core.errors import ProxyError, UpstreamStatus, UpstreamTimeout, UpstreamUnreachable
from lip.core.model import ChatRequest, Finish, StreamEvent
from lip.core.sse import SSEDecoder
from lip.wire import openai as wire


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Everything the connector needs about one backend, secrets resolved."""

    name: str
    base_url: str
    keys: tuple[str, ...]  # empty: no auth header
    auth_header: str | None  # None: Authorization: Bearer
    headers: Mapping[str, str]
    timeout: float
    connect_timeout: float
    first_token_timeout: float
    stream_idle_timeout: float


class OpenAIConnector:
    def __init__(self, endpoint: Endpoint, pool: HttpPool) -> None:
        self._endpoint = endpoint
        self._pool = pool
        self._url = endpoint.base_url + "/chat/completions"
        self._keys = itertools.cycle(endpoint.keys) if endpoint.keys else None
        self._display_url = _without_userinfo(self._url)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json", **self._endpoint.headers}
        if self._keys is not None:
            key = next(self._keys)
            if self._endpoint.auth_header:
                headers[self._endpoint.auth_header] = key
            else:
                headers["Authorization"] = "Bearer " + key
        return headers

    def body(self, request: ChatRequest, upstream_model: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": upstream_model,
            "messages": [wire.message_to_wire(m) for m in request.messages],
        }
        if request.tools:
            body["tools"] = [wire.tool_to_wire(t) for t in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
        body.update(request.parameters)
        if "max_tokens" in body and wire.needs_max_completion_tokens(upstream_model):
            body.setdefault("max_completion_tokens", body.pop("max_tokens"))
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def stream(self, request: ChatRequest, upstream_model: str) -> AsyncGenerator[StreamEvent, None]:
        ep = self._endpoint
        payload = orjson.dumps(self.body(request, upstream_model))
        budget = ep.first_token_timeout if request.stream else ep.timeout
        timeout = aiohttp.ClientTimeout(total=None, connect=ep.connect_timeout, sock_connect=ep.connect_timeout)
        try:
            async with asyncio.timeout(budget):
                response = await self._pool.session.post(
                    self._url, data=payload, headers=self._headers(), timeout=timeout
                )
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"backend '{ep.name}' did not answer within {budget:g} s", code="upstream_timeout"
            ) from exc
        except aiohttp.ClientError as exc:
            raise self._unreachable(exc) from exc
        async with response:
            if response.status >= 400:
                raise await self._status_error(response)
            if request.stream:
                async for event in self._sse(response, upstream_model):
                    yield event
            else:
                for event in await self._json(response, upstream_model, budget):
                    yield event

    async def _json(self, response: aiohttp.ClientResponse, model: str, budget: float) -> list[StreamEvent]:
        try:
            async with asyncio.timeout(budget):
                raw = await response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(f"backend '{self._endpoint.name}' stalled sending its answer") from exc
        except aiohttp.ClientError as exc:
            raise self._unreachable(exc) from exc
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProxyError(f"backend '{self._endpoint.name}' sent a body that is not JSON",
                             code="upstream_malformed", status=502) from exc
        if not isinstance(body, dict):
            raise ProxyError(f"backend '{self._endpoint.name}' sent an unexpected body",
                             code="upstream_malformed", status=502)
        return wire.completion_events(body, model)

    async def _sse(self, response: aiohttp.ClientResponse, model: str) -> AsyncIterator[StreamEvent]:
        ep = self._endpoint
        decoder = SSEDecoder()
        first = True
        finished = False
        wait = ep.first_token_timeout
        content = response.content
        while True:
            try:
                async with asyncio.timeout(wait):
                    chunk = await content.readany()
            except TimeoutError as exc:
                what = "did not start its stream" if first else "stalled mid-stream"
                raise UpstreamTimeout(f"backend '{ep.name}' {what} ({wait:g} s without data)") from exc
            except aiohttp.ClientError as exc:
                raise self._cut(exc, first) from exc
            events = decoder.feed(chunk) if chunk else decoder.finish()
            for sse in events:
                if sse.data == b"[DONE]":
                    if not finished:
                        raise self._incomplete("sent [DONE] before finishing its answer", first)
                    return
                parsed = self._decode(sse.data, first)
                if parsed is None:
                    continue
                for event in wire.chunk_events(parsed, first, model):
                    if isinstance(event, Finish):
                        finished = True
                    yield event
                first = False
                wait = ep.stream_idle_timeout
            if not chunk:
                if not finished:
                    raise self._incomplete("closed the stream before finishing its answer", first)
                return

    def _decode(self, data: bytes, first: bool) -> dict[str, Any] | None:
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise self._incomplete("sent a malformed stream chunk", first) from exc
        if not isinstance(parsed, dict):
            return None
        if "error" in parsed and not parsed.get("choices"):
            error = parsed["error"] if isinstance(parsed["error"], dict) else {"message": str(parsed["error"])}
            raise ProxyError(self._redact(str(error.get("message") or "upstream error")),
                             code=str(error.get("code") or "upstream_error"), status=502)
        return parsed

    def _incomplete(self, what: str, first: bool) -> ProxyError:
        error = UpstreamUnreachable(f"backend '{self._endpoint.name}' {what}", code="upstream_incomplete")
        error.retryable = first
        return error

    def _cut(self, exc: BaseException, first: bool) -> ProxyError:
        error = UpstreamUnreachable(
            f"backend '{self._endpoint.name}' connection failed mid-stream: {type(exc).__name__}",
            code="upstream_disconnected",
        )
        error.retryable = first
        return error

    def _unreachable(self, exc: BaseException) -> UpstreamUnreachable:
        reason = self._redact(str(exc) or type(exc).__name__)
        return UpstreamUnreachable(f"backend '{self._endpoint.name}' is unreachable at {self._display_url}: {reason}")

    async def _status_error(self, response: aiohttp.ClientResponse) -> ProxyError:
        try:
            async with asyncio.timeout(self._endpoint.timeout):
                raw = await response.read()
        except (TimeoutError, aiohttp.ClientError):
            raw = b""
        message, code, param = _error_fields(raw)
        status = response.status
        return UpstreamStatus(
            self._redact(message or f"backend '{self._endpoint.name}' answered HTTP {status}"),
            status=status,
            code=code or ("rate_limit_exceeded" if status == 429 else "upstream_error"),
            param=param,
            retry_after=retry_after(response.headers),
        )

    def _redact(self, text: str) -> str:
        for key in self._endpoint.keys:
            if key:
                text = text.replace(key, "***")
        return text


def _error_fields(raw: bytes) -> tuple[str, str | None, str | None]:
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return raw[:500].decode("utf-8", "replace").strip(), None, None
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body))
        if isinstance(error, dict):
            code = error.get("code")
            param = error.get("param")
            return (str(error.get("message") or ""), code if isinstance(code, str) else None,
                    param if isinstance(param, str) else None)
        if isinstance(error, str):
            return error, None, None
    return "", None, None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None


def _without_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return scheme + sep + host.rpartition("@")[2] + slash + path
