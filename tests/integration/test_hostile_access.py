"""Tiers hold on every path (count_tokens, !/models, !/backends) and X-Forwarded-For is believed only
from configured proxies (the failed-key throttle counts by the real peer)."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from fakes.openai_upstream import FakeOpenAI
from integration.conftest import serve_proxy
from integration.test_access import ENV, FREE, configured


def test_count_tokens_obeys_the_tier(tmp_path: Path, fake: FakeOpenAI) -> None:
    body = {"model": "premium-llm:big", "messages": [{"role": "user", "content": "hi"}]}
    with serve_proxy(configured(tmp_path, fake), environ=ENV) as proxy:
        anthropic = httpx.post(proxy.url + "/v1/messages/count_tokens", json=body, headers={"x-api-key": FREE})
        gemini = httpx.post(proxy.url + f"/v1beta/models/premium-llm:big:countTokens?key={FREE}",
                            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        allowed = httpx.post(proxy.url + "/v1/messages/count_tokens", headers={"x-api-key": FREE},
                             json={**body, "model": "free-llm:tiny"})
        by_default = httpx.post(proxy.url + "/v1/messages/count_tokens", headers={"x-api-key": FREE},
                                json={**body, "model": "tiny"})
    assert anthropic.status_code == 403 and anthropic.json()["error"]["type"] == "permission_error"
    assert gemini.status_code == 403 and gemini.json()["error"]["status"] == "PERMISSION_DENIED"
    assert allowed.status_code == 200 and allowed.json()["input_tokens"] > 0
    assert by_default.status_code == 200  # the tier's default backend, as for the request itself


def command(proxy_url: str, key: str, text: str) -> str:
    reply = httpx.post(proxy_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                       json={"model": "tiny", "messages": [{"role": "user", "content": text}]})
    assert reply.status_code == 200
    return str(reply.json()["choices"][0]["message"]["content"])


def test_model_and_backend_listings_obey_the_tier(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(configured(tmp_path, fake), environ=ENV) as proxy:
        models = command(proxy.url, FREE, "!/models")
        backends = command(proxy.url, FREE, "!/backends")
    assert "free-llm:tiny" in models
    assert "premium-llm" not in models and "mock:" not in models
    assert "free-llm" in backends
    assert "premium-llm" not in backends and "mock" not in backends


def wrong_keys(proxy_url: str, forwarded: list[str]) -> list[int]:
    return [httpx.post(proxy_url + "/v1/chat/completions", json={"model": "big", "messages": []},
                       headers={"Authorization": "Bearer wrong-key", "X-Forwarded-For": address}).status_code
            for address in forwarded]


def test_forwarded_for_from_loopback_is_not_believed(tmp_path: Path, fake: FakeOpenAI) -> None:
    rotating = [f"10.0.0.{n}" for n in range(1, 9)]
    with serve_proxy(configured(tmp_path, fake), environ=ENV) as proxy:
        statuses = wrong_keys(proxy.url, rotating)
        victim = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "big", "messages": []},
                            headers={"Authorization": "Bearer wrong-key", "X-Forwarded-For": "10.9.9.9"})
    assert statuses[:5] == [401] * 5
    assert 429 in statuses[5:], "rotating X-Forwarded-For must not reset the throttle of the real peer"
    assert victim.status_code == 429  # the peer (127.0.0.1) is throttled, whatever address it claims


def test_forwarded_for_from_a_trusted_proxy_is_believed(tmp_path: Path, fake: FakeOpenAI) -> None:
    config = configured(tmp_path, fake)
    proxy_yaml = config / "proxy.yaml"
    proxy_yaml.write_text(proxy_yaml.read_text() + "server: {trusted_proxies: ['127.0.0.1']}\n")
    with serve_proxy(config, environ=ENV) as proxy:
        statuses = wrong_keys(proxy.url, [f"10.0.0.{n}" for n in range(1, 9)])
    assert statuses == [401] * 8  # each forwarded address is a client of its own


def test_request_log_lines_cannot_be_forged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "proxy.yaml").write_text("logging: {requests: true}\n")
    caplog.set_level(logging.INFO, logger="lip.requests")
    fake_line = "2026-12-01 00:00:00,000 INFO lip.requests: forged"
    models = [f"mock:a\r\n{fake_line}", f"mock:a\x0b{fake_line}", f"mock:a\x1b[2K\x1c{fake_line}",
              f"mock:a\u2028{fake_line}", f"mock:a\x85{fake_line}"]
    with serve_proxy(tmp_path) as proxy:
        for model in models:
            httpx.post(proxy.url + "/v1/chat/completions",
                       json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    lines = [r.getMessage() for r in caplog.records if r.name == "lip.requests"]
    assert len(lines) == len(models)
    assert all(len(line.splitlines()) == 1 and line.isprintable() for line in lines)
    assert any("forged" in line for line in lines)  # a selector the proxy accepts is logged, escaped
