"""What every upstream connector offers: a canonical request in, a canonical event stream out."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

from lip.core.model import ChatRequest, StreamEvent


class Connector(Protocol):
    """One backend's way of calling its upstream.

    ``stream`` yields ResponseStart first, once the upstream has produced its first data;
    errors before that are ProxyErrors whose ``retryable`` says whether another attempt may
    help. Errors after it end the stream (no retry: the client already has bytes).
    """

    def stream(self, request: ChatRequest, upstream_model: str) -> AsyncGenerator[StreamEvent, None]: ...
