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
with ``raise ... from exc``. A ProxyError is immutable: a boundary that re-labels one (adds the
backend's name, masks a secret, knows a shorter wait) raises ``error.but(...)``, a new error of the
same class, ``from`` the old one. The tree says what failed in no protocol's words: each protocol
maps an error (its class and status) to its own envelope and type words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Self, TypedDict, Unpack

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


class Changes(TypedDict, total=False):
    """What ``ProxyError.but`` may change (each as the constructor takes it)."""

    message: str
    code: str
    status: int
    param: str | None
    retry_after: float | None
    details: Mapping[str, Any] | None
    headers: Mapping[str, str] | None
    retryable: bool
    origin: tuple[str, str, str] | None


FIELDS = frozenset(Changes.__annotations__)
# set by Python itself on any exception (raise ... from, a traceback, add_note): never part of the error
_EXCEPTION_SLOTS = frozenset({"__cause__", "__context__", "__suppress_context__", "__traceback__", "__notes__"})


class ProxyError(LipError):
    """A failed request: what the client is told, and whether another attempt may help.

    Immutable once built: a boundary that learns more (a backend name, a masked message, a wait)
    makes a new error with ``but(...)`` and raises that, chained to the old one (or, where the old
    one must stay out of logs because it is unmasked, to the old one's cause).
    """

    status: int = 500
    code: str = "internal_error"
    retryable: bool = False
    retry_after: float | None = None
    origin: tuple[str, str, str] | None = None  # (backend, model, upstream model) that failed; never rendered
    message: str
    param: str | None
    details: dict[str, Any] | None  # the error's own copy; change it with but(details=...)
    headers: Mapping[str, str]  # read-only

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
        retryable: bool | None = None,
        origin: tuple[str, str, str] | None = None,
    ) -> None:
        super().__init__(message)
        given: Changes = {"message": message, "param": param, "retry_after": retry_after, "details": details,
                          "headers": headers, "origin": origin}
        if code is not None:
            given["code"] = code
        if status is not None:
            given["status"] = status
        if retryable is not None:
            given["retryable"] = retryable
        self._set({**{name: getattr(self, name, None) for name in FIELDS}, **given})

    def but(self, **changes: Unpack[Changes]) -> Self:
        """A copy of this error (same class, cause, notes and every other field) with ``changes`` made."""
        unknown = set(changes) - FIELDS
        if unknown:
            raise TypeError(f"{type(self).__name__}.but() got unknown fields: {', '.join(sorted(unknown))}")
        copy = type(self).__new__(type(self))
        copy.__dict__.update(self.__dict__)
        if "__notes__" in self.__dict__:
            object.__setattr__(copy, "__notes__", list(self.__notes__))
        object.__setattr__(copy, "__cause__", self.__cause__)
        object.__setattr__(copy, "__suppress_context__", self.__suppress_context__)
        copy._set({**{name: getattr(self, name) for name in FIELDS}, **changes})
        return copy

    def _set(self, fields: Mapping[str, Any]) -> None:
        """Every field, normalised (a finite wait, the error's own copies of the mappings), then sealed."""
        put = object.__setattr__
        put(self, "args", (fields["message"],))
        for name, value in fields.items():
            put(self, name, _normal(name, value))
        put(self, "_sealed", True)

    if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any attribute being assigned

        def __setattr__(self, name: str, value: object) -> None:
            if name not in _EXCEPTION_SLOTS and self.__dict__.get("_sealed"):
                raise AttributeError(f"{type(self).__name__} is immutable: make a new one with .but({name}=...)")
            super().__setattr__(name, value)

        def __delattr__(self, name: str) -> None:
            if name not in _EXCEPTION_SLOTS and self.__dict__.get("_sealed"):
                raise AttributeError(f"{type(self).__name__} is immutable")
            super().__delattr__(name)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled and copied by its fields (the constructors of subclasses differ)."""
        fields = {name: getattr(self, name) for name in FIELDS}
        return _rebuilt, (type(self), {**fields, "headers": dict(self.headers)})


def _normal(name: str, value: Any) -> Any:
    if name == "retry_after":
        return wait_seconds(value)
    if name == "details":
        return dict(value) if value else None
    if name == "headers":
        return MappingProxyType(dict(value) if value else {})
    return value


def _rebuilt(cls: type[ProxyError], fields: Mapping[str, Any]) -> ProxyError:
    error = cls.__new__(cls)
    error._set(fields)
    return error


class InvalidRequest(ProxyError):
    status = 400
    code = "invalid_request"


class LimitExceeded(ProxyError):
    """A model limit; rendered with the ``detail`` body of the user's document."""

    status = 400
    code = "input_limit_exceeded"


class Unauthorized(ProxyError):
    status = 401
    code = "invalid_api_key"


class Forbidden(ProxyError):
    status = 403
    code = "forbidden"


class NotFound(ProxyError):
    status = 404
    code = "model_not_found"


class PayloadTooLarge(ProxyError):
    """The request body is larger than ``server.max_request_body``; the connection is closed after the answer."""

    status = 413
    code = "request_too_large"


class RequestTimeout(ProxyError):
    """The client's request body did not arrive in time; the connection is closed after the answer."""

    status = 408
    code = "request_timeout"


class RateLimited(ProxyError):
    status = 429
    code = "rate_limit_exceeded"


class BackendUnavailable(ProxyError):
    status = 503
    code = "backend_unavailable"


class UpstreamError(ProxyError):
    status = 502
    code = "upstream_error"


class UpstreamStatus(UpstreamError):
    """The upstream answered with an error status; ``status`` is the upstream's own."""

    def __init__(self, message: str, *, status: int, **kwargs: Any) -> None:
        if not 400 <= status <= 599:
            status = 502  # an upstream's own number: an error status, or a bad gateway
        kwargs.setdefault("retryable", status in RETRYABLE_STATUSES or status >= 500)
        super().__init__(message, status=status, **kwargs)


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
