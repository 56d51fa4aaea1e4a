"""The one error tree of the proxy; every failure a client or operator can see is one of these.

    LipError
    ├── ConfigError              configuration could not be loaded (never an HTTP response)
    └── ProxyError               a request failed; carries HTTP status, code, retryable, retry_after
        ├── InvalidRequest       400  the client sent something we cannot accept (names the field)
        ├── LimitExceeded        400  a model limit would be broken (input/output/context window)
        ├── Unauthorized         401
        ├── Forbidden            403
        ├── NotFound             404  unknown backend or model (lists what exists)
        ├── RequestTimeout       408  the client did not send its whole request in time
        ├── PayloadTooLarge      413  a request body over server.max_request_body
        ├── RateLimited          429  a proxy-side limit (Retry-After)
        ├── BackendUnavailable   503  backend configured but not usable (e.g. its key variable is unset)
        ├── TokenizerUnavailable 503  the offline tokenizer data could not be loaded
        └── UpstreamError        the upstream failed
            ├── UpstreamStatus       the upstream answered with an error status (passed through)
            ├── UpstreamUnreachable  502  connect error, reset before any answer
            ├── UpstreamTimeout      504  connect, first-token or idle time-out
            ├── UpstreamMalformed    502  an answer or stream event that cannot be read
            └── ResponseTooLarge     502  an answer or event over max_response_bytes / max_event_bytes

Foreign exceptions (aiohttp, OS errors) are translated at the boundary that catches them,
with ``raise ... from exc``. Frontends render a ProxyError in their own wire envelope.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MAX_RETRY_AFTER = 86_400.0  # seconds: the most any wait is taken as (an upstream may send inf or 1e400)


def wait_seconds(value: float | None) -> float | None:
    """A wait as a finite number of seconds in [0, MAX_RETRY_AFTER]; None for none or NaN."""
    if value is None or math.isnan(value):
        return None
    return min(max(value, 0.0), MAX_RETRY_AFTER)


class LipError(Exception):
    """Root of every error the proxy raises on purpose."""


class ConfigError(LipError):
    """Configuration problems; ``problems`` lists each as "file: key.path: what was expected"."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = "1 configuration error" if count == 1 else f"{count} configuration errors"
        super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in self.problems))


class ProxyError(LipError):
    """A failed request: what the client is told, and whether another attempt may help."""

    status: int = 500
    code: str = "internal_error"
    error_type: str = "api_error"
    retryable: bool = False
    retry_after: float | None = None
    origin: tuple[str, str, str] | None = None  # (backend, model, upstream model) that failed; never rendered

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.param = param
        self.retry_after = wait_seconds(retry_after)
        self.details = dict(details) if details else None
        self.headers = dict(headers) if headers else {}


class InvalidRequest(ProxyError):
    status = 400
    code = "invalid_request"
    error_type = "invalid_request_error"


class LimitExceeded(ProxyError):
    """A model limit; rendered with the ``detail`` body of the user's document."""

    status = 400
    code = "input_limit_exceeded"
    error_type = "invalid_request_error"


class Unauthorized(ProxyError):
    status = 401
    code = "invalid_api_key"
    error_type = "authentication_error"


class Forbidden(ProxyError):
    status = 403
    code = "forbidden"
    error_type = "permission_error"


class NotFound(ProxyError):
    status = 404
    code = "model_not_found"
    error_type = "invalid_request_error"


class PayloadTooLarge(ProxyError):
    """The request body is larger than ``server.max_request_body``; the connection is closed after the answer."""

    status = 413
    code = "request_too_large"
    error_type = "invalid_request_error"


class RequestTimeout(ProxyError):
    """The client's request body did not arrive in time; the connection is closed after the answer."""

    status = 408
    code = "request_timeout"
    error_type = "invalid_request_error"


class RateLimited(ProxyError):
    status = 429
    code = "rate_limit_exceeded"
    error_type = "rate_limit_error"


class BackendUnavailable(ProxyError):
    status = 503
    code = "backend_unavailable"
    error_type = "api_error"


class UpstreamError(ProxyError):
    status = 502
    code = "upstream_error"
    error_type = "api_error"


class UpstreamStatus(UpstreamError):
    """The upstream answered with an error status; ``status`` is the upstream's own."""

    def __init__(self, message: str, *, status: int, **kwargs: Any) -> None:
        if not 400 <= status <= 599:
            status = 502  # an upstream's own number: an error status, or a bad gateway
        super().__init__(message, status=status, **kwargs)
        self.retryable = status in RETRYABLE_STATUSES or status >= 500
        if status == 429:
            self.error_type = "rate_limit_error"
        elif 400 <= status < 500:
            self.error_type = "invalid_request_error"


class UpstreamUnreachable(UpstreamError):
    status = 502
    code = "upstream_unreachable"
    retryable = True


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"
    retryable = True


RETRYABLE_STATUSES = frozenset({408, 409, 429})


class UpstreamMalformed(UpstreamError):
    """An upstream answer or stream event that cannot be read as its protocol's."""

    status = 502
    code = "upstream_malformed"
    retryable = True  # before the first byte only (the connector says which)


class ResponseTooLarge(UpstreamError):
    status = 502
    code = "upstream_response_too_large"


class TokenizerUnavailable(ProxyError):
    """The offline tokenizer data could not be loaded (a request that needs counting gets 503)."""

    status = 503
    code = "tokenizer_unavailable"
