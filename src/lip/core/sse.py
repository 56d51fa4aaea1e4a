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


LONG = 64 * 1024  # an unfinished event longer than this is kept in pieces instead of one buffer


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the complete events so far.

    Handles ``\\n``, ``\\r\\n`` and ``\\r`` line ends, multi-line ``data``, comments and
    events split across reads. Fields other than ``event`` and ``data`` are ignored, as
    the SSE specification says.

    Linear in what it is fed: an unfinished event is kept in one buffer while it is short (the
    common case, and the fastest), and as a list of pieces once it is longer than ``LONG``; then
    only each new piece (with the bytes just before it) is searched for the blank line that ends
    it, so an upstream that never ends its event costs one pass, not one per read. ``pending``
    says how many bytes wait for their event's end (the caller caps it).
    """

    __slots__ = ("_buffer", "_data", "_event", "_long", "_parts", "_skip_lf")

    def __init__(self) -> None:
        self._buffer = b""  # what follows the last complete event, while short
        self._parts: list[bytes] = []  # the same, once long
        self._long = 0  # bytes in _parts
        self._skip_lf = False  # the last read ended in a \r that was taken as a line end
        self._data: list[bytes] = []
        self._event: str | None = None

    @property
    def pending(self) -> int:
        return self._long if self._parts else len(self._buffer)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return []
        if self._parts:
            # A blank line is two line ends in a row: \n\n, \r\r or \n\r (\r\n\r\n holds \n\r).
            last = self._parts[-1]
            window = (last[-2:] if len(last) > 1 else self._parts[-2][-1:] + last) + chunk[:1]
            self._parts.append(chunk)
            if not (b"\n\n" in window or b"\r\r" in window or b"\n\r" in window
                    or b"\n\n" in chunk or b"\r\r" in chunk or b"\n\r" in chunk):
                self._long += len(chunk)
                return []
            buffer = b"".join(self._parts)
            self._parts = []
        else:
            buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):  # a \r\n may be split across reads
                if len(buffer) <= LONG:
                    self._buffer = buffer  # wait for the next byte
                    return []
                self._skip_lf = True  # long: read it all now; a \n that comes next belongs to this \r
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        # An event ends at a blank line; what follows the last one waits for the next read. The
        # common event is one "data: ..." line: taken whole, without going line by line.
        blocks = buffer.split(b"\n\n")
        self._keep(blocks.pop())
        events: list[SSEEvent] = []
        for block in blocks:
            if block[:6] == b"data: " and b"\n" not in block:
                events.append(SSEEvent(block[6:]))
                continue
            for line in block.split(b"\n"):
                self._line(line, events)
            self._line(b"", events)
        return events

    def _keep(self, rest: bytes) -> None:
        if len(rest) > LONG:
            self._parts, self._long, self._buffer = [rest], len(rest), b""
        else:
            self._buffer = rest

    def finish(self) -> list[SSEEvent]:
        """Events still pending when the stream closes (a last event with no blank line)."""
        events: list[SSEEvent] = []
        rest = b"".join(self._parts) if self._parts else self._buffer
        rest = rest.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        self._parts, self._long, self._buffer, self._skip_lf = [], 0, b"", False
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
