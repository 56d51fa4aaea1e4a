"""Logged values cannot start a line of their own."""

from __future__ import annotations

import logging

from lip.observability.logsafe import LOG_FORMAT, OneLineFormatter, printable


def test_printable_escapes_control_characters_only() -> None:
    assert printable("up:model-é中") == "up:model-é中"
    assert printable("a\r\nINFO forged\x00\x1b[31m\u2028") == "a\\r\\nINFO forged\\x00\\x1b[31m\\u2028"
    assert printable(None) == "None"


def test_formatter_keeps_each_message_on_one_line() -> None:
    record = logging.LogRecord("lip.requests", logging.INFO, __file__, 1, "selector %s done", ("x\nFAKE line",),
                               None)
    line = OneLineFormatter(LOG_FORMAT).format(record)
    assert "\n" not in line
    assert line.endswith("lip.requests: selector x\\nFAKE line done")
