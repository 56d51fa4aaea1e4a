"""Access-log cost: CPU per line written (text and JSON), an ordinary request and one whose fields need escaping.

The line goes through the same logger set-up as in the proxy (a bare-message StreamHandler) into a
temporary file. The whole-proxy figure is `bench/run.py --limits --serve-arg=--access-log` against
the same run without the flag.

Run: .venv/bin/python bench/access_log.py
"""

from __future__ import annotations

import logging
import tempfile
import time

from lip.observability.access import AccessLog, Entry

PLAIN = Entry(at=time.time(), method="POST", path="/v1/chat/completions", status=200, client="acme",
              route="mock:mock-model", latency_ms=1.234, request_id="9f2c41d07a3e55b1c2d3e4f5a6b7c8d9")
HOSTILE = Entry(at=time.time(), method="GET", path="/x\r\n2026-01-01T00:00:00.000Z GET /admin 200", status=404,
                client=None, route="mock:evil 200 root", latency_ms=0.4, request_id="9f2c41d07a3e55b1c2d3e4f5a6b7c8d9")


def per_line_us(log: AccessLog, entry: Entry, n: int = 20_000) -> float:
    started = time.process_time()
    for _ in range(n):
        log.write(entry)
    return (time.process_time() - started) / n * 1e6


def main() -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".log") as sink:
        logger = logging.Logger("bench-access")
        handler = logging.StreamHandler(sink)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        for name, json in (("text", False), ("json", True)):
            log = AccessLog(json=json, logger=logger)
            print(f"{name}: {per_line_us(log, PLAIN):.1f} us CPU/line, escaped fields {per_line_us(log, HOSTILE):.1f}")


if __name__ == "__main__":
    main()
