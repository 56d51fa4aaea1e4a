"""Usage records through the real proxy: one per request (failures included), GET /v1/usage, lip usage."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from fakes.openai_upstream import Behaviour, FakeOpenAI
from integration.conftest import ProxyServer, serve_proxy, write_backend
from lip.app import Settings

ACME, OPS = "acme-usage-key-123456", "ops-usage-key-654321"


def configured(tmp_path: Path, fake: FakeOpenAI) -> Path:
    write_backend(tmp_path, "priced", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        models:
          gpt-4o:
            pricing: {{input_per_million: 2.5, output_per_million: 10}}
            limits: {{max_output_tokens: 100, output_policy: reject}}
        """)
    (tmp_path / "proxy.yaml").write_text(f"""\
default_backend: priced
usage:
  store: sqlite:///{tmp_path}/usage.db
clients:
  - {{name: acme, key_env_var: ACME_KEY}}
  - {{name: ops, key_env_var: OPS_KEY, admin: true}}
""")
    return tmp_path


def post(proxy: ProxyServer, key: str, **body: object) -> httpx.Response:
    payload = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello there"}], **body}
    return httpx.post(proxy.url + "/v1/chat/completions", json=payload, headers={"Authorization": f"Bearer {key}"})


def test_every_request_is_recorded_and_clients_see_their_own(tmp_path: Path, fake: FakeOpenAI) -> None:
    config = configured(tmp_path, fake)
    fake.enqueue(Behaviour(), Behaviour(), Behaviour(status=400, error_message="bad"))
    settings = Settings(config_dir=config, config_dir_required=True, usage_store=f"sqlite:///{config}/usage.db")
    with serve_proxy(config, environ={"ACME_KEY": ACME, "OPS_KEY": OPS}, settings=settings) as proxy:
        assert post(proxy, ACME).status_code == 200
        assert post(proxy, ACME, stream=True).status_code == 200
        assert post(proxy, ACME).status_code == 400
        assert post(proxy, ACME, max_tokens=1000).status_code == 400  # rejected by the proxy: recorded too
        assert post(proxy, OPS).status_code == 200
        own = httpx.get(proxy.url + "/v1/usage", headers={"Authorization": f"Bearer {ACME}"}).json()
        everyone = httpx.get(proxy.url + "/v1/usage?group_by=client",
                             headers={"Authorization": f"Bearer {OPS}"}).json()
        bad = httpx.get(proxy.url + "/v1/usage?group_by=planet", headers={"Authorization": f"Bearer {OPS}"})
        anonymous = httpx.get(proxy.url + "/v1/usage")
    records = own["records"]
    assert len(records) == 4 and {r["client"] for r in records} == {"acme"}
    ok = [r for r in records if r["status"] == 200]
    assert len(ok) == 2 and all(r["backend"] == "priced" and r["model"] == "gpt-4o" for r in ok)
    assert all(r["input_tokens"] > 0 and r["output_tokens"] == 5 and not r["estimated"] for r in ok)
    assert all(abs(r["cost"] - (r["input_tokens"] * 2.5 + 5 * 10) / 1e6) < 1e-9 for r in ok)
    streamed = [r for r in ok if r["stream"]]
    assert len(streamed) == 1 and streamed[0]["ttft_ms"] is not None
    assert all(r["backend"] == "priced" and r["model"] == "gpt-4o" for r in records), "failures name their route"
    codes = sorted(r["error_code"] for r in records if r["status"] == 400)
    assert codes == ["invalid_request_error", "output_limit_exceeded"], "the upstream 400 and the proxy refusal"
    groups = {g["key"]: g for g in everyone["groups"]}
    assert groups["acme"]["requests"] == 4 and groups["ops"]["requests"] == 1
    assert groups["acme"]["errors"] == 2
    assert bad.status_code == 400 and "group_by" in bad.json()["error"]["message"]
    assert anonymous.status_code == 401
    result = subprocess.run(
        [sys.executable, "-m", "lip", "usage", "--config-dir", str(config), "--group-by", "model"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    assert "gpt-4o" in result.stdout and "5" in result.stdout


def test_records_survive_a_clean_shutdown(tmp_path: Path, fake: FakeOpenAI) -> None:
    write_backend(tmp_path, "up", f"backend_type: custom\napi_base_url: {fake.base_url}\nmodels:\n  m: {{}}\n")
    store = f"sqlite:///{tmp_path}/usage.db"
    settings = Settings(config_dir=tmp_path, config_dir_required=True, usage_store=store)
    with serve_proxy(tmp_path, settings=settings) as proxy:
        for _ in range(25):
            assert httpx.post(proxy.url + "/v1/chat/completions",
                              json={"model": "up:m", "messages": [{"role": "user", "content": "x"}]}).status_code == 200
    with serve_proxy(tmp_path, settings=settings) as proxy:
        result = httpx.get(proxy.url + "/v1/usage?group_by=backend").json()
    assert result["groups"][0]["key"] == "up" and result["groups"][0]["requests"] == 25


def test_a_stream_the_client_abandons_is_recorded(tmp_path: Path, fake: FakeOpenAI) -> None:
    write_backend(tmp_path, "slow", f"backend_type: custom\napi_base_url: {fake.base_url}\n"
                                    "passthrough_models: true\nstream_idle_timeout: 30\n")
    settings = Settings(config_dir=tmp_path, config_dir_required=True, usage_store=f"sqlite:///{tmp_path}/u.db")
    with serve_proxy(tmp_path, settings=settings) as proxy:
        body = {"model": "slow:fault:stall_after=3", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=body, timeout=10) as response:
            assert next(response.iter_lines()).startswith("data: ")
        deadline = time.monotonic() + 5
        records: list[dict[str, object]] = []
        while not records and time.monotonic() < deadline:
            records = httpx.get(proxy.url + "/v1/usage").json()["records"]
            time.sleep(0.05)
    (record,) = records
    assert record["stream"] is True and record["backend"] == "slow"
    assert record["error_code"] == "client_closed"
