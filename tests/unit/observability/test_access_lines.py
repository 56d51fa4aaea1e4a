"""The access log's line: fields escaped so that nothing a client sends can forge a line or a field."""

from __future__ import annotations

import io
import json

import pytest

from lip.observability.access import AccessLog, Entry, escape


class Lines(io.StringIO):
    @property
    def lines(self) -> list[str]:
        return self.getvalue().splitlines()


@pytest.fixture
def lines() -> Lines:
    return Lines()


def access(lines: Lines, *, json_format: bool = False) -> AccessLog:
    return AccessLog(json=json_format, sink=lines)


ENTRY = Entry(at=1_764_629_325.1234, method="POST", path="/v1/chat/completions", status=200, client="acme",
              route="mock:mock-model", latency_ms=12.34, request_id="abc123")


def test_a_line_has_the_eight_fields_in_order(lines: Lines) -> None:
    access(lines).write(ENTRY)
    assert lines.lines == ["2025-12-01T22:48:45.123Z POST /v1/chat/completions 200 acme mock:mock-model 12.3ms abc123"]


def test_absent_fields_are_dashes(lines: Lines) -> None:
    access(lines).write(Entry(at=0.0, method="GET", path="/", status=0, client=None, route=None, latency_ms=0.25,
                              request_id="r"))
    assert lines.lines == ["1970-01-01T00:00:00.000Z GET / - - - 0.2ms r"]


@pytest.mark.parametrize("text", ["a\r\nFORGED 200 line", "tab\there", "nul\x00", "del\x7f", "ls\u2028x", "c1\x85",
                                  "back\\x0d\\slash", "sp ace"])
def test_escaped_text_holds_no_separator_or_control_character(text: str) -> None:
    out = escape(text)
    assert not any(ch.isspace() or ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0xa0 for ch in out)
    assert out.isascii() and out.isprintable()


def test_escape_is_unambiguous_and_leaves_ordinary_text_alone() -> None:
    assert escape("gpt-4o/mini:free?x=1") == "gpt-4o/mini:free?x=1"
    assert escape("modèle") == "modèle"
    assert escape("a\r\nb") == "a\\x0d\\x0ab"
    assert escape("a\\x0d") == "a\\x5cx0d", "a literal backslash is escaped too, so the two differ"


def test_a_forging_selector_and_path_stay_on_one_line(lines: Lines) -> None:
    forged = Entry(at=0.0, method="GET", path="/x\r\n2026-01-01T00:00:00.000Z GET /admin 200 root - 1ms id",
                   status=404, client=None, route="mock:evil\nline", latency_ms=1.0, request_id="r")
    access(lines).write(forged)
    (line,) = lines.lines
    assert "\r" not in line and lines.getvalue().count("\n") == 1
    assert len(line.split(" ")) == 8, "a field never holds a space"


def test_the_json_form_carries_the_same_fields(lines: Lines) -> None:
    access(lines, json_format=True).write(ENTRY)
    (line,) = lines.lines
    assert json.loads(line) == {"event": "access", "time": "2025-12-01T22:48:45.123Z", "method": "POST",
                                "path": "/v1/chat/completions", "status": 200, "client": "acme",
                                "route": "mock:mock-model", "latency_ms": 12.34, "request_id": "abc123"}
