"""SQL both stores share: the filter clause, and rows turned into the one JSON shape of a query result.

Record results are ``{"records": [record, ...]}``, newest first. Group results are
``{"group_by": ..., "groups": [{"key": ..., **summary}, ...], "totals": summary}``, groups in ascending key order
(a null key first), where a summary is requests, token sums, cost (null when no record had a
price), errors (status >= 400) and latency percentiles interpolated like PostgreSQL's
``percentile_cont``. Floats are rounded (cost to 1e-9, milliseconds to 1e-3) so that both stores
give the same answer for the same records.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from lip.core.errors import ProxyError
from lip.usage.records import COLUMNS, UsageQuery

RECORDS_TABLE = "usage_records"

# The indexes both stores create (the queries filter by time, client, backend and model).
INDEXES = (
    f"CREATE INDEX usage_records_at ON {RECORDS_TABLE} (at)",
    f"CREATE INDEX usage_records_client_at ON {RECORDS_TABLE} (client, at)",
    f"CREATE INDEX usage_records_backend_model_at ON {RECORDS_TABLE} (backend, model, at)",
)
VERSION_TABLE = "usage_schema_version"
PERCENTILES: tuple[float, ...] = (0.5, 0.95)
# The aggregate columns of a summary, after the key, in the order ``summary`` takes them.
AGGREGATES = (
    "COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cached_tokens), SUM(cost), "
    "COUNT(CASE WHEN status >= 400 THEN 1 END)"
)

Mark = Callable[[int], str]  # the placeholder for the n-th parameter (1-based): "?" or "$n"


def where(q: UsageQuery, mark: Mark, *extra: str) -> tuple[str, list[object]]:
    """`` WHERE ...`` for the query's filters (empty when none), and its parameters."""
    clauses: list[str] = []
    params: list[object] = []
    for column, op, value in (
        ("at", ">=", q.since), ("at", "<", q.until),
        ("backend", "=", q.backend), ("model", "=", q.model), ("client", "=", q.client),
    ):  # fmt: skip
        if value is not None:
            params.append(value)
            clauses.append(f"{column} {op} {mark(len(params))}")
    clauses.extend(extra)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def select_records(q: UsageQuery, mark: Mark) -> tuple[str, list[object]]:
    """The newest ``q.limit`` records that match, every column in ``COLUMNS`` order."""
    clause, params = where(q, mark)
    params.append(q.limit)
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM {RECORDS_TABLE}{clause} "
        f"ORDER BY at DESC, id DESC LIMIT {mark(len(params))}"
    )
    return sql, params


def record_json(row: Sequence[Any]) -> dict[str, Any]:
    """A stored row (``COLUMNS`` order) as the JSON of its UsageRecord."""
    out = dict(zip(COLUMNS, row, strict=True))
    out["stream"] = bool(out["stream"])
    out["estimated"] = bool(out["estimated"])
    return out


def day_key(value: Any) -> str | None:
    """``YYYY-MM-DD`` (UTC) from whole days since the epoch, as both stores group ``day``."""
    if value is None:
        return None
    return datetime.fromtimestamp(int(value) * 86400, UTC).date().isoformat()


def percentile(sorted_at: Mapping[int, float], count: int, p: float) -> float | None:
    """``percentile_cont(p)`` of ``count`` values, given (at least) those at positions floor/ceil of p*(count-1)."""
    if count == 0:
        return None
    pos = p * (count - 1)
    low, high = math.floor(pos), math.ceil(pos)
    first = sorted_at[low]
    if high == low:
        return first
    return first + (sorted_at[high] - first) * (pos - low)


def summary(aggregates: Sequence[Any], latency: Sequence[float | None], ttft_p50: float | None) -> dict[str, Any]:
    """A summary from the ``AGGREGATES`` columns, the latency percentiles (``PERCENTILES``) and TTFT p50."""
    requests, input_tokens, output_tokens, cached_tokens, cost, errors = aggregates
    return {
        "requests": int(requests or 0),
        "input_tokens": int(input_tokens or 0),
        "output_tokens": int(output_tokens or 0),
        "cached_tokens": int(cached_tokens or 0),
        "cost": None if cost is None else round(float(cost), 9),
        "errors": int(errors or 0),
        "latency_p50_ms": _ms(latency[0]),
        "latency_p95_ms": _ms(latency[1]),
        "ttft_p50_ms": _ms(ttft_p50),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def groups_result(q: UsageQuery, groups: Sequence[dict[str, Any]], totals: dict[str, Any]) -> dict[str, Any]:
    """The group result: what was grouped by, groups sorted by key (null first), at most ``q.limit``, the totals."""
    ordered = sorted(groups, key=lambda g: (g["key"] is not None, g["key"] if g["key"] is not None else ""))
    return {"group_by": q.group_by, "groups": ordered[: q.limit], "totals": totals}


def store_unavailable(url: str, exc: BaseException) -> ProxyError:
    """The error a query or write raises when the store fails (503 ``usage_store_unavailable``)."""
    return ProxyError(
        f"usage store {url} is unavailable: {type(exc).__name__}: {exc}", code="usage_store_unavailable", status=503
    )
