"""Limits that hold across processes: two proxies sharing one real Redis, and `--workers 2` on one machine."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import httpx
import pytest

from fakes.openai_upstream import Behaviour, FakeOpenAI
from integration.conftest import serve_proxy, write_backend
from integration.processes import wait_answering


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed: run scripts/ensure-services.sh (make test does)"
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def limited_config(tmp_path: Path, fake: FakeOpenAI, store: str, rpm: int = 5, extra: str = "") -> Path:
    write_backend(tmp_path, "shared", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        models:
          gpt-4o:
            limits:
              requests_per_minute: {rpm}
        """)
    (tmp_path / "proxy.yaml").write_text(f"limits:\n  store: {store}\n{extra}")
    return tmp_path


@contextmanager
def proxy_process(config: Path, *extra: str) -> Iterator[str]:
    with proxy_and_process(config, *extra) as (url, _):
        yield url


@contextmanager
def proxy_and_process(config: Path | None, *extra: str, cwd: Path | None = None,
                      ) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``lip serve`` in a process of its own (``config=None``: no --config-dir, run in ``cwd``)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIP_")}
    where = ["--config-dir", str(config)] if config is not None else []
    process = subprocess.Popen(
        [sys.executable, "-m", "lip", "serve", *where, "--port", str(port), "--log-level", "warning", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answering(url + "/health", process,
                       lambda: process.stderr.read() if process.stderr else "proxy exited", "proxy did not start")
        yield url, process
    finally:
        process.send_signal(signal.SIGINT)  # drains without SIGTERM's delay for a balancer
        process.wait(timeout=15)


def ask(url: str) -> int:
    body = {"model": "shared:gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(timeout=10) as client:  # a new connection each time: spreads over workers
        return client.post(url + "/v1/chat/completions", json=body).status_code


def test_two_proxy_processes_sharing_redis_admit_no_more_than_the_limit(
    tmp_path: Path, fake: FakeOpenAI, redis_url: str
) -> None:
    config = limited_config(tmp_path, fake, redis_url, rpm=5)
    with proxy_process(config) as first, proxy_process(config) as second:
        statuses = [ask(url) for _ in range(6) for url in (first, second)]
    assert statuses.count(200) == 5, statuses
    assert statuses.count(429) == 7
    assert len(fake.chat_requests()) == 5


def test_redis_store_tokens_per_minute_reconciles(tmp_path: Path, fake: FakeOpenAI, redis_url: str) -> None:
    write_backend(tmp_path, "tpm", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        models:
          gpt-4o:
            limits: {{tokens_per_minute: 1000}}
        """)
    (tmp_path / "proxy.yaml").write_text(f"limits:\n  store: {redis_url}\n")
    body = {"model": "tpm:gpt-4o", "max_tokens": 450, "messages": [{"role": "user", "content": "hi"}]}
    with serve_proxy(tmp_path, default_backend="tpm") as proxy:
        codes = [httpx.post(proxy.url + "/v1/chat/completions", json=body).status_code for _ in range(4)]
        over = httpx.post(proxy.url + "/v1/chat/completions", json={**body, "max_tokens": 995})
    assert codes == [200, 200, 200, 200], "reservations of 450+ were reconciled to the real usage"
    assert over.status_code == 429
    assert over.headers["x-ratelimit-limit-tokens"] == "1000"


def test_workers_share_limits_on_one_machine_without_redis(tmp_path: Path, fake: FakeOpenAI) -> None:
    config = limited_config(tmp_path, fake, "memory", rpm=4)
    with proxy_process(config, "--workers", "2") as url:
        statuses = [ask(url) for _ in range(10)]
    assert statuses.count(200) == 4, statuses
    assert len(fake.chat_requests()) == 4


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_stopping_workers_writes_every_usage_record(tmp_path: Path, fake: FakeOpenAI, stop: signal.Signals) -> None:
    """The supervisor passes one signal on: each worker finishes and flushes (a second would skip that)."""
    store = tmp_path / "usage.db"
    config = limited_config(tmp_path, fake, "memory", rpm=1000, extra=f"usage:\n  store: sqlite:///{store}\n")
    with proxy_and_process(config, "--workers", "2") as (url, process):
        statuses = [ask(url) for _ in range(12)]
        process.send_signal(stop)
        assert process.wait(timeout=30) == 0
    assert statuses == [200] * 12
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM usage_records WHERE status = 200").fetchone() == (12,)


def test_workers_start_without_a_config_dir_on_the_mock(tmp_path: Path) -> None:
    """Like one process, workers with no ./config serve the built-in default."""
    with proxy_and_process(None, "--workers", "2", cwd=tmp_path) as (url, _):
        _wait_for_workers(url, 2)
        answer = httpx.post(url + "/v1/chat/completions", timeout=10,
                            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200 and answer.headers["x-lip-backend"] == "mock"


def test_workers_share_in_chat_settings(tmp_path: Path, fake: FakeOpenAI) -> None:
    """The turn after a command may reach another worker: it must still see the command's settings."""
    for name in ("main", "other"):
        write_backend(tmp_path, name, f"backend_type: custom\napi_base_url: {fake.base_url}\nmodels:\n  m: {{}}\n")
    (tmp_path / "proxy.yaml").write_text("default_backend: main\n")

    def say(url: str, text: str) -> httpx.Response:
        return httpx.post(url + "/v1/chat/completions", headers={"x-session-id": "chat-7"},  # a new connection
                          json={"model": "m", "messages": [{"role": "user", "content": text}]}, timeout=10)

    with proxy_and_process(tmp_path, "--workers", "2") as (url, _):
        _wait_for_workers(url, 2)
        assert say(url, "!/set(model=other:m)").status_code == 200
        backends = [say(url, f"turn {i}").headers["x-lip-backend"] for i in range(10)]
        usage = say(url, "!/usage").json()["choices"][0]["message"]["content"]
    assert backends == ["other"] * 10
    assert "10 requests" in usage


def test_workers_share_stored_responses(tmp_path: Path) -> None:
    """A Responses conversation continues (and can be read back) whichever worker the next turn reaches."""
    (tmp_path / "proxy.yaml").write_text("default_backend: mock\n")

    def turn(url: str, text: str, previous: str | None) -> dict[str, object]:
        body = {"model": "mock:echo", "input": text, **({"previous_response_id": previous} if previous else {})}
        response = httpx.post(url + "/v1/responses", json=body, timeout=10)  # a new connection each turn
        assert response.status_code == 200, response.text
        return dict(response.json())

    with proxy_and_process(tmp_path, "--workers", "2") as (url, _):
        _wait_for_workers(url, 2)
        previous = None
        for n in range(8):
            previous = str(turn(url, f"turn {n}", previous)["id"])
        fetched = [httpx.get(f"{url}/v1/responses/{previous}", timeout=10).status_code for _ in range(6)]
    assert fetched == [200] * 6


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _wait_for_workers(url: str, count: int) -> None:
    """Until every worker listens (/health answered once the first one was up)."""
    port = int(url.rsplit(":", 1)[1])
    deadline = time.monotonic() + 30
    while _listeners(port) < count:
        assert time.monotonic() < deadline, "not every worker started listening"
        time.sleep(0.05)


def _listeners(port: int) -> int:
    """Sockets listening on ``port`` (one per worker with SO_REUSEPORT)."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A")


def _cpu_ticks(pid: int) -> int:
    fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="one socket per worker (SO_REUSEPORT) is Linux's")
def test_workers_each_take_a_share_of_connections_opened_together(tmp_path: Path, fake: FakeOpenAI) -> None:
    """uvicorn's shared socket gave every connection of a pool opened at once to one worker."""
    config = limited_config(tmp_path, fake, "memory", rpm=1_000_000)
    body = {"model": "shared:gpt-4o", "messages": [{"role": "user", "content": "hi"}]}

    async def pool_of_16(url: str) -> list[int]:
        """Like an SDK's pool (or the benchmark): 16 keep-alive connections opened at once, 25 requests each."""
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as session:

            async def connection() -> list[int]:
                statuses = []
                for _ in range(25):
                    async with session.post(url + "/v1/chat/completions", json=body) as response:
                        await response.read()
                        statuses.append(response.status)
                return statuses

            batches = await asyncio.gather(*(connection() for _ in range(16)))
        return [status for batch in batches for status in batch]

    with proxy_and_process(config, "--workers", "2") as (url, process):
        _wait_for_workers(url, 2)
        workers = _children(process.pid)
        before = {pid: _cpu_ticks(pid) for pid in workers}
        statuses = asyncio.run(pool_of_16(url))
        used = sorted((_cpu_ticks(pid) - before[pid] for pid in workers), reverse=True)
    assert statuses == [200] * 400
    busiest, second = used[0], used[1]  # the rest are helpers (multiprocessing's resource tracker)
    assert second >= 0.25 * (busiest + second), used


def test_unreachable_redis_fails_open_by_default_and_closed_when_asked(tmp_path: Path, fake: FakeOpenAI) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    open_dir, closed_dir = tmp_path / "open", tmp_path / "closed"
    limited_config(open_dir, fake, dead)
    limited_config(closed_dir, fake, dead, extra="  on_store_error: deny\n")
    body = {"model": "shared:gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    with serve_proxy(open_dir) as proxy:
        allowed = httpx.post(proxy.url + "/v1/chat/completions", json=body)
    with serve_proxy(closed_dir) as proxy:
        denied = httpx.post(proxy.url + "/v1/chat/completions", json=body)
    assert allowed.status_code == 200
    assert denied.status_code == 503
    assert denied.json()["error"]["code"] == "rate_limit_store_unavailable"


def test_circuit_state_is_shared_through_redis(tmp_path: Path, fake: FakeOpenAI, redis_url: str) -> None:
    write_backend(tmp_path, "flaky", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        max_retries: 0
        models:
          gpt-4o: {{}}
        """)
    write_backend(tmp_path, "steady", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        models:
          gpt-4o-mini: {{}}
        """)
    (tmp_path / "proxy.yaml").write_text(
        f"limits:\n  store: {redis_url}\nrouting:\n  breaker_failures: 2\n  breaker_cooldown: 30\n"
    )
    fake.enqueue(Behaviour(status=500), Behaviour(), Behaviour(status=500), Behaviour())
    body = {"model": "flaky:gpt-4o|steady:gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    with serve_proxy(tmp_path) as first, serve_proxy(tmp_path) as second:
        one = httpx.post(first.url + "/v1/chat/completions", json=body)
        two = httpx.post(second.url + "/v1/chat/completions", json=body)
        calls = len(fake.chat_requests())
        time.sleep(1.1)  # past the local "recently healthy" cache
        three = httpx.post(first.url + "/v1/chat/completions", json=body)
    assert [r.headers["x-lip-backend"] for r in (one, two, three)] == ["steady", "steady", "steady"]
    assert calls == 4, "each proxy saw one failure of flaky, then served from steady"
    assert len(fake.chat_requests()) == 5, "the circuit opened by two failures on two proxies: flaky not called"


def test_sessions_are_shared_through_redis(tmp_path: Path, fake: FakeOpenAI, redis_url: str) -> None:
    for name in ("main", "other"):
        write_backend(tmp_path, name, f"backend_type: custom\napi_base_url: {fake.base_url}\nmodels:\n  m: {{}}\n")
    (tmp_path / "proxy.yaml").write_text(f"default_backend: main\nlimits:\n  store: {redis_url}\n")

    def say(proxy_url: str, text: str) -> httpx.Response:
        return httpx.post(proxy_url + "/v1/chat/completions", headers={"x-session-id": "shared-1"},
                          json={"model": "m", "messages": [{"role": "user", "content": text}]})

    with serve_proxy(tmp_path) as first, serve_proxy(tmp_path) as second:
        say(first.url, "!/set(model=other:m, temperature=0.2)")
        answered = say(second.url, "hello")
        usage = say(first.url, "!/usage").json()["choices"][0]["message"]["content"]
    assert answered.headers["x-lip-backend"] == "other"
    assert fake.chat_requests()[0].body["temperature"] == 0.2
    assert "1 requests" in usage
