"""Per-client requests and tokens per minute, from the client's tier, reconciled with real usage."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from lip.access.clients import Client
from lip.core.errors import RateLimited
from lip.core.model import ChatRequest, Usage
from lip.limits.admission import Admitter
from lip.limits.ratelimit import Quota, RateLimiter


@dataclass(frozen=True, slots=True)
class Grant:
    key: str
    quota: Quota
    reserved: int
    headers: dict[str, str]


class ClientLimits:
    def __init__(self, admitter: Admitter, limiter: RateLimiter) -> None:
        self._admitter = admitter
        self._limiter = limiter
        self._pending: set[asyncio.Task[None]] = set()

    async def admit(self, client: Client | None, request: ChatRequest) -> Grant | None:
        """Take one request (and the request's tokens) from the client's buckets, or raise 429."""
        if client is None or not client.quota:
            return None
        quota = client.quota
        reserved = 0
        if quota.tokens_per_minute is not None:
            reserved = await self._admitter.count(request, "o200k_base") + (request.max_output_tokens or 0)
        key = "client:" + client.name
        decision = await self._limiter.acquire(key, quota, reserved)
        headers = decision.headers()
        if not decision.allowed:
            raise RateLimited(
                f"Client '{client.name}' reached its tier's limit; retry in {decision.retry_after:.1f} s.",
                retry_after=decision.retry_after, headers=headers,
            )
        return Grant(key, quota, reserved, headers)

    async def refund(self, grant: Grant | None) -> None:
        if grant is not None and grant.reserved and grant.quota.tokens_per_minute is not None:
            await self._limiter.adjust(grant.key, grant.quota, -grant.reserved)

    def reconcile(self, grant: Grant | None, usage: Usage | None) -> None:
        """Charge the client what the upstream reported instead of the reservation (in the background)."""
        if grant is None or grant.quota.tokens_per_minute is None or usage is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._limiter.adjust(grant.key, grant.quota, usage.total_tokens - grant.reserved)
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
