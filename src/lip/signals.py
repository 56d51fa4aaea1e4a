"""uvicorn serving one proxy app with the operator's signals: SIGTERM drains, SIGHUP reloads.

SIGTERM (a balancer's or an orchestrator's stop): readiness fails at once and every response
says ``connection: close``, so keep-alive connections end after their current request; the
socket keeps accepting for ``drain_delay`` seconds (long enough for the balancer's health check
to notice), then closes; requests and streams under way get ``drain_timeout`` seconds to finish;
then the usage records are flushed and the process exits 0. SIGINT (Ctrl-C) drains the same way
without the delay; a second signal stops at once.

SIGHUP reloads the configuration (``ProxyApp.reload``): validated whole, swapped atomically, the
old one kept (and every error logged) when the new one is invalid.

The pid file (``server.pid_file``, default ``<tmp>/lip-<port>.pid``) names the process that takes
these signals, so ``lip reload`` can find it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Generator
from pathlib import Path
from types import FrameType

import uvicorn

from lip.app import ProxyApp

log = logging.getLogger("lip.serving")


class Server(uvicorn.Server):
    """uvicorn's server, with drain on SIGTERM/SIGINT and reload on SIGHUP."""

    def __init__(self, config: uvicorn.Config, app: ProxyApp, *, drain_delay: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_delay = drain_delay
        self._stop_at: float | None = None
        self._reload_wanted = False
        self._tasks: set[asyncio.Task[bool]] = set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGHUP:
            self._reload_wanted = True  # picked up on the next tick, on the event loop
            return
        if self._stop_at is not None:  # a second signal: stop now
            self.force_exit = self.should_exit = True
            return
        self.drain(0.0 if sig == signal.SIGINT else self.drain_delay)

    def drain(self, delay: float) -> None:
        """Fail readiness and close keep-alives now; stop accepting after ``delay`` seconds."""
        self.app.drain()
        self._stop_at = time.monotonic() + delay
        log.info("draining: readiness fails; not accepting connections in %.1f s; requests under way get "
                 "%.0f s to finish", delay, self.config.timeout_graceful_shutdown or 0)

    async def on_tick(self, counter: int) -> bool:
        if self._reload_wanted:
            self._reload_wanted = False
            task = asyncio.get_running_loop().create_task(self.app.reload())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._stop_at is not None and time.monotonic() >= self._stop_at:
            self.should_exit = True
        return await super().on_tick(counter)


def default_pid_file(port: int) -> Path:
    return Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"lip-{port}.pid"


@contextlib.contextmanager
def pid_file(path: Path) -> Generator[None, None, None]:
    """Write this process's id to ``path`` while serving; remove it after (if it is still ours)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{os.getpid()}\n")
    except OSError as exc:
        log.warning("pid file %s not written (%s): `lip reload` will not find this server", path, exc)
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if path.read_text().strip() == str(os.getpid()):
                path.unlink()


def signal_server(path: Path, sig: int = signal.SIGHUP) -> int:
    """Send ``sig`` to the server named by the pid file at ``path``; its pid. Raises OSError/ValueError."""
    text = path.read_text().strip()
    if not text.isdigit():
        raise ValueError(f"{path} does not hold a process id")
    pid = int(text)
    os.kill(pid, sig)
    return pid
