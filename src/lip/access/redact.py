"""Configured upstream keys pasted into a prompt are replaced before anything is forwarded."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from lip.core.model import ChatRequest, Message, Part, TextPart, ToolCall

MASK = "[redacted key]"
MIN_KEY_LENGTH = 8  # shorter values are not treated as secrets (they would redact ordinary words)


class KeyRedactor:
    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = sorted({k for k in keys if len(k) >= MIN_KEY_LENGTH}, key=len, reverse=True)

    def _clean(self, text: str) -> str:
        for key in self._keys:
            if key in text:
                text = text.replace(key, MASK)
        return text

    def _dirty(self, text: str) -> bool:
        return any(key in text for key in self._keys)

    def request(self, request: ChatRequest) -> ChatRequest:
        """``request`` itself when no key appears in it (the usual case), else a cleaned copy."""
        if not self._keys or not any(self._message_dirty(m) for m in request.messages):
            return request
        return request.evolve(messages=tuple(self._message(m) for m in request.messages))

    def _message_dirty(self, m: Message) -> bool:
        if isinstance(m.content, str) and self._dirty(m.content):
            return True
        if isinstance(m.content, tuple) and any(isinstance(p, TextPart) and self._dirty(p.text) for p in m.content):
            return True
        return any(self._dirty(c.arguments) for c in m.tool_calls)

    def _message(self, m: Message) -> Message:
        content: str | tuple[Part, ...] | None = m.content
        if isinstance(content, str):
            content = self._clean(content)
        elif content:
            content = tuple(TextPart(self._clean(p.text)) if isinstance(p, TextPart) else p for p in content)
        calls = tuple(ToolCall(c.id, c.name, self._clean(c.arguments)) for c in m.tool_calls)
        return replace(m, content=content, tool_calls=calls)
