"""The access log: one line per HTTP request, written when its response has ended; never bodies or keys.

A text line is ``TIME METHOD PATH STATUS CLIENT BACKEND:MODEL LATENCY REQUEST_ID``, for example
``2026-12-01T22:48:45.123Z POST /v1/chat/completions 200 acme mock:mock-model 12.3ms 9f2c…``:
fields are separated by single spaces and ``-`` stands for none (no client keys, no route, no
response). Each field is escaped (``escape``), so a field never holds a space, a line break or
another control character: what a client sent (a path, a model name) cannot forge a line or a
field. The path is logged without its query string, which may carry a key (Gemini's ``?key=``).
With ``logging.format: json`` the line is a JSON object with the same fields. (``logsafe.printable``
keeps any log message on one line; a field of this line must also keep spaces out, hence ``escape``.)
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

import orjson

from lip.edge.asgi import Message, Receive, Scope, Send

log = logging.getLogger("lip.access")
UNSAFE = re.compile(r"[\x00-\x20\x7f-\xa0\\\u2028\u2029]")  # controls, spaces, backslash, line separators
Serve = Callable[[Scope, Receive, Send], Awaitable[None]]


def escape(text: str) -> str:
    """``text`` with every control character, space and backslash written as ``\\xNN`` / ``\\uNNNN``."""
    if not UNSAFE.search(text):
        return text
    return UNSAFE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(at * 1000) % 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Entry:
    at: float  # time.time() when the request arrived
    method: str
    path: str
    status: int  # 0: no response was started (the client left first)
    client: str | None
    route: str | None  # backend:model
    latency_ms: float  # arrival to the end of the response
    request_id: str


class AccessLog:
    """Wraps the serving of each request; built by the app only when the access log is on.

    Lines go straight to ``sink`` (stderr), one ``write`` and a flush each, not through ``logging``:
    a ``LogRecord`` per request cost more than the line itself (docs/performance.md), and the line is
    complete as it is (its own time stamp, no level or logger name to add).
    """

    def __init__(self, *, json: bool = False, sink: TextIO | None = None) -> None:
        self._json = json
        self._sink = sink

    async def __call__(self, scope: Scope, receive: Receive, send: Send, serve: Serve) -> None:
        at, started = time.time(), time.perf_counter()
        status = 0

        async def seen(message: Message) -> None:
            nonlocal status
            await send(message)
            if message["type"] == "http.response.start":
                status = message["status"]

        try:
            await serve(scope, receive, seen)
        except Exception:
            status = status or 500  # what the server answers for an app that raised before its response
            raise
        finally:
            state = scope.get("state", {})
            caller = state.get("caller")
            client = getattr(caller, "client_name", None) or state.get("client")
            self.write(Entry(at, scope["method"], scope["path"], status, client, getattr(caller, "route", None),
                             (time.perf_counter() - started) * 1000, state.get("request_id", "-")))

    def write(self, e: Entry) -> None:
        if self._json:
            line = orjson.dumps({
                "event": "access", "time": _stamp(e.at), "method": e.method, "path": e.path,
                "status": e.status or None, "client": e.client, "route": e.route,
                "latency_ms": round(e.latency_ms, 3), "request_id": e.request_id,
            }).decode()
        else:
            line = (f"{_stamp(e.at)} {escape(e.method)} {escape(e.path)} {e.status or '-'} "
                    f"{escape(e.client) if e.client else '-'} {escape(e.route) if e.route else '-'} "
                    f"{e.latency_ms:.1f}ms {escape(e.request_id)}")
        sink = self._sink or sys.stderr  # looked up each time: stderr may be replaced after start-up
        try:
            sink.write(line + "\n")
            sink.flush()
        except (OSError, ValueError) as exc:  # a closed or broken stderr must not fail the request
            log.warning("access log line lost: %s", exc)
