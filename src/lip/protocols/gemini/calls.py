"""Gemini function calls in canonical form: tool call ids that carry a functionCall's thoughtSignature,
and call arguments (JSON text) as the object ``functionCall.args`` must be."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

# Tool call ids carry Gemini's thoughtSignature of a functionCall part (Gemini 2.5+ wants it back with
# the call): "<id>__thought__<signature, base64url without padding>", which stays in [A-Za-z0-9_-].
SIGNATURE_MARK = "__thought__"


def join_call_id(call_id: str, signature: str | None) -> str:
    if not signature:
        return call_id
    return call_id + SIGNATURE_MARK + signature.replace("+", "-").replace("/", "_").rstrip("=")


def split_call_id(call_id: str) -> tuple[str, str | None]:
    """(the id, Gemini's thoughtSignature) of a canonical tool call id."""
    base, mark, encoded = call_id.partition(SIGNATURE_MARK)
    if not mark or not encoded:
        return call_id, None
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        return call_id, None
    return base, padded.replace("-", "+").replace("_", "/")


def arguments_object(arguments: str) -> dict[str, Any]:
    """Tool call arguments (JSON text) as the object Gemini's functionCall.args must be."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}
