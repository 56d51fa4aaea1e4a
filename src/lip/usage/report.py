"""``lip usage`` output: a query result (records or groups) as a readable rich table."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

GROUP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("requests", "Requests"), ("input_tokens", "Input"), ("output_tokens", "Output"),
    ("cached_tokens", "Cached"), ("cost", "Cost"), ("errors", "Errors"),
    ("latency_p50_ms", "p50"), ("latency_p95_ms", "p95"), ("ttft_p50_ms", "TTFT p50"),
)  # fmt: skip
RECORD_COLUMNS: tuple[str, ...] = (
    "Time (UTC)", "Client", "Requested", "Backend:model", "Status", "Input", "Output", "Cost", "Latency", "TTFT",
)  # fmt: skip


def table(result: Mapping[str, Any]) -> Table:
    """A table of ``{"records": [...]}`` (newest first) or ``{"groups": [...], "totals": {...}}``."""
    if "groups" in result:
        return _groups_table(result)
    return _records_table(result.get("records", []))


def _groups_table(result: Mapping[str, Any]) -> Table:
    by = result.get("group_by") or "group"
    out = Table(title=f"Usage by {by}", caption=None if result["groups"] else "no records match")
    out.add_column(by.capitalize())
    for _, header in GROUP_COLUMNS:
        out.add_column(header, justify="right")
    for group in result["groups"]:
        out.add_row(_text(group["key"]), *(_cell(name, group[name]) for name, _ in GROUP_COLUMNS))
    totals = result.get("totals")
    if totals:
        out.add_section()
        out.add_row("Total", *(_cell(name, totals[name]) for name, _ in GROUP_COLUMNS), style="bold")
    return out


def _records_table(records: list[Mapping[str, Any]]) -> Table:
    out = Table(title="Usage records", caption=None if records else "no records match")
    for header in RECORD_COLUMNS:
        out.add_column(header, justify="right" if header in {"Input", "Output", "Cost", "Latency", "TTFT"}
                       else "left")  # fmt: skip
    for r in records:
        estimated = "~" if r.get("estimated") else ""
        status = str(r["status"]) + (f" {r['error_code']}" if r.get("error_code") else "")
        out.add_row(
            datetime.fromtimestamp(r["at"], UTC).strftime("%Y-%m-%d %H:%M:%S"),
            _text(r.get("client")),
            str(r["selector"]),
            f"{_text(r.get('backend'))}:{_text(r.get('model'))}",
            status,
            estimated + f"{r['input_tokens']:,}",
            estimated + f"{r['output_tokens']:,}",
            _cell("cost", r.get("cost")),
            _cell("latency_ms", r.get("latency_ms")),
            _cell("ttft_ms", r.get("ttft_ms")),
            style="red" if r["status"] >= 400 else None,
        )
    return out


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name == "cost":
        return f"${value:,.4f}" if value >= 0.01 or value == 0 else f"${value:.6f}"
    if name.endswith("_ms"):
        return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"
    return f"{value:,}"
