"""The names every Anthropic wire module shares: the extensions key, the API version, the strict
number checks (a bool is no number), field errors, and tool arguments as an object."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from lip.core.errors import InvalidRequest
from lip.core.model import ProviderState

PROTOCOL = "anthropic"  # key of ChatRequest.extensions holding Anthropic-only body keys
VERSION = "2023-06-01"  # the anthropic-version header every upstream request needs (set by the preset)


def signed(value: Any) -> ProviderState | None:
    """A thinking block's ``signature`` as an Anthropic upstream sent it: this protocol's; None when empty."""
    return ProviderState(PROTOCOL, value) if isinstance(value, str) and value else None


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_object(text: str) -> dict[str, Any] | None:
    """A tool call's JSON arguments as an object ({} for none); None when they are not one."""
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def fail(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: expected {expected}.", param=param, code="invalid_value")


def missing(param: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: Field required.", param=param, code="missing_required_parameter")


def cache_control_of(block: Mapping[str, Any], where: str) -> Mapping[str, Any] | None:
    """A block's prompt-caching breakpoint, kept for an upstream that caches."""
    value = block.get("cache_control")
    if value is not None and not isinstance(value, dict):
        raise fail(f"{where}.cache_control", "an object such as {\"type\": \"ephemeral\"}")
    return value
