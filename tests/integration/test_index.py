"""``GET /`` and ``HEAD /``: a small JSON index of what the proxy serves, public, where clients probe first."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from integration.conftest import ProxyServer, serve_proxy


@pytest.fixture(scope="module")
def proxy() -> Iterator[ProxyServer]:
    with serve_proxy() as server:
        yield server


def test_get_root_is_a_json_index_with_links(proxy: ProxyServer) -> None:
    response = httpx.get(proxy.url + "/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    index = response.json()
    assert index["name"] == "LLM Interactive Proxy"
    assert index["version"] == metadata.version("llm-interactive-proxy")
    assert set(index["surfaces"]) == {"openai_chat", "openai_responses", "anthropic", "gemini", "models", "usage",
                                      "dashboard", "metrics", "health"}
    assert index["surfaces"]["anthropic"][0] == "POST /v1/messages"
    assert index["links"]["health"] == "/health"
    for link in ("health", "metrics", "dashboard"):
        assert httpx.get(proxy.url + index["links"][link]).status_code == 200


def test_every_path_the_index_names_is_served(proxy: ProxyServer) -> None:
    index = httpx.get(proxy.url + "/").json()
    for paths in index["surfaces"].values():
        for entry in paths:
            method, path = entry.split(" ", 1)
            path = path.replace("{model}", "mock:mock-model").replace("{id}", "resp_unknown")
            response = httpx.request(method, proxy.url + path, json={"model": "mock:mock-model", "messages": [
                {"role": "user", "content": "hi"}], "contents": [{"parts": [{"text": "hi"}]}], "input": "hi",
                "max_tokens": 5})
            assert response.status_code not in (404, 405) or "unknown_url" not in response.text, entry
            assert response.status_code < 500, entry


def raw_exchange(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return data


def test_head_root_is_200_without_a_body(proxy: ProxyServer) -> None:
    data = raw_exchange(proxy.url, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-type: application/json" in head.lower()
    assert body == b"", "HEAD answers the head only"


def test_the_index_is_public_when_client_keys_are_configured(tmp_path: Path) -> None:
    (tmp_path / "proxy.yaml").write_text("clients:\n  - name: acme\n    key_env_var: ACME_KEY\n")
    with serve_proxy(tmp_path, environ={"ACME_KEY": "k-acme"}) as server:
        assert httpx.head(server.url + "/").status_code == 200
        assert httpx.get(server.url + "/").json()["name"] == "LLM Interactive Proxy"
        assert httpx.get(server.url + "/v1/models").status_code == 401, "the rest still needs a key"
