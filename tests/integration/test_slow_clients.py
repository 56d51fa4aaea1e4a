"""Slow clients are timed out (408 where an answer is still possible) and connections are bounded.

Raw sockets, because no HTTP client sends half a request on purpose. Time-outs are set small in
proxy.yaml; every socket read has its own bounded time-out, so a proxy that holds the connection
fails the test instead of hanging it. Nothing here asserts how long anything took.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from integration.conftest import ProxyServer, serve_proxy

CLIENT_WAIT = 20.0  # seconds a socket read may block before the test calls the connection held


def config(tmp_path: Path, **server: object) -> Path:
    settings = {"header_timeout": 0.5, "body_timeout": 0.5, **server}
    (tmp_path / "proxy.yaml").write_text("server: " + json.dumps(settings) + "\n")
    return tmp_path


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[ProxyServer]:
    with serve_proxy(config(tmp_path)) as server:
        yield server


@contextmanager
def connect(proxy: ProxyServer) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=CLIENT_WAIT)
    try:
        yield sock
    finally:
        sock.close()


def read_all(sock: socket.socket) -> bytes:
    """Everything until the proxy closes the connection (socket.timeout if it never does)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:  # closed while we still sent (what it answered was read before)
        pass
    return b"".join(chunks)


def read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        raw += sock.recv(65536)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = int(next(line.split(b":")[1] for line in lines if line.startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def status_and_body(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_incomplete_request_head_gets_408_and_is_closed(proxy: ProxyServer) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: app")
        status, body = status_and_body(read_all(sock))
    assert status == 408
    assert body["error"]["code"] == "request_timeout"  # type: ignore[index]


def test_connection_that_sends_nothing_is_closed(proxy: ProxyServer) -> None:
    with connect(proxy) as sock:
        assert read_all(sock) == b""


def test_idle_kept_alive_connection_then_half_a_head_is_closed(proxy: ProxyServer) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = read_response(sock)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /health HTTP/1.1\r\nHo")
        status, _ = status_and_body(read_all(sock))
    assert status == 408


@pytest.mark.parametrize(("path", "envelope"), [
    ("/v1/chat/completions", "openai"),
    ("/v1/messages", "anthropic"),
    ("/v1beta/models/mock:generateContent", "gemini"),
    ("/v1/messages/count_tokens", "anthropic"),
])
def test_chunked_body_that_never_ends_gets_408(proxy: ProxyServer, path: str, envelope: str) -> None:
    with connect(proxy) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"mod\r\n".encode())
        raw = read_all(sock)
    status, body = status_and_body(raw)
    assert status == 408
    assert b"connection: close" in raw.lower()
    if envelope == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    elif envelope == "gemini":
        assert body["error"]["code"] == 408  # type: ignore[index]
    else:
        assert body["error"]["code"] == "request_timeout"  # type: ignore[index]


def test_body_shorter_than_its_content_length_gets_408(proxy: ProxyServer) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"model\": \"mock\"")
        status, body = status_and_body(read_all(sock))
    assert status == 408
    assert "body_timeout" in body["error"]["message"]  # type: ignore[index]


def test_whole_requests_are_not_affected(proxy: ProxyServer) -> None:
    reply = httpx.post(proxy.url + "/v1/chat/completions", json={
        "model": "mock", "messages": [{"role": "user", "content": "hi"}]}, timeout=CLIENT_WAIT)
    assert reply.status_code == 200


def test_connections_beyond_the_bound_get_503_until_others_close(tmp_path: Path) -> None:
    with serve_proxy(config(tmp_path, header_timeout=60, max_connections=3)) as proxy:
        held = [socket.create_connection(("127.0.0.1", proxy.port), timeout=CLIENT_WAIT) for _ in range(3)]
        try:
            with httpx.Client(timeout=CLIENT_WAIT) as client:
                assert client.get(proxy.url + "/health").status_code == 503
        finally:
            for sock in held:
                sock.close()
        with httpx.Client(timeout=CLIENT_WAIT) as client:
            statuses = []
            for _ in range(200):  # the proxy notices the closed connections soon, not at once
                statuses.append(client.get(proxy.url + "/health").status_code)
                if statuses[-1] == 200:
                    break
    assert statuses[-1] == 200


def test_a_request_head_without_end_is_bounded_in_size(proxy: ProxyServer) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(64):  # 4 MiB, far beyond the cap; the proxy may close before all is sent
                sock.sendall(b"a" * 65536)
        except OSError:
            pass
        raw = read_all(sock)
    status, body = status_and_body(raw)
    assert status == 431
    assert body["error"]["code"] == "request_header_too_large"  # type: ignore[index]


def test_a_head_under_the_cap_is_served(proxy: ProxyServer) -> None:
    reply = httpx.get(proxy.url + "/health", headers={f"x-h{n}": "v" * 500 for n in range(60)}, timeout=CLIENT_WAIT)
    assert reply.status_code == 200
