"""What is recorded for each request (UsageRecord) and what can be asked of the records (UsageQuery)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from lip.core.errors import InvalidRequest

GROUP_BY: tuple[str, ...] = ("model", "backend", "client", "day")
MAX_LIMIT = 100_000
QUERY_PARAMS: tuple[str, ...] = ("since", "until", "backend", "model", "client", "group_by", "limit")


@dataclass(slots=True)  # not frozen: built once per request, and a frozen __init__ costs a call per field
class UsageRecord:
    """One request as the client saw it, failed and rejected ones included."""

    at: float  # unix time when the request arrived
    request_id: str
    client: str | None  # client name (None: no client keys configured)
    tier: str | None
    surface: str  # "openai", "anthropic", "gemini", "openai-responses"
    selector: str  # the model the client sent
    backend: str | None  # the backend that answered (or was tried last)
    model: str | None  # that backend's model name (the "model variant")
    upstream_model: str | None
    stream: bool
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    estimated: bool  # True when the upstream reported no usage and the proxy counted
    cost: float | None  # from the model's pricing, None when no pricing
    latency_ms: float
    ttft_ms: float | None  # time to first token (streams), None otherwise
    status: int  # HTTP status the client got (200, 400, 429, 502...)
    error_code: str | None
    # features of the client's protocol the upstream's protocol had no equivalent of ("metadata, thinking"),
    # as the x-lip-dropped header named them; None when nothing was left out
    dropped: str | None = None
    # The answer was continued after a stream failed mid-way: "backend:model@chars" for each route whose
    # stream failed and how many characters of the answer had reached the client ("a:m@120,b:m@300").
    continued_from: str | None = None
    replica: str | None = None  # the proxy process's replica name (server.replica / LIP_REPLICA; the host name)

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-ready mapping, one key per field, in field order."""
        return {name: getattr(self, name) for name in COLUMNS}


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(UsageRecord))


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """Filters (``since`` inclusive, ``until`` exclusive, unix seconds) and an optional grouping.

    Without ``group_by`` the newest ``limit`` records are returned; with it, at most ``limit``
    groups. Invalid values raise ``InvalidRequest`` naming the parameter.
    """

    since: float | None = None
    until: float | None = None
    backend: str | None = None
    model: str | None = None
    client: str | None = None
    group_by: str | None = None  # None | "model" | "backend" | "client" | "day"
    limit: int = 1000

    def __post_init__(self) -> None:
        if self.group_by is not None and self.group_by not in GROUP_BY:
            raise InvalidRequest(
                f"group_by must be one of {', '.join(GROUP_BY)}; got {self.group_by!r}", param="group_by"
            )
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}; got {self.limit}", param="limit")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise InvalidRequest(f"{name} must be a finite time", param=name)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_SECONDS: Mapping[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(name: str, text: str, *, now: float | None = None) -> float:
    """Unix seconds from ``1714521600``, ``2024-05-01``, ``2024-05-01T12:00:00Z`` or an age (``24h``, ``7d``).

    A date or time without a zone is UTC; an age counts back from ``now``.
    """
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        return seconds if math.isfinite(seconds) else _bad_time(name, text)
    age = _DURATION.match(text)
    if age:
        current = time.time() if now is None else now
        return current - float(age.group(1)) * _UNIT_SECONDS[age.group(2)]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return _bad_time(name, text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _bad_time(name: str, text: str) -> float:
    raise InvalidRequest(
        f"{name} must be unix seconds, an ISO 8601 date or time, or an age like 24h or 7d; got {text!r}",
        param=name,
    )


def parse_query(
    params: Mapping[str, str], *, now: float | None = None, ignore: Collection[str] = ("key",)
) -> UsageQuery:
    """A UsageQuery from HTTP query parameters (or CLI options); unknown names are rejected (400).

    ``ignore`` names parameters that belong to someone else (``key``: Gemini-style authentication).
    """
    unknown = sorted(k for k in params if k not in QUERY_PARAMS and k not in ignore)
    if unknown:
        raise InvalidRequest(
            f"unknown parameter {unknown[0]!r}; expected {', '.join(QUERY_PARAMS)}", param=unknown[0]
        )

    def text(name: str) -> str | None:
        value = params.get(name)
        return value if value else None

    since, until = text("since"), text("until")
    limit_text = text("limit")
    limit = 1000
    if limit_text is not None:
        try:
            limit = int(limit_text)
        except ValueError:
            raise InvalidRequest(f"limit must be an integer; got {limit_text!r}", param="limit") from None
    return UsageQuery(
        since=None if since is None else parse_time("since", since, now=now),
        until=None if until is None else parse_time("until", until, now=now),
        backend=text("backend"),
        model=text("model"),
        client=text("client"),
        group_by=text("group_by"),
        limit=limit,
    )
