"""``tokenizer: upstream``: the backend's own count of a request, memoised, with a local fallback.

The connector asks the backend's counting endpoint (Anthropic ``/messages/count_tokens``, Gemini
``:countTokens``, the ``/tokenize`` of vLLM and llama.cpp servers). A count is remembered for the
same route and the same request content (a retry, a failover back to the route, a client that
counts before it sends), in a bounded memo. When the endpoint cannot answer, admission counts
locally and the log says so, at most once a minute a route.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from lip.core.errors import ProxyError
from lip.core.model import ChatRequest

log = logging.getLogger("lip.limits")

MEMO_SIZE = 4096
WARN_EVERY = 60.0  # seconds between two warnings of one route


@dataclass(frozen=True, slots=True)
class UpstreamTokens:
    tokens: int
    framed: bool  # True: the count includes the chat format (templates); False: text alone (llama.cpp)


@runtime_checkable
class CountsTokens(Protocol):
    """A connector whose backend can count a request's input tokens."""

    async def count_tokens(self, request: ChatRequest, upstream_model: str) -> tuple[int, bool]:
        """(tokens, framed): see UpstreamTokens. Raises ProxyError when the backend cannot count."""
        ...


UpstreamCall = Callable[[ChatRequest], Awaitable[UpstreamTokens]]


class UpstreamCounts:
    """The memo and the fallback warnings of upstream counts; one per app."""

    def __init__(self, *, memo_size: int = MEMO_SIZE, warn_every: float = WARN_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._memo: OrderedDict[Hashable, UpstreamTokens] = OrderedDict()
        self._memo_size = memo_size
        self._warn_every = warn_every
        self._clock = clock
        self._warned: dict[str, float] = {}

    async def count(self, label: str, key: Hashable, request: ChatRequest, call: UpstreamCall,
                    fallback: str) -> UpstreamTokens | None:
        """The backend's count of ``request`` (``key``: its content), or None after a logged warning."""
        memo_key = (label, key)
        found = self._memo.get(memo_key)
        if found is not None:
            self._memo.move_to_end(memo_key)
            return found
        try:
            found = await call(request)
        except ProxyError as error:
            self._warn(label, error.message, fallback)
            return None
        self._memo[memo_key] = found
        if len(self._memo) > self._memo_size:
            self._memo.popitem(last=False)
        return found

    def _warn(self, label: str, reason: str, fallback: str) -> None:
        now = self._clock()
        last = self._warned.get(label)
        if last is not None and now - last < self._warn_every:
            return
        if len(self._warned) > 1024:
            self._warned.clear()
        self._warned[label] = now
        log.warning("%s: the upstream token count is unavailable (%s); counting locally with %s", label,
                    reason, fallback)


def unsupported(backend: str) -> UpstreamCall:
    """The call for a backend whose connector has no counting endpoint (the mock): always fails over."""

    async def call(request: ChatRequest) -> UpstreamTokens:
        raise ProxyError(f"backend '{backend}' has no token counting endpoint", code="count_unsupported")

    return call
