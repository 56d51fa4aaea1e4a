"""Gemini function calls in canonical form: a functionCall's thoughtSignature as the call's ProviderState
(and back), and call arguments (JSON text) as the object ``functionCall.args`` must be."""

from __future__ import annotations

from typing import Any

import orjson

from lip.core.model import ProviderState, ToolCall
from lip.core.opaque import unfold_id
from lip.protocols.gemini.common import PROTOCOL


def signature_state(signature: Any) -> ProviderState | None:
    """A part's ``thoughtSignature`` (Gemini 2.5+ wants it back with its functionCall) as canonical state."""
    return ProviderState(PROTOCOL, signature) if isinstance(signature, str) and signature else None


def call_id_and_state(given: str) -> tuple[str, ProviderState | None]:
    """(the id, its Gemini state) of an id a client gave: a client of another protocol echoes the id
    it was shown, which carries the state (``lip.core.opaque``)."""
    call_id, data = unfold_id(given)
    return call_id, signature_state(data)


def wire_signature(call: ToolCall) -> tuple[str, str | None]:
    """(the id, the thoughtSignature) to send with a canonical call: its own Gemini state, else the one
    its id carries back from a client of another protocol."""
    if call.signature is not None:
        return call.id, call.signature.data if call.signature.protocol == PROTOCOL else None
    return unfold_id(call.id)


def arguments_object(arguments: str) -> dict[str, Any]:
    """Tool call arguments (JSON text) as the object Gemini's functionCall.args must be."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}
