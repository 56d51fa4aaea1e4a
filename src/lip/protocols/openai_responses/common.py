"""What every Responses module shares: the extensions key, the call item kinds, ids, an unsupported
value's error, and the Responses body keys a request carries."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from lip.core.errors import InvalidRequest
from lip.core.model import EMPTY, ChatRequest

PROTOCOL = "openai-responses"  # the key of this protocol in ChatRequest.extensions
CALL_ITEMS = ("function_call", "custom_tool_call", "tool_search_call")  # the items that call a client's tool


def unsupported(param: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"Unsupported value for '{param}': {what}.", param=param, code="unsupported_value")


def new_id(prefix: str) -> str:
    """An unguessable id (192 bits): response ids are the keys to stored conversations."""
    return f"{prefix}_{secrets.token_hex(24)}"


def carried(request: ChatRequest) -> Mapping[str, Any]:
    """The Responses body keys kept in the request's extensions."""
    return request.extensions.get(PROTOCOL, EMPTY)


def instructions_count(request: ChatRequest) -> int:
    """How many leading messages come from ``instructions`` (never carried to a next turn)."""
    return 1 if carried(request).get("instructions") else 0


def wants_store(request: ChatRequest) -> bool:
    return carried(request).get("store") is not False
