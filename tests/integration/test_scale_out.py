"""Four replicas behind a real haproxy, with one real Redis and one real PostgreSQL, as an operator runs them.

Each replica is ``python -m lip serve`` in its own process; haproxy balances round-robin and checks
``GET /ready``. One test, in the order an operator would look (bounded: about 30-60 s here):

1. a rate limit holds for the fleet: admissions are the allowance (plus what refilled meanwhile);
2. a ``previous_response_id`` chain and an in-chat setting hold while turns go round the replicas;
3. a circuit opened by failures on one replica refuses on every replica;
4. a reload (``lip reload`` of each replica) is applied on all;
5. a restart under load (SIGTERM, drain, start again; ``LIP_TEST_ROLLING=4`` restarts the whole
   fleet one replica at a time) loses no request and no usage record: every answer is a 200 and
   PostgreSQL holds a row for each.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from fakes.openai_upstream import FakeOpenAI
from integration.conftest import write_backend
from integration.processes import clean_env, free_port, wait_answering
from integration.test_shared_limits import redis_url  # noqa: F401  (real redis-server, module scope)
from integration.test_usage_store import postgres  # noqa: F401  (real PostgreSQL, module scope)

REPLICAS = 4
ROLLING = int(os.environ.get("LIP_TEST_ROLLING", "1"))  # replicas restarted under load (4: the whole fleet)
RPM = 40
HAPROXY = """\
global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
    retry-on conn-failure empty-response
listen stats
    bind 127.0.0.1:{stats}
    stats enable
    stats uri /stats
frontend lip
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk
    http-check send meth GET uri /ready
    http-check expect status 200
    timeout check 3s
    default-server inter 300ms fall 2 rise 1
{servers}
"""


class Replica:
    def __init__(self, index: int, config: Path, tmp: Path) -> None:
        self.index, self.config, self.tmp = index, config, tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = clean_env(self.tmp, LIP_REPLICA=f"r{self.index}")
        log = (self.tmp / f"replica-{self.index}.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lip", "serve", "--config-dir", str(self.config), "--port", str(self.port),
             "--pid-file", str(self.pid_file)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.tmp)
        log.close()

    @property
    def pid_file(self) -> Path:
        return self.tmp / f"replica-{self.index}.pid"

    def wait_ready(self) -> None:
        assert self.process is not None, "the replica was not started"
        wait_answering(self.url + "/ready", self.process, self.log, f"replica {self.index} never became ready")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=30)

    def log(self) -> str:
        return (self.tmp / f"replica-{self.index}.log").read_text(errors="replace")


@contextmanager
def haproxy(replicas: list[Replica], tmp: Path) -> Iterator[tuple[str, Callable[[], int]]]:
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert Path(binary).exists(), "haproxy is not installed: run scripts/ensure-services.sh"
    port, stats = free_port(), free_port()
    servers = "\n".join(f"    server r{r.index} 127.0.0.1:{r.port} check" for r in replicas)
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(HAPROXY.format(port=port, stats=stats, servers=servers))
    process = subprocess.Popen([binary, "-f", str(cfg), "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def up() -> int:
        try:
            csv = httpx.get(f"http://127.0.0.1:{stats}/stats;csv", timeout=2).text
        except httpx.TransportError:
            return 0
        return sum(1 for line in csv.splitlines() if line.startswith("replicas,r") and ",UP," in line)

    try:
        yield f"http://127.0.0.1:{port}", up
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _config(tmp: Path, fake: FakeOpenAI, redis: str, pg: str) -> Path:
    config = tmp / "config"
    write_backend(config, "main", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        max_retries: 0
        models:
          gpt-4o: {{}}
          other-model: {{}}
          gpt-4o-load: {{upstream_model: gpt-4o}}
          limited: {{limits: {{requests_per_minute: {RPM}}}}}
          broken: {{upstream_model: "fault:status=500"}}
        """)
    (config / "proxy.yaml").write_text(
        f"default_backend: main\nlimits:\n  store: {redis}\nusage:\n  store: {pg}\n"
        "server:\n  drain_delay: 1\n  drain_timeout: 10\nrouting:\n  breaker_failures: 2\n  breaker_cooldown: 60\n")
    return config


def _chat(client: httpx.Client, url: str, model: str, text: str = "hi", **headers: str) -> httpx.Response:
    return client.post(url + "/v1/chat/completions", headers=headers, timeout=15,
                       json={"model": model, "messages": [{"role": "user", "content": text}]})


async def _rows(pg: str, selector: str) -> dict[str, int]:
    conn = await asyncpg.connect(pg)
    try:
        rows = await conn.fetch("SELECT replica, count(*) FROM usage_records WHERE selector = $1 GROUP BY replica",
                                selector)
    finally:
        await conn.close()
    return {row[0]: row[1] for row in rows}


@pytest.mark.timeout(240)
def test_four_replicas_behind_haproxy(tmp_path: Path, fake: FakeOpenAI, redis_url: str, postgres: str) -> None:  # noqa: F811
    config = _config(tmp_path, fake, redis_url, postgres)
    replicas = [Replica(i, config, tmp_path) for i in range(1, REPLICAS + 1)]
    with ExitStack() as stack:
        for replica in replicas:
            replica.start()
            stack.callback(lambda r=replica: r.process and r.process.poll() is None and r.stop(signal.SIGINT))
        for replica in replicas:
            replica.wait_ready()
        url, up = stack.enter_context(haproxy(replicas, tmp_path))
        _wait(lambda: up() == REPLICAS, "haproxy never saw every replica ready")
        client = stack.enter_context(httpx.Client())
        _rate_limit_holds(client, url)
        _chain_and_setting_hold(client, url, fake)
        _circuit_refuses_on_all(client, replicas, fake)
        _reload_applies_on_all(config, replicas, tmp_path)
        answers, failures = _restart_under_load(url, up, replicas)
        for replica in replicas:
            assert replica.stop(signal.SIGINT) == 0, replica.log()
    assert len(answers) > 0
    assert failures == [], "requests were lost in the restart"
    rows = asyncio.run(_rows(postgres, "gpt-4o-load"))
    assert sum(rows.values()) == len(answers), "usage records were lost"
    assert len(rows) == REPLICAS, rows
    print(f"\nrestart of {ROLLING} replica(s) under load: {len(answers)} requests, {len(failures)} lost")


def _rate_limit_holds(client: httpx.Client, url: str) -> None:
    started = time.monotonic()
    statuses = _parallel(lambda n: _chat(client, url, "main:limited", f"limited {n}").status_code, 3 * RPM)
    refilled = math.ceil((time.monotonic() - started) * RPM / 60)
    admitted = statuses.count(200)
    assert RPM <= admitted <= RPM + refilled, (admitted, refilled)
    assert statuses.count(429) == len(statuses) - admitted


def _chain_and_setting_hold(client: httpx.Client, url: str, fake: FakeOpenAI) -> None:
    previous = None
    for turn in range(8):
        body = {"model": "gpt-4o", "input": f"turn {turn}", **({"previous_response_id": previous} if previous else {})}
        answer = client.post(url + "/v1/responses", json=body, timeout=15)
        assert answer.status_code == 200, answer.text
        previous = answer.json()["id"]
    last = fake.chat_requests()[-1].body["messages"]
    assert [m["content"] for m in last if m["role"] == "user"] == [f"turn {n}" for n in range(8)]
    session = {"x-session-id": "s1"}
    assert _chat(client, url, "gpt-4o", "!/set(model=main:other-model)", **session).status_code == 200
    models = [_chat(client, url, "gpt-4o", f"q{n}", **session).headers["x-lip-model"] for n in range(8)]
    assert models == ["other-model"] * 8


def _circuit_refuses_on_all(client: httpx.Client, replicas: list[Replica], fake: FakeOpenAI) -> None:
    assert all(_chat(client, replicas[0].url, "main:broken").status_code >= 500 for _ in range(2))
    upstream_calls = len(fake.chat_requests())
    refused = [_chat(client, r.url, "main:broken") for r in replicas]
    assert [r.status_code for r in refused] == [503] * REPLICAS
    assert {r.json()["error"]["code"] for r in refused} == {"circuit_open"}
    assert len(fake.chat_requests()) == upstream_calls, "a refusing replica still called the upstream"


def _reload_applies_on_all(config: Path, replicas: list[Replica], tmp: Path) -> None:
    write_backend(config, "added", "backend_type: mock\nmodels:\n  added-model: {}\n")
    for replica in replicas:
        done = subprocess.run([sys.executable, "-m", "lip", "reload", "--config-dir", str(config), "--pid-file",
                               str(replica.pid_file)], check=False, capture_output=True, text=True, timeout=30,
                              env=clean_env(tmp))
        assert done.returncode == 0, done.stderr
    for replica in replicas:
        _wait(lambda r=replica: "added:added-model" in httpx.get(r.url + "/v1/models").text,
              f"replica {replica.index} did not apply the reload")


def _restart_under_load(url: str, up: Callable[[], int], replicas: list[Replica]) -> tuple[list[int], list[str]]:
    answers: list[int] = []
    failures: list[str] = []
    stop = threading.Event()
    workers = [threading.Thread(target=_load, args=(url, answers, stop, failures), daemon=True) for _ in range(4)]
    for worker in workers:
        worker.start()
    for replica in replicas[:ROLLING]:
        assert replica.stop(signal.SIGTERM) == 0, replica.log()
        replica.start()
        replica.wait_ready()
        _wait(lambda: up() == REPLICAS, "haproxy never saw the restarted replica ready")
    stop.set()
    for worker in workers:
        worker.join(30)
    return answers, failures


def _parallel(call: Callable[[int], int], count: int) -> list[int]:
    results: list[int] = []
    lock = threading.Lock()
    numbers = iter(range(count))

    def run() -> None:
        while True:
            with lock:
                n = next(numbers, None)
            if n is None:
                return
            status = call(n)
            with lock:
                results.append(status)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def _load(url: str, answers: list[int], stop: threading.Event, failures: list[str]) -> None:
    with httpx.Client() as client:  # keep-alive through haproxy, as a client pool would
        while not stop.is_set():
            try:
                response = client.post(url + "/v1/chat/completions", timeout=15, json={
                    "model": "gpt-4o-load", "messages": [{"role": "user", "content": "load"}]})
                status = response.status_code
                if status != 200:
                    failures.append(f"{status} {dict(response.headers)} {response.text[:300]}")
            except httpx.TransportError as exc:
                status = 0
                failures.append(repr(exc))
            answers.append(status)
