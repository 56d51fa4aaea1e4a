"""What tells replicas apart: the replica name in every usage row (SQLite and PostgreSQL), and each
store's health in /metrics."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx

from fakes.openai_upstream import FakeOpenAI
from integration.conftest import serve_proxy, write_backend
from integration.test_shared_limits import free_port
from integration.test_usage_store import postgres  # noqa: F401  (the module's real PostgreSQL fixture)
from lip.app import Settings
from lip.usage.records import UsageQuery
from lip.usage.store import open_store


def _config(tmp_path: Path, fake: FakeOpenAI, proxy_yaml: str) -> Path:
    write_backend(tmp_path, "main", f"backend_type: custom\napi_base_url: {fake.base_url}\nmodels:\n  gpt-4o: {{}}\n")
    (tmp_path / "proxy.yaml").write_text("default_backend: main\n" + proxy_yaml)
    return tmp_path


def _ask(url: str) -> int:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=10).status_code


async def _replicas(url: str) -> list[str | None]:
    store = open_store(url)
    await store.start()
    try:
        result = await store.query(UsageQuery())
    finally:
        await store.close()
    return [record["replica"] for record in result["records"]]


def test_usage_rows_name_the_replica_in_postgresql(tmp_path: Path, fake: FakeOpenAI, postgres: str) -> None:  # noqa: F811
    config = _config(tmp_path, fake, "server:\n  replica: replica-a\nusage:\n  pool_size: 2\n")
    settings = Settings(config_dir=config, config_dir_required=True, usage_store=postgres)
    with serve_proxy(settings=settings) as a:
        assert [_ask(a.url) for _ in range(3)] == [200] * 3
    with serve_proxy(settings=settings, environ={"LIP_REPLICA": "replica-b"}) as b:  # env wins over proxy.yaml
        assert _ask(b.url) == 200
    assert sorted(asyncio.run(_replicas(postgres))) == ["replica-a"] * 3 + ["replica-b"]


def test_usage_rows_name_the_host_by_default(tmp_path: Path, fake: FakeOpenAI) -> None:
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    settings = Settings(config_dir=_config(tmp_path, fake, ""), config_dir_required=True, usage_store=url)
    with serve_proxy(settings=settings) as proxy:
        assert _ask(proxy.url) == 200
    assert asyncio.run(_replicas(url)) == [socket.gethostname()]


def _gauges(text: str) -> dict[str, str]:
    return {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in text.splitlines()
            if line.startswith("lip_store_up{")}


def test_metrics_show_each_stores_health(tmp_path: Path, fake: FakeOpenAI) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with serve_proxy(_config(tmp_path, fake, f"limits:\n  store: {dead}\n")) as down:
        broken = _gauges(httpx.get(down.url + "/metrics").text)
    with serve_proxy(_config(tmp_path, fake, "")) as up:
        healthy = _gauges(httpx.get(up.url + "/metrics").text)
    assert broken['lip_store_up{kind="redis",store="state"}'] == "0.0"
    assert broken['lip_store_up{kind="sqlite",store="usage"}'] == "1.0"
    assert healthy['lip_store_up{kind="memory",store="state"}'] == "1.0"
