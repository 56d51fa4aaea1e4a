"""The one pooled upstream HTTP client of an app, opened and closed by its lifespan."""

from __future__ import annotations

import aiohttp
import orjson

from lip.core.errors import LipError


class HttpPool:
    """Owns the aiohttp session shared by every connector (keep-alive, connection reuse)."""

    def __init__(self, *, limit: int = 1000) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector,
                json_serialize=lambda v: orjson.dumps(v).decode(),
                auto_decompress=True,
                trust_env=False,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise LipError("the upstream HTTP pool is not started (app lifespan not running)")
        return self._session
