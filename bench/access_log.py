"""Access-log cost: CPU per line written, and per request through the app with the log off and on.

1. One line (text and JSON; an ordinary request and one whose fields need escaping) into a temporary file.
2. A chat request to the built-in mock backend sent straight to the ASGI app (no sockets, no HTTP
   parsing: what remains is the proxy's own work), alternately with the access log off and on.

The whole-proxy figure is `bench/run.py --limits --serve-arg=--access-log` against the same run
without the flag (noisy on a shared machine).

Run: .venv/bin/python bench/access_log.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from typing import Any

import orjson

from lip.app import Settings, build
from lip.observability.access import AccessLog, Entry

PLAIN = Entry(at=time.time(), method="POST", path="/v1/chat/completions", status=200, client="acme",
              route="mock:mock-model", latency_ms=1.234, request_id="9f2c41d07a3e55b1c2d3e4f5a6b7c8d9")
HOSTILE = Entry(at=time.time(), method="GET", path="/x\r\n2026-01-01T00:00:00.000Z GET /admin 200", status=404,
                client=None, route="mock:evil 200 root", latency_ms=0.4, request_id="9f2c41d07a3e55b1c2d3e4f5a6b7c8d9")
BODY = orjson.dumps({"model": "mock:mock-model", "messages": [{"role": "user", "content": "hi"}]})
SCOPE = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
         "headers": [(b"content-type", b"application/json")], "client": ("127.0.0.1", 1)}


def per_line_us(log: AccessLog, entry: Entry, n: int = 20_000) -> float:
    started = time.process_time()
    for _ in range(n):
        log.write(entry)
    return (time.process_time() - started) / n * 1e6


async def request(app: Any) -> None:
    pending = [{"type": "http.request", "body": BODY, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return pending.pop() if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message

    await app(dict(SCOPE, state={}), receive, send)


async def per_request_us(sink: Any, rounds: int = 20, batch: int = 300) -> dict[bool, float]:
    """Both apps built first, then batches sent to each in turn (so that order and warm-up favour neither)."""
    apps = {access: build(Settings(usage_store="none", access_log=access, config_dir=None))
            for access in (False, True)}
    apps[True]._access = AccessLog(sink=sink)  # the same log, into the file instead of this terminal
    spent = {False: 0.0, True: 0.0}
    for round_ in range(rounds + 1):
        for access, app in apps.items():
            started = time.process_time()
            for _ in range(batch):
                await request(app)
            if round_:  # the first round warms up
                spent[access] += time.process_time() - started
    return {access: total / (rounds * batch) * 1e6 for access, total in spent.items()}


def main() -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".log") as sink:
        for name, json in (("text", False), ("json", True)):
            log = AccessLog(json=json, sink=sink)
            print(f"one {name} line: {per_line_us(log, PLAIN):.1f} us CPU, "
                  f"with escaped fields {per_line_us(log, HOSTILE):.1f}")
        per_request = asyncio.run(per_request_us(sink))
        off, on = per_request[False], per_request[True]
        print(f"a mock chat request through the app: {off:.0f} us CPU with the access log off, {on:.0f} on "
              f"(+{on - off:.0f}; 20 alternating batches of 300)")


if __name__ == "__main__":
    main()
