"""report.table: query results as the table `lip usage` prints."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.console import Console
from rich.table import Table

from lip.usage.records import UsageQuery
from lip.usage.report import table
from lip.usage.store import open_store
from unit.usage.usage_cases import sample


def results(*queries: UsageQuery) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        store = open_store("sqlite:///:memory:")
        await store.write(sample())
        try:
            return [await store.query(q) for q in queries]
        finally:
            await store.close()

    return asyncio.run(run())


def render(t: Table) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(t)
    return console.export_text()


def test_groups_table_has_a_row_per_group_and_totals() -> None:
    (by_model,) = results(UsageQuery(group_by="model"))
    text = render(table(by_model))
    assert "Usage by model" in text and "Requests" in text and "p95" in text
    for key in ("claude-sonnet-4", "gpt-4o-mini", "Total"):
        assert key in text
    assert "4,921" in text  # total input tokens
    assert "$0.6620" in text


def test_records_table_shows_each_record() -> None:
    (newest,) = results(UsageQuery(limit=3))
    text = render(table(newest))
    assert "Usage records" in text and "Time (UTC)" in text
    assert text.count("2024-05-0") == 3
    assert "openai:gpt-4o" in text


def test_empty_results_say_so() -> None:
    records, groups = results(UsageQuery(client="nobody"), UsageQuery(client="nobody", group_by="day"))
    assert "no records match" in render(table(records))
    assert "no records match" in render(table(groups))
