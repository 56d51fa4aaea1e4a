"""A PostgreSQL usage store that goes down and comes back: one clear log line for the outage and one
for the recovery (no asyncpg tracebacks, no "Future exception was never retrieved"), the records
waiting meanwhile counted in /metrics and written once it is back."""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from integration.conftest import serve_proxy
from integration.test_usage_store import _as_server_user, _binaries, _run, free_port
from lip.app import Settings


@dataclass
class Postgres:
    url: str
    bin_dir: Path
    data: Path
    options: str
    log: Path
    prefix: list[str]

    def stop(self) -> None:
        _run(*self.prefix, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def start(self) -> None:
        _run(*self.prefix, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", self.options, "-l",
             str(self.log), "-w", "-t", "30", "start")


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    bin_dir, prefix = _binaries(), _as_server_user()
    workdir = Path(tempfile.mkdtemp(prefix="lip-pg-outage-"))
    if prefix:
        shutil.chown(workdir, "postgres", "postgres")
    port = free_port()
    server = Postgres(f"postgresql://postgres@127.0.0.1:{port}/postgres", bin_dir, workdir / "data",
                      f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={workdir} -c fsync=off",
                      workdir / "server.log", prefix)
    _run(*prefix, str(bin_dir / "initdb"), "-D", str(server.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
         "--locale=C", "--no-sync")
    server.start()
    try:
        yield server
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(server.data), "-m", "immediate", "-w", "stop"],
                       check=False, capture_output=True, timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


HTTP = httpx.Client(timeout=30)


def chat(url: str) -> int:
    return HTTP.post(url + "/v1/chat/completions",
                     json={"model": "mock", "messages": [{"role": "user", "content": "hi"}]}).status_code


def metric(url: str, name: str) -> float:
    for line in HTTP.get(url + "/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "_total "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20  # a bound on the wait, not a timing assertion
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.05)


def test_an_outage_is_one_line_and_its_end_another(tmp_path: Path, postgres: Postgres,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with serve_proxy(settings=Settings(usage_store=postgres.url)) as proxy:
        assert chat(proxy.url) == 200
        until(lambda: metric(proxy.url, "lip_usage_records_pending") == 0, "the first record was not written")
        postgres.stop()
        statuses = [chat(proxy.url) for _ in range(5)]
        until(lambda: metric(proxy.url, "lip_usage_records_pending") >= 5, "records are not waiting")
        time.sleep(1.5)  # a few more write attempts fail while it is down
        postgres.start()
        until(lambda: metric(proxy.url, "lip_usage_records_pending") == 0, "the records were not written after it")
        assert metric(proxy.url, "lip_usage_records_dropped") == 0
    assert statuses == [200] * 5  # recording never fails a request
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("lip.usage")]
    down = [m for m in messages if "unreachable" in m]
    back = [m for m in messages if "reachable again" in m]
    assert len(down) == 1 and len(back) == 1, messages
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("lip")], "no tracebacks"
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
