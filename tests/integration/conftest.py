"""Integration harness: the real proxy app served by uvicorn on a real 127.0.0.1 socket, in a thread."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from fakes.openai_upstream import FakeOpenAI
from lip.app import Settings, build
from lip.serving import uvicorn_options
from shared_data import shared_encoding


class ProxyServer:
    """One proxy app on an ephemeral port; ``url`` is its base ("http://127.0.0.1:N")."""

    def __init__(self, settings: Settings) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        app = build(settings)
        self.runtime = app.runtime
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                                **uvicorn_options(app.runtime.config.proxy.server))
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("proxy did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@contextmanager
def serve_proxy(
    config_dir: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    default_backend: str | None = None,
    settings: Settings | None = None,
) -> Iterator[ProxyServer]:
    base = settings or Settings(config_dir=config_dir, config_dir_required=config_dir is not None)
    settings = dataclasses.replace(
        base,
        default_backend=default_backend,
        environ=dict(environ or {}),
        encodings=shared_encoding,
        usage_store=base.usage_store or f"sqlite:///{tempfile.mkdtemp(prefix='lip-usage-')}/usage.db",
    )
    server = ProxyServer(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def write_backend(config_dir: Path, name: str, text: str) -> Path:
    path = config_dir / "backends" / name / "backend.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        yield upstream
