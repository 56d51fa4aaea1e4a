"""Log lines that cannot be forged: control characters in logged values are written as escapes.

A selector, a response id or an upstream's error code may carry CR, LF or other control
characters; written raw, they would start a line that looks like the proxy's own. ``printable``
escapes one value; ``OneLineFormatter`` (what ``lip serve`` logs with) escapes every message.
"""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def printable(value: object) -> str:
    """``value`` as text with control characters (and Unicode line separators) escaped."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class OneLineFormatter(logging.Formatter):
    """Each record's message on one line (a traceback, if any, follows as Python prints it)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)


def configure(level: str) -> None:
    """The process's logging: ``level``, one line per message."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
