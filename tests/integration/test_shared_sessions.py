"""In-chat settings shared by replicas through Redis, with no Redis work for requests without commands.

Two proxies (two apps) share one real redis-server. A command on one replica applies on the other,
and a later command there applies back on the first, although each remembers what it read: a
replica that saves a session tells the others to forget it. A conversation that never used a
command leaves no key in Redis.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from fakes.openai_upstream import FakeOpenAI
from integration.conftest import serve_proxy, write_backend
from integration.test_shared_limits import redis_url  # noqa: F401  (the module's real redis-server fixture)


def _redis(url: str, *command: str) -> bytes:
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        parts = [f"*{len(command)}\r\n".encode()] + [f"${len(c)}\r\n{c}\r\n".encode() for c in command]
        conn.sendall(b"".join(parts))
        time.sleep(0.05)
        return conn.recv(65536)


def test_settings_hold_across_replicas_and_plain_conversations_leave_no_key(
    tmp_path: Path, fake: FakeOpenAI, redis_url: str  # noqa: F811
) -> None:
    for name in ("main", "other"):
        write_backend(tmp_path, name, f"backend_type: custom\napi_base_url: {fake.base_url}\nmodels:\n  m: {{}}\n")
    (tmp_path / "proxy.yaml").write_text(f"default_backend: main\nlimits:\n  store: {redis_url}\n")
    _redis(redis_url, "FLUSHDB")

    def say(url: str, text: str, session: str | None = "chat-9") -> httpx.Response:
        headers = {"x-session-id": session} if session else {}
        return httpx.post(url + "/v1/chat/completions", headers=headers, timeout=10,
                          json={"model": "m", "messages": [{"role": "user", "content": text}]})

    with serve_proxy(tmp_path) as a, serve_proxy(tmp_path) as b:
        before = [say(url, "plain").headers["x-lip-backend"] for url in (a.url, b.url)]  # both now remember it
        assert say(a.url, "!/set(model=other:m)").status_code == 200
        on_b = [say(b.url, f"turn {n}").headers["x-lip-backend"] for n in range(3)]
        assert say(b.url, "!/unset(model)").status_code == 200
        on_a = [say(a.url, f"turn {n}").headers["x-lip-backend"] for n in range(3)]
        usage = say(a.url, "!/usage").json()["choices"][0]["message"]["content"]
        for n in range(3):  # conversations that never used a command, each its own derived session
            assert say((a.url, b.url)[n % 2], f"a new conversation {n}", session=None).status_code == 200
        keys = _redis(redis_url, "KEYS", "lip:session:*")
    assert before == ["main", "main"]
    assert on_b == ["other"] * 3, "replica b did not see the setting made on replica a"
    assert on_a == ["main"] * 3, "replica a kept the setting replica b removed"
    assert "6 requests" in usage, usage
    assert keys.count(b"lip:session:") == 1 and b"lip:session:h:chat-9" in keys, keys


def test_limits_hold_after_redis_lost_its_scripts(tmp_path: Path, fake: FakeOpenAI, redis_url: str) -> None:  # noqa: F811
    """A Redis restarted under the proxy has no bucket script: it is loaded again and counting goes on."""
    write_backend(tmp_path, "main", f"backend_type: custom\napi_base_url: {fake.base_url}\n"
                                    "models:\n  m: {limits: {requests_per_minute: 3}}\n")
    (tmp_path / "proxy.yaml").write_text(f"default_backend: main\nlimits:\n  store: {redis_url}\n")
    _redis(redis_url, "FLUSHDB")
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    with serve_proxy(tmp_path) as proxy:
        before = httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=10).status_code
        assert b"+OK" in _redis(redis_url, "SCRIPT", "FLUSH")
        after = [httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=10).status_code for _ in range(3)]
    assert (before, after) == (200, [200, 200, 429])
