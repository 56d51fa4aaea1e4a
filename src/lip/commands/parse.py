"""Finding ``!/name(args)`` commands in user messages, and removing them from the text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from lip.core.model import Message, Part, TextPart


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    positional: tuple[str, ...] = ()
    named: dict[str, str] = field(default_factory=dict)
    text: str = ""  # as written


class CommandSyntax:
    """Commands start with ``prefix`` (``!/`` by default): ``!/help``, ``!/set(model=a:b, temperature=0.2)``."""

    def __init__(self, prefix: str = "!/") -> None:
        self.prefix = prefix
        self._pattern = re.compile(re.escape(prefix) + r"([A-Za-z_][A-Za-z0-9_-]*)(?:\(([^()]*)\))?")

    def find(self, text: str) -> list[Command]:
        if self.prefix not in text:
            return []
        return [self._command(m) for m in self._pattern.finditer(text)]

    def strip(self, text: str) -> str:
        if self.prefix not in text:
            return text
        return " ".join(self._pattern.sub(" ", text).split()) if self._pattern.search(text) else text

    def strip_message(self, message: Message) -> Message:
        """The message without its commands (the text of every text part)."""
        content = message.content
        if isinstance(content, str):
            return replace(message, content=self.strip(content))
        if not content:
            return message
        parts: list[Part] = []
        for part in content:
            if isinstance(part, TextPart):
                stripped = self.strip(part.text)
                if stripped:
                    parts.append(TextPart(stripped))
            else:
                parts.append(part)
        return replace(message, content=tuple(parts))

    @staticmethod
    def _command(match: re.Match[str]) -> Command:
        positional: list[str] = []
        named: dict[str, str] = {}
        for item in filter(None, (a.strip() for a in (match.group(2) or "").split(","))):
            key, sep, value = item.partition("=")
            if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
                named[key.strip()] = value.strip().strip("'\"")
            else:
                positional.append(item.strip("'\""))
        return Command(match.group(1).lower(), tuple(positional), named, match.group(0))
