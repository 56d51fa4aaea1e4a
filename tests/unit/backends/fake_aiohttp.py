"""An in-process stand-in for the aiohttp session a connector posts through: scripted answers, recorded calls.

Only what ``HttpConnector`` touches is there (``post`` both awaited and used as a context manager; a
response's status, headers, content length, ``content.readany``/``is_eof``, ``read`` and ``release``).
No socket is opened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from lip.backends.connector import Endpoint, HttpConnector
from lip.backends.http import HttpPool
from lip.core.model import ChatRequest, Message


class FakeContent:
    """The body in ``chunks``, one per read; then its end, or (``hang``) an upstream that goes silent."""

    def __init__(self, chunks: list[bytes], hang: bool = False) -> None:
        self._chunks = list(chunks)
        self._hang = hang
        self.reads = 0  # readany calls that returned data

    async def readany(self) -> bytes:
        if not self._chunks:
            if self._hang:
                await asyncio.Event().wait()
            return b""
        self.reads += 1
        return self._chunks.pop(0)

    def is_eof(self) -> bool:
        return not self._chunks and not self._hang


class FakeResponse:
    def __init__(self, status: int, body: bytes | list[bytes] = b"", headers: Mapping[str, str] | None = None,
                 content_length: int | None = None, hang: bool = False) -> None:
        chunks = body if isinstance(body, list) else [body] if body else []
        self.status = status
        self.headers = CIMultiDictProxy(CIMultiDict(headers or {}))
        self.content_length = content_length
        self.content = FakeContent(chunks, hang)
        self.released = False

    async def read(self) -> bytes:
        out = b""
        while chunk := await self.content.readany():
            out += chunk
        return out

    def release(self) -> None:
        self.released = True


@dataclass
class Sent:
    url: str
    data: bytes
    headers: dict[str, str]


@dataclass
class FakeSession:
    answers: list[FakeResponse]
    sent: list[Sent] = field(default_factory=list)

    def post(self, url: Any, *, data: bytes, headers: dict[str, str], timeout: Any) -> _Call:
        self.sent.append(Sent(str(url), data, dict(headers)))
        return _Call(self.answers.pop(0))


class _Call:
    """What ``session.post`` returns: awaitable, and an async context manager (like aiohttp's)."""

    def __init__(self, response: FakeResponse) -> None:
        self._response = response

    def __await__(self) -> Any:
        async def answer() -> FakeResponse:
            return self._response

        return answer().__await__()

    async def __aenter__(self) -> FakeResponse:
        return self._response

    async def __aexit__(self, *exc: object) -> None:
        self._response.release()


class FakePool(HttpPool):
    def __init__(self, session: FakeSession) -> None:
        super().__init__()
        self._fake = session

    @property
    def session(self) -> Any:
        return self._fake


def endpoint(keys: tuple[str, ...] = ("sk-upstream-key-0001",), *, secrets: tuple[str, ...] = (),
             headers: Mapping[str, str] | None = None, auth_type: str | None = None,
             auth_header: str | None = None) -> Endpoint:
    return Endpoint(name="up", base_url="https://upstream.example/v1", keys=keys, auth_type=auth_type,
                    auth_header=auth_header, headers=dict(headers or {}), timeout=5.0, connect_timeout=5.0,
                    first_token_timeout=5.0, stream_idle_timeout=5.0, secrets=secrets)


def connector(codec: Any, *answers: FakeResponse, ep: Endpoint | None = None) -> tuple[HttpConnector, FakeSession]:
    session = FakeSession(list(answers))
    return HttpConnector(ep or endpoint(), FakePool(session), codec), session


def request(stream: bool = False, **changes: Any) -> ChatRequest:
    return ChatRequest(model="up:m", messages=(Message("user", "hello"),), stream=stream, **changes)


async def drain(conn: HttpConnector, req: ChatRequest | None = None, model: str = "m") -> list[Any]:
    return [event async for event in conn.stream(req or request(), model)]
