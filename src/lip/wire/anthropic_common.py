"""The names every Anthropic wire module shares: the extensions key, the API version, the marker of
redacted thinking, and the strict number checks (a bool is no number)."""

from __future__ import annotations

from typing import Any

PROTOCOL = "anthropic"  # key of ChatRequest.extensions holding Anthropic-only body keys
VERSION = "2023-06-01"  # the anthropic-version header every upstream request needs (set by the preset)
# A redacted_thinking block has no canonical part of its own: it travels as a ReasoningPart (or a
# ReasoningDelta) with empty text and this prefix before its opaque ``data`` in ``signature``.
# Other protocols never send reasoning parts upstream, so the marker only reaches Anthropic again.
REDACTED = "redacted_thinking:"


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
