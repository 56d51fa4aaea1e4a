"""The default usage store as a new user meets it: `lip serve` says where it is, `lip usage` reads it anywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from integration.processes import clean_env, free_port, running


def test_serve_records_into_the_per_user_store_it_names_and_lip_usage_reads_it_from_anywhere(tmp_path: Path) -> None:
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    env, port = clean_env(tmp_path), free_port()
    store = tmp_path / "xdg-data" / "lip" / "usage.db"
    with running([sys.executable, "-m", "lip", "serve", "--port", str(port)], port=port, env=env, cwd=work,
                 log=tmp_path / "out.log") as proxy:
        reply = httpx.post(proxy.url + "/v1/chat/completions", timeout=10,
                           json={"model": "mock-model", "messages": [{"role": "user", "content": "count me"}]})
        assert reply.status_code == 200
    assert f"usage records: sqlite:///{store}" in proxy.output()
    assert store.is_file()
    assert list(work.iterdir()) == [], "nothing written where the proxy was started"
    result = subprocess.run([sys.executable, "-m", "lip", "usage", "--json"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)["records"]
    assert [r["request_id"] for r in records] == [reply.headers["x-request-id"]]


def test_a_relative_store_in_proxy_yaml_is_beside_it_wherever_lip_starts(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "proxy.yaml").write_text("usage:\n  store: sqlite:///records/usage.db\n")
    env, port = clean_env(tmp_path), free_port()
    argv = [sys.executable, "-m", "lip", "serve", "--config-dir", str(config), "--port", str(port)]
    with running(argv, port=port, env=env, cwd=tmp_path, log=tmp_path / "out.log") as proxy:
        assert httpx.post(proxy.url + "/v1/chat/completions", timeout=10, json={
            "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
    assert (config / "records" / "usage.db").is_file()
    assert not (tmp_path / "records").exists() and not (tmp_path / "xdg-data").exists()
