"""Upstream secrets pasted into a request (keys, ``${ENV}`` header values) are replaced before anything is forwarded.

Everything the client wrote is covered: every string of the canonical request, walked field by
field (message text, documents, tool calls and their results, tools' descriptions, JSON schemas and
specs (parameter names included), provider items, generation parameters and protocol extras).
The usual request holds no secret, and that is decided on the raw body, one search of its bytes per
secret; only a body where a secret appears is walked. A secret spelled with JSON escapes
(``\\u0073k-...``) is not looked for: no client encodes ASCII that way, and one that does knows the
key already (redaction keeps a pasted key from reaching another provider, it is no access control).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields, is_dataclass, replace
from typing import Any

from lip.core.model import ChatRequest
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
        if not secrets or (raw is not None and not secrets.in_bytes(raw)):
            return request
        cleaned: ChatRequest = self._clean(request)
        return cleaned

    def _clean(self, value: Any) -> Any:
        """``value`` with every string in it masked: the canonical model's dataclasses field by field
        (every part, tool and extra there is or will be), JSON-like values whole; the very same object
        where nothing changed."""
        s = self._secrets
        if isinstance(value, str):
            return s.mask(value) if s.in_text(value) else value
        if isinstance(value, tuple):
            items = tuple(self._clean(v) for v in value)
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        if isinstance(value, Mapping | list):
            return s.mask_value(value) if s.value_dirty(value) else value
        if is_dataclass(value) and not isinstance(value, type):
            changes = {}
            for f in fields(value):
                if f.init:
                    old = getattr(value, f.name)
                    new = self._clean(old)
                    if new is not old:
                        changes[f.name] = new
            return replace(value, **changes) if changes else value
        return value
