"""Client keys and tiers: 401/403/429 in the client's protocol, per-tier routes and limits, metrics."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import openai
import pytest

from fakes.openai_upstream import FakeOpenAI
from integration.conftest import ProxyServer, serve_proxy, write_backend

ACME, OPS, FREE = "acme-key-0123456789", "ops-key-9876543210", "free-key-5555555555"


def configured(tmp_path: Path, fake: FakeOpenAI) -> Path:
    write_backend(tmp_path, "premium-llm", f"backend_type: custom\napi_base_url: {fake.base_url}\n"
                                           "models:\n  big: {}\n  small: {}\n")
    write_backend(tmp_path, "free-llm", f"backend_type: custom\napi_base_url: {fake.base_url}\n"
                                        "models:\n  tiny: {}\n")
    (tmp_path / "proxy.yaml").write_text(f"""\
default_backend: premium-llm
clients:
  - name: acme
    key_env_var: ACME_PROXY_KEY
    tier: premium
  - name: ops
    key_sha256: "{hashlib.sha256(OPS.encode()).hexdigest()}"
    tier: enterprise
    admin: true
  - name: student
    key_env_var: FREE_PROXY_KEY
    tier: free
tiers:
  free:
    backends: ["free-llm:*"]
    default_backend: free-llm
    requests_per_minute: 2
  premium:
    backends: ["premium-llm:*", "mock:*"]
  enterprise:
    backends: ["*"]
""")
    return tmp_path


ENV = {"ACME_PROXY_KEY": ACME, "FREE_PROXY_KEY": FREE}
HI = [{"role": "user", "content": "hi"}]


def post(proxy: ProxyServer, key: str | None, model: str = "big", **kw: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(proxy.url + "/v1/chat/completions", json={"model": model, "messages": HI},
                      headers=headers, **kw)  # type: ignore[arg-type]


def test_keys_are_required_and_checked(tmp_path: Path, fake: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    with serve_proxy(configured(tmp_path, fake), environ=ENV) as proxy:
        missing = post(proxy, None)
        wrong = post(proxy, "not-a-key")
        bearer = post(proxy, ACME)
        hashed = post(proxy, OPS)
        query = httpx.post(proxy.url + f"/v1/chat/completions?key={ACME}", json={"model": "big", "messages": HI})
        header = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "big", "messages": HI},
                            headers={"x-api-key": ACME})
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
    assert wrong.status_code == 401
    assert [bearer.status_code, hashed.status_code, query.status_code, header.status_code] == [200] * 4
    assert ACME not in caplog.text and "not-a-key" not in caplog.text
    assert all(ACME not in str(r.headers) and OPS not in str(r.headers) for r in fake.chat_requests()), \
        "the client's key never goes upstream"


def test_the_openai_sdk_sees_401_and_403(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(configured(tmp_path, fake), environ=ENV) as proxy:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=proxy.url + "/v1", api_key="wrong", max_retries=0).chat.completions.create(
                model="big", messages=HI)  # type: ignore[arg-type]
        student = openai.OpenAI(base_url=proxy.url + "/v1", api_key=FREE, max_retries=0)
        with pytest.raises(openai.PermissionDeniedError) as raised:
            student.chat.completions.create(model="premium-llm:big", messages=HI)  # type: ignore[arg-type]
    assert "may not use premium-llm:big" in raised.value.message


def test_tier_default_backend_limits_and_model_list(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(configured(tmp_path, fake), environ=ENV) as proxy:
        bare = [post(proxy, FREE, model="") for _ in range(3)]
        models = httpx.get(proxy.url + "/v1/models", headers={"Authorization": f"Bearer {FREE}"}).json()
        everyone = httpx.get(proxy.url + "/v1/models", headers={"Authorization": f"Bearer {OPS}"}).json()
    assert [r.status_code for r in bare] == [200, 200, 429]
    assert bare[0].headers["x-lip-backend"] == "free-llm", "the tier's default backend"
    assert bare[2].json()["error"]["code"] == "rate_limit_exceeded"
    assert int(bare[2].headers["retry-after"]) >= 1
    assert bare[0].headers["x-ratelimit-limit-requests"] == "2"
    assert [m["id"] for m in models["data"]] == ["free-llm:tiny"]
    assert "premium-llm:big" in [m["id"] for m in everyone["data"]]


def test_failover_skips_routes_the_tier_forbids(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(configured(tmp_path, fake), environ=ENV) as proxy:
        response = post(proxy, FREE, model="premium-llm:big|free-llm:tiny")
    assert response.status_code == 200
    assert response.headers["x-lip-backend"] == "free-llm"


def test_repeated_wrong_keys_are_slowed(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(configured(tmp_path, fake), environ=ENV) as proxy:
        codes = [post(proxy, f"guess-{i}").status_code for i in range(6)]
        blocked = post(proxy, ACME)
    assert codes == [401, 401, 401, 401, 401, 429]
    assert blocked.status_code == 429, "even a right key waits out the penalty"
    assert blocked.json()["error"]["code"] == "too_many_failed_keys"
    assert int(blocked.headers["retry-after"]) >= 1


def test_metrics_and_overhead_header(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(configured(tmp_path, fake), environ=ENV) as proxy:
        ok = post(proxy, ACME)
        post(proxy, FREE, model="premium-llm:big")
        metrics = httpx.get(proxy.url + "/metrics", headers={"Authorization": f"Bearer {OPS}"}).text
    assert float(ok.headers["x-lip-overhead-ms"]) >= 0
    assert 'lip_requests_total{backend="premium-llm",model="big",status="200",surface="openai"} 1.0' in metrics
    assert 'status="403"' in metrics
    assert "lip_request_duration_seconds_bucket" in metrics
    assert ACME not in metrics and FREE not in metrics
