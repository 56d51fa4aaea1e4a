"""Per-session settings set by in-chat commands, in a bounded store (size and idle time)."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lip.core.model import ChatRequest, TextPart


@dataclass(slots=True)
class Session:
    model: str | None = None  # a selector that replaces the client's model
    parameters: dict[str, Any] = field(default_factory=dict)  # win over URI, body and model defaults
    oneoff: str | None = None  # a selector for the next request only
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seen: float = 0.0


class SessionStore:
    """At most ``size`` sessions; one idle for ``idle`` seconds is forgotten."""

    def __init__(self, size: int = 10_000, idle: float = 24 * 3600, clock: Callable[[], float] = time.monotonic):
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._size = size
        self._idle = idle
        self._clock = clock

    def get(self, session_id: str) -> Session:
        now = self._clock()
        session = self._sessions.get(session_id)
        if session is None or now - session.seen > self._idle:
            session = Session()
            self._sessions[session_id] = session
            while len(self._sessions) > self._size:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(session_id)
        session.seen = now
        return session

    def peek(self, session_id: str) -> Session | None:
        """The session if it exists and is live, without creating or refreshing it."""
        session = self._sessions.get(session_id)
        if session is None or self._clock() - session.seen > self._idle:
            return None
        return session

    def __len__(self) -> int:
        return len(self._sessions)


def session_id(headers: Mapping[str, str], request: ChatRequest) -> str:
    """``x-session-id`` if the client sends one; else derived from who is asking and how the
    conversation began (its credential and its first system and user messages), which stays the
    same while a client resends the growing history of one conversation."""
    given = headers.get("x-session-id")
    if given:
        return "h:" + given[:200]
    digest = hashlib.sha256()
    for name in ("authorization", "x-api-key", "x-goog-api-key", "user-agent"):
        digest.update(headers.get(name, "").encode() + b"\x00")
    firsts = 0
    for message in request.messages:
        if message.role in ("system", "developer") or (message.role == "user" and firsts == 0):
            text = message.content if isinstance(message.content, str) else "".join(
                p.text for p in message.content or () if isinstance(p, TextPart)
            )
            digest.update(message.role.encode() + b"\x00" + text.encode() + b"\x00")
            firsts += message.role == "user"
        if firsts:
            break
    return "d:" + digest.hexdigest()[:32]
