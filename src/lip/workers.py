"""``lip serve --workers N``: N processes, each with a listening socket of its own on the same port.

uvicorn's workers share one listening socket, and the process that wakes first accepts every
connection waiting. A client that opens its keep-alive connections together (an SDK's pool, the
benchmark's 16) had all of them on one worker while the others idled: measured 6.24 s of CPU on one
worker and 0.01 s on the other under 16 connections. With ``SO_REUSEPORT`` each worker has its own
socket and the kernel spreads new connections over them.

The parent only supervises: it checks the port is free, starts the workers, restarts one that dies
(one that dies within ``STARTUP_GRACE`` seconds of starting stops everything: a broken set-up would
only die again), and on SIGINT or SIGTERM asks each worker once to stop, which lets it finish its
requests and flush its usage records (SIGTERM drains each worker: ``lip.signals``; SIGINT drains
without the delay). SIGHUP is passed on to every worker, which reloads its configuration. Workers
run in a session of their own, so a Ctrl-C reaches the
parent alone and no worker sees a second signal (which would make uvicorn skip the flush); they get
SIGTERM if the parent dies. Linux only (``available()``); elsewhere the CLI uses uvicorn's workers.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import multiprocessing
import os
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn

from lip.app import from_environment
from lip.config.schema import ServerConfig
from lip.observability import logsafe
from lip.serving import uvicorn_options
from lip.signals import Server

log = logging.getLogger("lip.workers")

STARTUP_GRACE = 10.0  # a worker that dies sooner than this after starting did not start
FLUSH_TIME = 15.0  # on top of the drain: how long a stopping worker may take to flush, before it is killed
PR_SET_PDEATHSIG = 1


def available() -> bool:
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _worker(host: str, port: int, level: str, server: ServerConfig) -> None:
    """One worker: the app from the LIP_* environment, served on its own socket."""
    os.setsid()  # a Ctrl-C in the terminal goes to the parent, which passes on exactly one SIGTERM
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    logsafe.configure(level)
    sock = _socket(host, port, reuse_port=True)
    app = from_environment()
    config = uvicorn.Config(app, log_level=level, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=math.ceil(server.drain_timeout), **uvicorn_options(server))
    Server(config, app, drain_delay=server.drain_delay).run(sockets=[sock])


def run(host: str, port: int, workers: int, level: str, server: ServerConfig | None = None) -> int:
    """Serve with ``workers`` processes until SIGINT/SIGTERM; the exit status."""
    try:
        # Without SO_REUSEPORT, so that a port some other server (even another lip) listens on is
        # refused here instead of silently sharing its connections.
        _socket(host, port, reuse_port=False).close()
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc)
        return 1
    context = multiprocessing.get_context("spawn")
    server = server or ServerConfig()
    stopping = False
    stop_signal = signal.SIGTERM
    processes: list[tuple[BaseProcess, float]] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping, stop_signal
        stopping, stop_signal = True, signal.Signals(signum)

    def reload(signum: int, frame: FrameType | None) -> None:
        for process, _ in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGHUP)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, reload)

    def start(index: int) -> tuple[BaseProcess, float]:
        process = context.Process(target=_worker, args=(host, port, level, server),
                                  name=f"lip-worker-{index}")
        process.start()
        return process, time.monotonic()

    status = 0
    processes.extend(start(index) for index in range(workers))
    log.info("%d workers on http://%s:%d (one socket each)", workers, host, port)
    try:
        while not stopping:
            time.sleep(0.2)
            for index, (process, started) in enumerate(processes):
                if process.is_alive() or stopping:
                    continue
                if time.monotonic() - started < STARTUP_GRACE:
                    log.error("worker %d exited (status %s) while starting; stopping", index, process.exitcode)
                    stopping, status = True, 1
                    break
                log.error("worker %d (pid %s) exited (status %s); starting another", index, process.pid,
                          process.exitcode)
                processes[index] = start(index)
    finally:
        for process, _ in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, stop_signal)  # once: the worker drains, then flushes its usage records
        stop_timeout = server.drain_delay + server.drain_timeout + FLUSH_TIME
        deadline = time.monotonic() + stop_timeout
        for process, _ in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker pid %s did not stop within %.0f s; killing it", process.pid, stop_timeout)
                process.kill()
                process.join(5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
