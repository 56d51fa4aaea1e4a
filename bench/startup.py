"""Cold start: seconds from starting ``python -m lip serve`` to its first 200 from ``/ready``, and the
latency of the first limited request after that (it should be like any later one: nothing is lazy).

Run: ``.venv/bin/python bench/startup.py [--runs 3]``. Each run starts a fresh process on an
ephemeral 127.0.0.1 port with a configuration whose model has limits (the mock backend, so no
upstream is needed), and stops it with SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

BACKEND = """\
backend_type: mock
models:
  limited: {limits: {max_input_tokens: 100000, requests_per_minute: 100000}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def post_ms(url: str) -> float:
    body = json.dumps({"model": "bench:limited", "messages": [{"role": "user", "content": "hello " * 200}]})
    request = urllib.request.Request(url, body.encode(), {"content-type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


def one_run(config: Path, ready_path: str) -> tuple[float, float, float]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIP_")}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "lip", "serve", "--config-dir", str(config), "--port",
                                str(port), "--log-level", "warning", "--usage-store", "none"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = started + 60
        while True:
            try:
                if get(base + ready_path) == 200:
                    break
            except OSError:
                pass
            if time.perf_counter() > deadline or process.poll() is not None:
                raise SystemExit("the proxy did not become ready")
            time.sleep(0.01)
        ready = time.perf_counter() - started
        first = post_ms(base + "/v1/chat/completions")
        later = statistics.median(post_ms(base + "/v1/chat/completions") for _ in range(20))
        return ready, first, later
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ready-path", default="/ready", help="/health for a proxy older than /ready")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lip-startup-") as tmp:
        config = Path(tmp)
        (config / "backends" / "bench").mkdir(parents=True)
        (config / "backends" / "bench" / "backend.yaml").write_text(BACKEND)
        (config / "proxy.yaml").write_text("default_backend: bench\n")
        runs = [one_run(config, args.ready_path) for _ in range(args.runs)]
    print(f"| run | exec → {args.ready_path} 200 (s) | first limited request (ms) | median of the next 20 (ms) |")
    print("| --- | --- | --- | --- |")
    for index, (ready, first, later) in enumerate(runs, 1):
        print(f"| {index} | {ready:.2f} | {first:.1f} | {later:.1f} |")


if __name__ == "__main__":
    main()
