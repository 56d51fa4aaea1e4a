"""Server-sent events: an incremental decoder for upstream streams and an encoder for clients."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: bytes
    event: str | None = None


def encode(data: bytes, event: str | None = None) -> bytes:
    """One event on the wire. ``data`` must not contain newlines (compact JSON never does)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the complete events so far.

    Handles ``\\n``, ``\\r\\n`` and ``\\r`` line ends, multi-line ``data``, comments and
    events split across reads. Fields other than ``event`` and ``data`` are ignored, as
    the SSE specification says.

    Linear in what it is fed: an event split across reads is kept as a list of pieces, and only the
    new piece (with the last byte before it) is searched for the blank line that ends it, so an
    upstream that never ends its event costs one pass, not one per read. ``pending`` says how many
    bytes wait for their event's end (the caller caps it).
    """

    __slots__ = ("_data", "_event", "_parts", "pending")

    def __init__(self) -> None:
        self._parts: list[bytes] = []  # what follows the last complete event
        self.pending = 0
        self._data: list[bytes] = []
        self._event: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._parts:
            # A blank line is two line ends in a row: \n\n, \r\r or \n\r (\r\n\r\n holds \n\r).
            last = self._parts[-1]
            window = (last[-2:] if len(last) > 1 or len(self._parts) == 1 else self._parts[-2][-1:] + last) + chunk[:1]
            if not (b"\n\n" in window or b"\r\r" in window or b"\n\r" in window
                    or b"\n\n" in chunk or b"\r\r" in chunk or b"\n\r" in chunk):
                self._parts.append(chunk)
                self.pending += len(chunk)
                return []
            self._parts.append(chunk)
            buffer = b"".join(self._parts)
        else:
            buffer = chunk
        self._parts = []
        self.pending = 0
        held = b""
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):  # a \r\n may be split across reads
                buffer, held = buffer[:-1], b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        # An event ends at a blank line; what follows the last one waits for the next read. The
        # common event is one "data: ..." line: taken whole, without going line by line.
        blocks = buffer.split(b"\n\n")
        rest = blocks.pop()
        if rest or held:
            self._parts = [rest, held] if held else [rest]
            self.pending = len(rest) + len(held)
        events: list[SSEEvent] = []
        for block in blocks:
            if block[:6] == b"data: " and b"\n" not in block:
                events.append(SSEEvent(block[6:]))
                continue
            for line in block.split(b"\n"):
                self._line(line, events)
            self._line(b"", events)
        return events

    def finish(self) -> list[SSEEvent]:
        """Events still pending when the stream closes (a last event with no blank line)."""
        events: list[SSEEvent] = []
        rest = b"".join(self._parts).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        self._parts = []
        self.pending = 0
        for line in rest.split(b"\n"):
            self._line(line, events)
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent(b"\n".join(self._data), self._event))
            self._data = []
            self._event = None
            return
        if line[0] == 0x3A:  # ':' comment
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
