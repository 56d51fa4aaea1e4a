"""Which command session a request belongs to (``session_id``); its settings are kept by the
session stores of the shared state (``lip.state.sessions``)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from lip.core.model import ChatRequest, TextPart


def session_id(headers: Mapping[str, str], request: ChatRequest, client: str | None = None,
               query: Mapping[str, str] | None = None) -> str:
    """The session of a request, always within its authenticated ``client`` (when client keys are on):
    ``x-session-id`` if the client sends one, so one client cannot read or steer another's session by
    sending its id; else derived from who is asking and how the conversation began (its credential,
    Gemini's ``?key=`` included, and its first system and user messages), which stays the same while
    a client resends the growing history of one conversation."""
    owner = "" if client is None else f"{len(client)}:{client}:"
    given = headers.get("x-session-id")
    if given:
        return "h:" + owner + given[:200]
    parts = [owner, *(headers.get(name, "") for name in ("authorization", "x-api-key", "x-goog-api-key",
                                                          "user-agent")), (query or {}).get("key", "")]
    firsts = 0
    for message in request.messages:
        if message.role in ("system", "developer") or (message.role == "user" and firsts == 0):
            text = message.content if isinstance(message.content, str) else "".join(
                p.text for p in message.content or () if isinstance(p, TextPart)
            )
            parts.append(message.role + "\x00" + text)
            firsts += message.role == "user"
        if firsts:
            break
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass") + b"\x00")
    return "d:" + digest.hexdigest()[:32]
