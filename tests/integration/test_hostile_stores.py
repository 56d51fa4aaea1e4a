"""Shared stores that fail: a hung Redis is waited for once, then skipped for a while; a session
store that is down says so instead of claiming a setting was kept."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fakes.openai_upstream import FakeOpenAI
from integration.conftest import serve_proxy, write_backend


class SilentRedis:
    """Accepts connections and reads commands, never answers; records the command names it got."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.commands: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                parts = data.split(b"\r\n")  # RESP: *N, $len, NAME, ...: the name is the third line
                with self._lock:
                    self.commands.extend(parts[i + 2].decode("latin-1").upper() for i, p in enumerate(parts[:-2])
                                         if p.startswith(b"*") and parts[i + 1].startswith(b"$"))

    def attempts(self) -> int:
        """Connections that tried a command (redis-py opens each with HELLO, which is never answered)."""
        with self._lock:
            return self.commands.count("HELLO")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def silent_redis() -> Iterator[SilentRedis]:
    server = SilentRedis()
    try:
        yield server
    finally:
        server.close()


def config(tmp_path: Path, fake: FakeOpenAI, store: str) -> Path:
    write_backend(tmp_path, "up", f"backend_type: custom\napi_base_url: {fake.base_url}\n"
                                  "models:\n  m: {limits: {requests_per_minute: 1000}}\n")
    (tmp_path / "proxy.yaml").write_text(f"limits: {{store: '{store}', on_store_error: allow}}\n")
    return tmp_path


def chat(url: str, content: str = "hi") -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", timeout=30,
                      json={"model": "up:m", "messages": [{"role": "user", "content": content}]})


def test_a_hung_redis_is_waited_for_once_then_skipped(tmp_path: Path, fake: FakeOpenAI,
                                                      silent_redis: SilentRedis) -> None:
    with serve_proxy(config(tmp_path, fake, f"redis://127.0.0.1:{silent_redis.port}/0")) as proxy:
        before = silent_redis.attempts()
        statuses = [chat(proxy.url, f"hi {n}").status_code for n in range(6)]
        attempts = silent_redis.attempts() - before
        metrics = httpx.get(proxy.url + "/metrics").text
    assert statuses == [200] * 6  # fail open: the limit store is not needed to answer
    # Without the store's breaker each request waited for the sessions, the limiter and the breakers
    # (18 attempts, 0.5 s each). Now: the first, and at most a retry or two of the session feed's.
    assert 1 <= attempts <= 5, silent_redis.commands
    assert "lip_limit_store_unavailable_admissions_total 6.0" in metrics  # each admission made uncounted


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_set_says_it_failed_when_the_session_store_is_down(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(config(tmp_path, fake, f"redis://127.0.0.1:{closed_port()}/0")) as proxy:
        reply = chat(proxy.url, "!/set(model=up:m)")
    text = reply.json()["choices"][0]["message"]["content"]
    assert reply.status_code == 200
    assert "could not be kept" in text and "unreachable" in text
    assert "Set for this session" not in text
