"""Upstream secrets pasted into a request (keys, ``${ENV}`` header values) are replaced before anything is forwarded.

Everything the client wrote is covered: message text, tool calls and their results, tools'
descriptions and JSON schemas (parameter names included), generation parameters and protocol
extras. The usual request holds no secret, and that is decided on the raw body, one search of its
bytes per secret; only a body where a secret appears is walked. A secret spelled with JSON escapes
(``\\u0073k-...``) is not looked for: no client encodes ASCII that way, and one that does knows the
key already (redaction keeps a pasted key from reaching another provider, it is no access control).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from lip.core.model import ChatRequest, Message, Part, ReasoningPart, TextPart, Tool, ToolCall
from lip.core.secrets import Secrets

MASK = "[redacted key]"


class KeyRedactor:
    def __init__(self, keys: Iterable[str]) -> None:
        self._secrets = Secrets(keys, MASK)

    def request(self, request: ChatRequest, raw: bytes | None = None) -> ChatRequest:
        """``request`` itself when no secret appears in it (the usual case), else a cleaned copy.

        ``raw`` is the body ``request`` was parsed from, when all of ``request`` came from it.
        """
        secrets = self._secrets
        if not secrets:
            return request
        if raw is not None and not secrets.in_bytes(raw):
            return request
        if not self._dirty(request):
            return request
        return request.evolve(
            messages=tuple(self._message(m) for m in request.messages),
            tools=tuple(self._tool(t) for t in request.tools),
            parameters=secrets.mask_value(request.parameters),
            extensions=secrets.mask_value(request.extensions),
        )

    def _dirty(self, request: ChatRequest) -> bool:
        s = self._secrets
        return (any(self._message_dirty(m) for m in request.messages)
                or any(s.in_text(t.description or "") or s.value_dirty(t.parameters) for t in request.tools)
                or s.value_dirty(request.parameters) or s.value_dirty(request.extensions))

    def _message_dirty(self, m: Message) -> bool:
        s = self._secrets
        if isinstance(m.content, str) and s.in_text(m.content):
            return True
        if isinstance(m.content, tuple) and any(isinstance(p, TextPart | ReasoningPart) and s.in_text(p.text)
                                                for p in m.content):
            return True
        return any(s.in_text(c.arguments) for c in m.tool_calls) or s.value_dirty(m.extensions)

    def _message(self, m: Message) -> Message:
        s = self._secrets
        content: str | tuple[Part, ...] | None = m.content
        if isinstance(content, str):
            content = s.mask(content)
        elif content:
            content = tuple(replace(p, text=s.mask(p.text)) if isinstance(p, TextPart | ReasoningPart) else p
                            for p in content)
        calls = tuple(ToolCall(c.id, c.name, s.mask(c.arguments)) for c in m.tool_calls)
        return replace(m, content=content, tool_calls=calls, extensions=s.mask_value(m.extensions))

    def _tool(self, tool: Tool) -> Tool:
        s = self._secrets
        return replace(tool, description=s.mask(tool.description) if tool.description else tool.description,
                       parameters=s.mask_value(tool.parameters) if tool.parameters else tool.parameters)
