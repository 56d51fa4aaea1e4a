"""Canonical messages as JSON and back, exactly: for stores that other processes read.

Every field of a message and of its parts is kept (reasoning signatures, redacted reasoning, a tool
call's provider state and caching breakpoints included), so a conversation read back is equal to the
one written. A tool call is ``[id, name, arguments]``, or ``[id, name, arguments, protocol, state]``
with a provider's state. A reasoning part is ``{"reasoning", "signature", "protocol"}``, the signature's
protocol beside it (a replica of before reads the signature and leaves the protocol). Data written
before those had types of their own reads back: a reasoning signature without a protocol as
Anthropic's, redacted reasoning as a reasoning part whose signature is ``lip.core.redacted``'s fold as
the redacted part; a call's state folded into its id, ``lip.core.opaque``, as it was written (its
protocol unfolds it as it always did).
"""

from __future__ import annotations

from typing import Any

import orjson

from lip.core.model import (
    EMPTY,
    FilePart,
    ImagePart,
    Message,
    Part,
    ProviderPart,
    ProviderState,
    ReasoningPart,
    RedactedReasoningPart,
    TextPart,
    ToolCall,
)
from lip.core.redacted import LEGACY, unfold


def messages_to_json(messages: tuple[Message, ...]) -> bytes:
    return orjson.dumps([_message(m) for m in messages])


def messages_from_json(raw: bytes) -> tuple[Message, ...]:
    return tuple(_message_back(m) for m in orjson.loads(raw))


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role}
    if isinstance(m.content, tuple):
        out["parts"] = [_part(p) for p in m.content]
    else:
        out["content"] = m.content
    if m.name is not None:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = [_call(c) for c in m.tool_calls]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    if m.extensions:
        out["extensions"] = dict(m.extensions)
    if m.cache_control is not None:
        out["cache_control"] = dict(m.cache_control)
    return out


def _call(c: ToolCall) -> list[str]:
    if c.signature is None:
        return [c.id, c.name, c.arguments]
    return [c.id, c.name, c.arguments, c.signature.protocol, c.signature.data]


def _call_back(raw: list[str]) -> ToolCall:
    signature = ProviderState(raw[3], raw[4]) if len(raw) > 3 else None
    return ToolCall(raw[0], raw[1], raw[2], signature)


def _part(p: Part) -> dict[str, Any]:
    if isinstance(p, TextPart):
        return {"text": p.text, "cache_control": p.cache_control}
    if isinstance(p, ImagePart):
        return {"image": p.url, "detail": p.detail, "cache_control": p.cache_control}
    if isinstance(p, FilePart):
        return {"file": p.media_type, "data": p.data, "url": p.url, "file_text": p.text, "filename": p.filename,
                "cache_control": p.cache_control, "spec": p.spec, "protocol": p.protocol}
    if isinstance(p, ProviderPart):
        return {"provider": p.protocol, "block": dict(p.data), "plain": p.text}
    if isinstance(p, RedactedReasoningPart):
        return {"redacted": p.data, "protocol": p.protocol}
    if p.signature is None:
        return {"reasoning": p.text, "signature": None}
    return {"reasoning": p.text, "signature": p.signature.data, "protocol": p.signature.protocol}


def _message_back(raw: dict[str, Any]) -> Message:
    parts = raw.get("parts")
    content = tuple(_part_back(p) for p in parts) if parts is not None else raw.get("content")
    return Message(
        role=raw["role"],
        content=content,
        name=raw.get("name"),
        tool_calls=tuple(_call_back(call) for call in raw.get("tool_calls", ())),
        tool_call_id=raw.get("tool_call_id"),
        extensions=raw.get("extensions") or EMPTY,
        cache_control=raw.get("cache_control"),
    )


def _part_back(raw: dict[str, Any]) -> Part:
    if "text" in raw:
        return TextPart(raw["text"], raw.get("cache_control"))
    if "image" in raw:
        return ImagePart(raw["image"], raw.get("detail"), raw.get("cache_control"))
    if "file" in raw:
        return FilePart(raw["file"], raw.get("data"), raw.get("url"), raw.get("file_text", ""), raw.get("filename"),
                        raw.get("cache_control"), raw.get("spec"), raw.get("protocol"))
    if "provider" in raw:
        return ProviderPart(raw["provider"], raw["block"], raw.get("plain", ""))
    if "redacted" in raw:
        return RedactedReasoningPart(raw["protocol"], raw["redacted"])
    return _reasoning_back(raw["reasoning"], raw.get("signature"), raw.get("protocol"))


def _reasoning_back(text: str, signature: str | None, protocol: str | None) -> ReasoningPart | RedactedReasoningPart:
    """A reasoning part, its signature of ``protocol`` (``LEGACY``'s when written without one); or the
    redacted reasoning folded into such a signature (``lip.core.redacted``), as the redacted part."""
    if not signature:
        return ReasoningPart(text)
    return unfold(text, ProviderState(protocol or LEGACY, signature))
