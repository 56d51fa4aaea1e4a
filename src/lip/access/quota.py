"""Per-client requests and tokens per minute, from the client's tier, reconciled with real usage."""

from __future__ import annotations

import asyncio

from lip.access.clients import Client
from lip.core.model import ChatRequest, Usage
from lip.limits.admission import Admitter
from lip.limits.ratelimit import RateLimiter
from lip.limits.reservation import Reservation, reserve


class ClientLimits:
    def __init__(self, admitter: Admitter, limiter: RateLimiter) -> None:
        self._admitter = admitter
        self._limiter = limiter
        self._pending: set[asyncio.Task[None]] = set()

    async def admit(self, client: Client | None, request: ChatRequest) -> Reservation | None:
        """Take one request (and the request's tokens) from the client's buckets, or raise 429."""
        if client is None or not client.quota:
            return None
        quota = client.quota
        tokens = 0
        if quota.tokens_per_minute is not None:
            tokens = await self._admitter.count(request, "o200k_base") + (request.max_output_tokens or 0)
        return await reserve(self._limiter, "client:" + client.name, quota, tokens,
                             refused=lambda: f"Client '{client.name}' reached its tier's limit")

    async def refund(self, grant: Reservation | None) -> None:
        if grant is not None:
            await grant.refund()

    def reconcile(self, grant: Reservation | None, usage: Usage | None) -> None:
        """Charge the client what the upstream reported instead of the reservation (in the background)."""
        if grant is None or not grant.metered or usage is None:
            return
        task = asyncio.get_running_loop().create_task(grant.settle(usage.total_tokens))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
