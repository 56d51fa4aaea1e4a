"""Warm-up before the socket accepts, readiness apart from liveness, drain on SIGTERM, reload on SIGHUP.

The proxy runs as a real process (``python -m lip serve``) where signals matter; warm-up and
readiness use the in-thread harness with an injected tokenizer loader that records (and can hold)
every load.
"""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import tiktoken

from fakes.openai_upstream import FakeOpenAI
from integration.conftest import ProxyServer, serve_proxy, write_backend
from integration.test_shared_limits import free_port, proxy_and_process
from lip.app import Settings
from shared_data import shared_encoding

SLOW = "main:fault:chunk_delay=0.5,chunks=8"  # a stream of about four seconds


def _loader(loads: list[str], gate: threading.Event | None = None) -> Callable[[str], tiktoken.Encoding]:
    def load(name: str) -> tiktoken.Encoding:
        loads.append(name)
        if gate is not None:
            assert gate.wait(30), "the test never let the tokenizer load finish"
        return shared_encoding(name)

    return load


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_tokenizers_load_before_the_socket_accepts(tmp_path: Path, fake: FakeOpenAI) -> None:
    write_backend(tmp_path, "main", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        models:
          gpt-4o: {{limits: {{max_input_tokens: 1000}}}}
          gpt-4: {{limits: {{max_input_tokens: 1000}}}}
        """)
    loads: list[str] = []
    gate = threading.Event()
    settings = Settings(config_dir=tmp_path, config_dir_required=True, encodings=_loader(loads, gate),
                        usage_store="none", environ={})
    server = ProxyServer(settings)
    server._thread.start()  # not start(): that waits for the warm-up
    try:
        deadline = time.monotonic() + 10
        while not loads:
            assert time.monotonic() < deadline, "the warm-up never loaded a tokenizer"
            time.sleep(0.01)
        assert _refused(server.port), "the socket accepted while the tokenizers were still loading"
        gate.set()
        while not server._server.started:
            assert time.monotonic() < deadline + 10, "the proxy did not start"
            time.sleep(0.01)
        ready = httpx.get(server.url + "/ready")
        warmed = sorted(loads)
        for model in ("main:gpt-4o", "main:gpt-4"):
            answer = httpx.post(server.url + "/v1/chat/completions",
                                json={"model": model, "messages": [{"role": "user", "content": "hello " * 50}]})
            assert answer.status_code == 200
    finally:
        server.stop()
    assert warmed == ["cl100k_base", "o200k_base"]  # gpt-4 counts with cl100k, gpt-4o with o200k
    assert sorted(loads) == warmed, "a request loaded a tokenizer the warm-up had not"
    assert ready.status_code == 200
    assert ready.json()["checks"]["tokenizers"] == "ok: cl100k_base, o200k_base"


def _dead_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there: connections are refused


def test_readiness_fails_when_a_store_it_must_have_is_down_and_liveness_does_not(tmp_path: Path) -> None:
    (tmp_path / "proxy.yaml").write_text(f"limits:\n  store: {_dead_redis()}\n  on_store_error: deny\n")
    with serve_proxy(tmp_path) as proxy:
        ready = httpx.get(proxy.url + "/health/ready")
        live = [httpx.get(proxy.url + path) for path in ("/health", "/health/live")]
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not ready"
    assert body["checks"]["state_store"].startswith("redis://127.0.0.1:")
    assert "unreachable" in body["checks"]["state_store"]
    assert [r.status_code for r in live] == [200, 200]


def test_readiness_reports_a_store_it_can_do_without(tmp_path: Path) -> None:
    """With on_store_error: allow, requests go on without Redis: ready, and the body says what is down."""
    (tmp_path / "proxy.yaml").write_text(f"limits:\n  store: {_dead_redis()}\n")
    with serve_proxy(tmp_path) as proxy:
        ready = httpx.get(proxy.url + "/ready")
    assert ready.status_code == 200
    assert "unreachable" in ready.json()["checks"]["state_store"]


def _streamer(url: str, lines: list[str], started: threading.Event) -> threading.Thread:
    def run() -> None:
        body = {"model": SLOW, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(timeout=30) as client, client.stream("POST", url + "/v1/chat/completions",
                                                               json=body) as response:
            lines.append(str(response.status_code))
            for line in response.iter_lines():
                if line:
                    lines.append(line)
                    started.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _config(tmp_path: Path, fake: FakeOpenAI, extra: str = "") -> Path:
    write_backend(tmp_path, "main", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        passthrough_models: true
        models:
          gpt-4o: {{limits: {{requests_per_minute: 3}}}}
        """)
    (tmp_path / "proxy.yaml").write_text(
        f"server:\n  drain_delay: 2\n  drain_timeout: 20\n  pid_file: {tmp_path / 'lip.pid'}\n"
        f"usage:\n  store: sqlite:///{tmp_path / 'usage.db'}\n{extra}")
    return tmp_path


def _ask(client: httpx.Client, url: str, model: str = "main:gpt-4o") -> httpx.Response:
    return client.post(url + "/v1/chat/completions", json={"model": model, "messages": [{"role": "user",
                                                                                          "content": "hi"}]})


def test_sigterm_drains_readiness_first_then_keep_alives_then_streams_then_usage(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    config = _config(tmp_path, fake)
    lines: list[str] = []
    started = threading.Event()
    with proxy_and_process(config) as (url, process), httpx.Client(timeout=10) as keep_alive:
        before = _ask(keep_alive, url)
        stream = _streamer(url, lines, started)
        assert started.wait(20), "the stream did not start"
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while (ready := httpx.get(url + "/ready")).status_code == 200:
            assert time.monotonic() < deadline, "readiness never failed after SIGTERM"
        live = httpx.get(url + "/health")
        during = _ask(keep_alive, url, "main:other")  # the same connection, reused
        stream.join(30)
        assert process.wait(timeout=30) == 0
    assert before.status_code == 200 and "close" not in before.headers.get("connection", "")
    assert ready.status_code == 503 and ready.json()["checks"]["phase"] == "draining"
    assert live.status_code == 200
    assert during.status_code == 200 and during.headers["connection"] == "close"
    assert lines[0] == "200" and lines[-1] == "data: [DONE]", "the stream under way was cut"
    assert sum(1 for line in lines if line.startswith("data: {")) >= 8
    with sqlite3.connect(tmp_path / "usage.db") as db:
        rows = db.execute("SELECT model, status FROM usage_records ORDER BY at").fetchall()
    assert sorted(rows) == sorted([("gpt-4o", 200), ("fault:chunk_delay=0.5,chunks=8", 200), ("other", 200)])


def _reload(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lip", "reload", "--config-dir", str(config)],
                          check=False, capture_output=True, text=True, timeout=30)


def _wait(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_reload_applies_a_valid_config_keeps_the_old_on_an_invalid_one_and_streams_finish(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    config = _config(tmp_path, fake)
    lines: list[str] = []
    started = threading.Event()
    with proxy_and_process(config, "--log-level", "info") as (url, process), httpx.Client(timeout=10) as client:
        admitted = [_ask(client, url).status_code for _ in range(2)]  # 2 of the 3 a minute
        stream = _streamer(url, lines, started)
        assert started.wait(20), "the stream did not start"
        write_backend(config, "second", "backend_type: mock\nmodels:\n  second-model: {}\n")
        valid = _reload(config)
        _wait(lambda: "second:second-model" in client.get(url + "/v1/models").text, "the reload never applied")
        after = [_ask(client, url).status_code for _ in range(2)]  # the bucket kept its level: 1 left
        (config / "proxy.yaml").write_text((config / "proxy.yaml").read_text() + "routing:\n  max_atempts: 3\n")
        refused = _reload(config)
        process.send_signal(signal.SIGHUP)  # the server is asked anyway, and must keep what it has
        _wait(lambda: httpx.get(url + "/ready").json()["checks"]["last_reload"]["status"] == "failed",
              "the invalid reload was never reported")
        ready = httpx.get(url + "/ready").json()
        still = client.post(url + "/v1/chat/completions",
                            json={"model": "second:second-model", "messages": [{"role": "user", "content": "hi"}]})
        stream.join(30)
        process.send_signal(signal.SIGINT)
        _, log = process.communicate(timeout=30)
    assert admitted == [200, 200] and valid.returncode == 0, valid.stderr
    assert after == [200, 429]
    assert refused.returncode == 1 and "max_atempts" in refused.stderr and "max_attempts" in refused.stderr
    assert ready["checks"]["last_reload"]["errors"] == [
        f"{config / 'proxy.yaml'}: routing.max_atempts: unknown key (did you mean 'max_attempts'?)"]
    assert still.status_code == 200 and still.headers["x-lip-backend"] == "second"
    assert lines[0] == "200" and lines[-1] == "data: [DONE]", "the stream under way was cut by a reload"
    assert "reloaded the configuration" in log
    assert "still serving the configuration loaded before" in log


def test_lip_reload_without_a_running_server_says_so(tmp_path: Path) -> None:
    (tmp_path / "proxy.yaml").write_text(f"server:\n  pid_file: {tmp_path / 'absent.pid'}\n")
    result = _reload(tmp_path)
    assert result.returncode == 1
    assert f"cannot signal the server through {tmp_path / 'absent.pid'}" in result.stderr



def test_the_shared_state_store_can_come_from_the_command_line(tmp_path: Path) -> None:
    """LIP_LIMITS_STORE / --limits-store (a container's environment) override proxy.yaml; a bad one is refused."""
    with proxy_and_process(tmp_path, "--limits-store", _dead_redis()) as (url, _):
        state = httpx.get(url + "/ready").json()["checks"]["state_store"]
    refused = subprocess.run([sys.executable, "-m", "lip", "check", "--config-dir", str(tmp_path), "--limits-store",
                              "redis:/nope"], check=False, capture_output=True, text=True, timeout=30)
    assert state.startswith("redis://127.0.0.1:") and "unreachable" in state
    assert refused.returncode == 1 and "--limits-store / LIP_LIMITS_STORE: expected memory" in refused.stderr


def test_sighup_to_the_workers_supervisor_reloads_every_worker(tmp_path: Path, fake: FakeOpenAI) -> None:
    from integration.test_shared_limits import _wait_for_workers  # noqa: PLC0415

    config = _config(tmp_path, fake)
    with proxy_and_process(config, "--workers", "2") as (url, process):
        _wait_for_workers(url, 2)
        write_backend(config, "second", "backend_type: mock\nmodels:\n  second-model: {}\n")
        assert _reload(config).returncode == 0  # the pid file names the supervisor, which passes SIGHUP on

        def everywhere() -> bool:  # a new connection each time: the kernel spreads them over the workers
            return all("second:second-model" in httpx.get(url + "/v1/models", timeout=5).text for _ in range(24))

        _wait(everywhere, "a worker did not reload")
        assert process.poll() is None
