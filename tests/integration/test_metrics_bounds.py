"""/metrics stays bounded and truthful: passthrough model names are counted as ``other``, a circuit
that closed reads 0 again (memory and Redis stores), and with client keys only admins may scrape."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx

from fakes.openai_upstream import Behaviour, FakeOpenAI
from integration.conftest import serve_proxy, write_backend
from integration.test_shared_limits import redis_url  # noqa: F401  (the module's Redis server fixture)

HI = [{"role": "user", "content": "hi"}]


def chat(url: str, model: str, **headers: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json={"model": model, "messages": HI}, headers=headers,
                      timeout=20)


def test_passthrough_model_names_do_not_grow_metrics(tmp_path: Path, fake: FakeOpenAI) -> None:
    write_backend(tmp_path, "up", f"backend_type: custom\napi_base_url: {fake.base_url}\n"
                                  "passthrough_models: true\nmodels:\n  listed: {}\n")
    with serve_proxy(tmp_path) as proxy:
        for index in range(40):
            assert chat(proxy.url, f"up:made-up-{index}").status_code == 200
        chat(proxy.url, "up:listed")
        chat(proxy.url, "mock:another-made-up")
        metrics = httpx.get(proxy.url + "/metrics").text
    assert "made-up" not in metrics
    assert 'lip_requests_total{backend="up",model="other",status="200",surface="openai"} 40.0' in metrics
    assert 'lip_requests_total{backend="up",model="listed",status="200",surface="openai"} 1.0' in metrics
    assert 'lip_requests_total{backend="mock",model="other",status="200",surface="openai"} 1.0' in metrics


def circuit_config(tmp_path: Path, fake: FakeOpenAI, store: str = "memory") -> Path:
    write_backend(tmp_path, "up", f"backend_type: custom\napi_base_url: {fake.base_url}\n"
                                  "passthrough_models: true\nmax_retries: 0\nmodels:\n  m: {}\n")
    (tmp_path / "proxy.yaml").write_text(
        f"limits: {{store: '{store}'}}\nrouting: {{breaker_failures: 2, breaker_cooldown: 0.3}}\n")
    return tmp_path


def open_then_close(tmp_path: Path, fake: FakeOpenAI, store: str) -> tuple[str, str]:
    """(metrics while the circuit is open, metrics once a probe has closed it)."""
    with serve_proxy(circuit_config(tmp_path, fake, store)) as proxy:
        fake.default = Behaviour(status=503)
        statuses = [chat(proxy.url, "up:m").status_code for _ in range(3)]
        assert statuses[-1] == 503
        while_open = httpx.get(proxy.url + "/metrics").text
        fake.default = Behaviour()
        for _ in range(200):  # until the cool-off is over and the probe has succeeded
            if chat(proxy.url, "up:m").status_code == 200:
                break
        closed = httpx.get(proxy.url + "/metrics").text
    return while_open, closed


def test_circuit_gauge_returns_to_zero_memory(tmp_path: Path, fake: FakeOpenAI) -> None:
    while_open, closed = open_then_close(tmp_path, fake, "memory")
    assert 'lip_circuit_open{route="up:m"} 1.0' in while_open
    assert 'lip_circuit_open{route="up:m"} 0.0' in closed


def test_circuit_gauge_returns_to_zero_redis(tmp_path: Path, fake: FakeOpenAI, redis_url: str) -> None:  # noqa: F811
    while_open, closed = open_then_close(tmp_path, fake, redis_url)
    assert 'lip_circuit_open{route="up:m"} 1.0' in while_open
    assert 'lip_circuit_open{route="up:m"} 0.0' in closed


ADMIN, USER = "admin-key-0123456789", "user-key-0123456789"


def clients_config(tmp_path: Path, access: str | None = None) -> Path:
    lines = ["clients:",
             f"  - {{name: ops, key_sha256: '{hashlib.sha256(ADMIN.encode()).hexdigest()}', admin: true}}",
             f"  - {{name: bob, key_sha256: '{hashlib.sha256(USER.encode()).hexdigest()}'}}"]
    if access:
        lines.append(f"metrics: {{access: {access}}}")
    (tmp_path / "proxy.yaml").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_metrics_are_for_admin_clients_when_keys_are_on(tmp_path: Path) -> None:
    with serve_proxy(clients_config(tmp_path)) as proxy:
        anonymous = httpx.get(proxy.url + "/metrics")
        user = httpx.get(proxy.url + "/metrics", headers={"Authorization": f"Bearer {USER}"})
        admin = httpx.get(proxy.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
    assert anonymous.status_code == 401
    assert user.status_code == 403 and "metrics.access" in user.json()["error"]["message"]
    assert admin.status_code == 200 and "lip_circuit_open" in admin.text


def test_metrics_access_setting(tmp_path: Path) -> None:
    with serve_proxy(clients_config(tmp_path, "clients")) as proxy:
        assert httpx.get(proxy.url + "/metrics").status_code == 401
        assert httpx.get(proxy.url + "/metrics", headers={"Authorization": f"Bearer {USER}"}).status_code == 200
    with serve_proxy(clients_config(tmp_path, "public")) as proxy:
        assert httpx.get(proxy.url + "/metrics").status_code == 200
