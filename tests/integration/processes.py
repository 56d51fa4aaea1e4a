"""A proxy started as an operator starts it: a command in a process of its own, on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment without LIP_* and *_API_KEY variables, with a per-test XDG_DATA_HOME and no bytecode."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LIP_") and not k.endswith("_API_KEY")}
    return {**base, "XDG_DATA_HOME": str(tmp / "xdg-data"), "PYTHONDONTWRITEBYTECODE": "1", **extra}


@dataclass
class Running:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_answering(url: str, process: subprocess.Popen[Any], output: Callable[[], str], never: str) -> None:
    """Until ``GET url`` answers 200; fails with the process's ``output`` if it exits, ``never`` after 30 s."""
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, output()
        assert time.monotonic() < deadline, never
        time.sleep(0.05)


@contextmanager
def running(argv: Sequence[str], *, port: int, env: Mapping[str, str], cwd: Path, log: Path) -> Iterator[Running]:
    """``argv`` (which must listen on ``port``) until it answers ``GET /health``; terminated at the end."""
    with log.open("wb") as sink:
        process = subprocess.Popen(list(argv), stdout=sink, stderr=subprocess.STDOUT, env=dict(env), cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answering(url + "/health", process, lambda: log.read_text(errors="replace"), "the proxy did not start")
        yield Running(url, process, log)
    finally:
        process.terminate()
        process.wait(timeout=15)
