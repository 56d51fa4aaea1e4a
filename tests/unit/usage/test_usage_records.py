"""UsageRecord's JSON, UsageQuery's checks, and parse_query for GET /v1/usage and `lip usage`."""

from __future__ import annotations

import pytest

from lip.core.errors import InvalidRequest
from lip.usage.records import COLUMNS, UsageQuery, parse_query, parse_time
from unit.usage.usage_cases import DAY0, make


def test_record_json_has_every_field_in_order() -> None:
    record = make(3, DAY0, ttft_ms=12.5)
    data = record.to_json()
    assert tuple(data) == COLUMNS
    assert data["request_id"] == "req-3" and data["ttft_ms"] == 12.5 and data["stream"] is False


def test_parse_query_reads_every_parameter() -> None:
    q = parse_query(
        {"since": "2024-05-01", "until": "1714608000", "backend": "openai", "model": "gpt-4o", "client": "acme",
         "group_by": "day", "limit": "20", "key": "gemini-style-auth"}
    )
    assert q == UsageQuery(since=DAY0, until=DAY0 + 86400, backend="openai", model="gpt-4o", client="acme",
                           group_by="day", limit=20)  # fmt: skip
    assert parse_query({}) == UsageQuery()
    assert parse_query({"backend": "", "group_by": ""}) == UsageQuery()  # empty means absent


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1714521600", DAY0), ("1714521600.5", DAY0 + 0.5), ("2024-05-01", DAY0), ("2024-05-01T01:00:00Z", DAY0 + 3600),
     ("2024-05-01T03:00:00+02:00", DAY0 + 3600), ("2024-05-01 00:00:30", DAY0 + 30), ("24h", 1000.0 - 86400),
     ("90s", 910.0), ("1.5m", 910.0), ("7d", 1000.0 - 7 * 86400), ("1w", 1000.0 - 7 * 86400)],
)  # fmt: skip
def test_times(text: str, seconds: float) -> None:
    assert parse_time("since", text, now=1000.0) == seconds


@pytest.mark.parametrize(
    ("params", "param"),
    [({"since": "yesterday"}, "since"), ({"until": "nan"}, "until"), ({"group_by": "tier"}, "group_by"),
     ({"limit": "ten"}, "limit"), ({"limit": "0"}, "limit"), ({"limit": "100001"}, "limit"),
     ({"sinse": "1"}, "sinse")],
)  # fmt: skip
def test_bad_parameters_are_400s_naming_the_parameter(params: dict[str, str], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_query(params)
    assert info.value.status == 400 and info.value.param == param
