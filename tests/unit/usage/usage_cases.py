"""Shared by the SQLite (unit) and PostgreSQL (integration) store tests: sample records, the queries
to ask of them, and a plain-Python reference that says what every store must answer."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from lip.usage.records import COLUMNS, UsageQuery, UsageRecord

DAY0 = datetime(2024, 5, 1, tzinfo=UTC).timestamp()  # a midnight, UTC


def make(i: int, at: float, **changes: Any) -> UsageRecord:
    values: dict[str, Any] = {
        "at": at, "request_id": f"req-{i}", "client": "acme", "tier": "premium", "surface": "openai",
        "selector": "gpt-4o", "backend": "openai", "model": "gpt-4o", "upstream_model": "gpt-4o-2024-08-06",
        "stream": False, "input_tokens": 100 + i, "output_tokens": 10 + i, "cached_tokens": i % 3,
        "estimated": False, "cost": round(0.001 * (i + 1), 6), "latency_ms": 100.0 + 7 * i, "ttft_ms": None,
        "status": 200, "error_code": None,
    }  # fmt: skip
    values.update(changes)
    return UsageRecord(**values)


def sample() -> list[UsageRecord]:
    """40 records over three UTC days: two backends, three models, two clients and none, streams, errors."""
    out: list[UsageRecord] = []
    for i in range(40):
        day = i % 3
        at = DAY0 + day * 86400 + (i * 1301) % 86400
        changes: dict[str, Any] = {}
        if i % 4 == 0:
            changes.update(backend="anthropic", model="claude-sonnet-4", upstream_model=None, surface="anthropic")
        elif i % 4 == 1:
            changes.update(model="gpt-4o-mini", cost=None)
        if i % 5 == 0:
            changes.update(client="ops", tier="enterprise")
        elif i % 7 == 0:
            changes.update(client=None, tier=None)
        if i % 2 == 0:
            changes.update(stream=True, ttft_ms=20.0 + 3.5 * i)
        if i % 6 == 5:
            changes.update(status=429 if i % 12 == 5 else 502, error_code="rate_limited", output_tokens=0)
        if i % 9 == 0:
            changes.update(estimated=True)
        out.append(make(i, at, **changes))
    out.append(make(40, DAY0 + 86400, backend=None, model=None, upstream_model=None, status=401,
                     error_code="invalid_api_key", input_tokens=0, output_tokens=0, cost=None))  # fmt: skip
    out.append(make(41, DAY0 + 86400))  # same instant as the one before: newest-first keeps insertion order reversed
    return out


QUERIES: dict[str, UsageQuery] = {
    "all": UsageQuery(),
    "limit": UsageQuery(limit=5),
    "since-until": UsageQuery(since=DAY0 + 86400, until=DAY0 + 2 * 86400),
    "backend": UsageQuery(backend="anthropic"),
    "model": UsageQuery(model="gpt-4o-mini"),
    "client": UsageQuery(client="ops"),
    "backend-model-client": UsageQuery(backend="openai", model="gpt-4o", client="acme"),
    "nothing": UsageQuery(client="nobody"),
    "by-model": UsageQuery(group_by="model"),
    "by-backend": UsageQuery(group_by="backend"),
    "by-client": UsageQuery(group_by="client"),
    "by-day": UsageQuery(group_by="day"),
    "by-day-limit": UsageQuery(group_by="day", limit=2),
    "by-model-filtered": UsageQuery(group_by="model", client="acme", since=DAY0 + 3600),
    "by-backend-nothing": UsageQuery(group_by="backend", client="nobody"),
}


def _percentile(values: Sequence[float], p: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    pos = p * (len(ordered) - 1)
    low, high = math.floor(pos), math.ceil(pos)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (pos - low), 3)


def _summary(records: Sequence[UsageRecord]) -> dict[str, Any]:
    costs = [r.cost for r in records if r.cost is not None]
    return {
        "requests": len(records),
        "input_tokens": sum(r.input_tokens for r in records),
        "output_tokens": sum(r.output_tokens for r in records),
        "cached_tokens": sum(r.cached_tokens for r in records),
        "cost": round(sum(costs), 9) if costs else None,
        "errors": sum(1 for r in records if r.status >= 400),
        "latency_p50_ms": _percentile([r.latency_ms for r in records], 0.5),
        "latency_p95_ms": _percentile([r.latency_ms for r in records], 0.95),
        "ttft_p50_ms": _percentile([r.ttft_ms for r in records if r.ttft_ms is not None], 0.5),
    }


def _day(r: UsageRecord) -> str:
    return datetime.fromtimestamp(r.at, UTC).date().isoformat()


KEYS: dict[str, Callable[[UsageRecord], str | None]] = {
    "model": lambda r: r.model, "backend": lambda r: r.backend, "client": lambda r: r.client, "day": _day,
}  # fmt: skip


def expected(records: Sequence[UsageRecord], q: UsageQuery) -> dict[str, Any]:
    """What a store holding ``records`` (written in this order) must answer to ``q``."""
    matching = [
        r for r in records
        if (q.since is None or r.at >= q.since) and (q.until is None or r.at < q.until)
        and (q.backend is None or r.backend == q.backend) and (q.model is None or r.model == q.model)
        and (q.client is None or r.client == q.client)
    ]  # fmt: skip
    if q.group_by is None:
        order = sorted(enumerate(matching), key=lambda p: (p[1].at, p[0]), reverse=True)
        return {"records": [{c: getattr(r, c) for c in COLUMNS} for _, r in order[: q.limit]]}
    key = KEYS[q.group_by]
    keys = sorted({key(r) for r in matching}, key=lambda k: (k is not None, k or ""))
    groups = [{"key": k, **_summary([r for r in matching if key(r) == k])} for k in keys]
    return {"group_by": q.group_by, "groups": groups[: q.limit], "totals": _summary(matching)}
