"""What the fake upstreams share: an aiohttp server in its own thread and loop, and its misbehaviours.

A fake is a subclass of ``FakeServer[R, B]`` (``R`` what it records per request, ``B`` its behaviour
dataclass) that passes the two factories to ``__init__`` and implements ``_answer`` (the protocol). The
base serves every path on ``127.0.0.1:<ephemeral>``, records each request (thread-safely) in
``requests`` before answering it, and offers:

- ``enqueue(*behaviours)`` / ``default`` / ``reset()``; ``_choose(model, body)`` picks a behaviour: the
  ``responder`` first (a script of a conversation: request body -> behaviour, or None to go on), then the FIFO
  queue, then a ``fault:...`` cue in ``model`` (parsed by the subclass's ``_parse_cue``, counted
  per model string for ``times``), then ``default``;
- ``_before_headers`` (reset the connection, stay silent, delay the first byte) and ``_write_stream``
  (write events with a delay between them; cut, stall, corrupt or end with an error after N events);
- ``_hold`` (wait until the server stops or the client leaves) and ``_abort`` (drop the connection);
  ``client_gone`` counts the connections the client closed while the fake held or wrote them.

``stop()`` returns promptly even while connections are held: held requests wake when it is called.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, Protocol, Self, TypeVar

from aiohttp import web

__all__ = ["PREFILL_REFUSAL", "CueError", "FakeServer", "RecordedRequest", "StreamFaults", "continue_prefill",
           "cue_changes", "split_even"]


class Recorded(Protocol):
    """What a fake records of a request: at least its method and path."""

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...


R = TypeVar("R", bound=Recorded)
B = TypeVar("B")
_NONE: Mapping[str, str] = MappingProxyType({})


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float
    peer: Any = None  # the client's (host, port): the same for requests on one kept-alive connection

    @classmethod
    def of(cls, request: web.Request, headers: dict[str, str], body: Any) -> RecordedRequest:
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        return cls(request.method, request.path, headers, body, time.monotonic(), peer)


class CueError(ValueError):
    pass


def cue_changes(model: str, headers: Mapping[str, str], *, flags: Mapping[str, str] = _NONE,
                ints: Mapping[str, str] = _NONE, floats: Mapping[str, str] = _NONE,
                strs: Mapping[str, str] = _NONE) -> tuple[dict[str, Any], int | None]:
    """Parse ``fault:item,item,...`` into (field changes, times); raises CueError on bad input.

    Each mapping takes a cue key to the behaviour field it sets: ``flags`` (``key`` alone sets True),
    ``ints``, ``floats`` and ``strs`` (``key=value``). ``retry_after=V`` adds a Retry-After header to a
    copy of ``headers`` (the changes always carry ``headers``); ``times=N`` is returned apart.
    """
    changes: dict[str, Any] = {}
    new_headers = dict(headers)
    times: int | None = None
    try:
        for item in filter(None, (p.strip() for p in model.removeprefix("fault:").split(","))):
            key, sep, value = item.partition("=")
            if not sep and key in flags:
                changes[flags[key]] = True
            elif sep and key in ints:
                changes[ints[key]] = int(value)
            elif sep and key in floats:
                changes[floats[key]] = float(value)
            elif sep and key in strs:
                changes[strs[key]] = value
            elif sep and key == "retry_after":
                new_headers["Retry-After"] = value
            elif sep and key == "times":
                times = int(value)
            else:
                raise CueError(f"unknown fault cue item {item!r}")
    except ValueError as exc:
        raise CueError(f"bad fault cue {model!r}: {exc}") from exc
    changes["headers"] = new_headers
    return changes, times


PREFILL_REFUSAL = ("This model does not support assistant message prefill. "
                   "The conversation must end with a user message.")


def continue_prefill(mode: str, prefix: str | None, reply: str) -> str | None:
    """What a fake answers to a request ending in an assistant message ``prefix`` (a prefill), as ``mode``
    says: ``continue`` the reply from there (the rest of it, when it begins with ``prefix``), ``ignore``
    the prefill and answer the whole reply anew (as OpenAI's API does), or ``reject`` it (None: a 400)."""
    if prefix is None or mode == "ignore":
        return reply
    if mode == "reject":
        return None
    return reply[len(prefix):] if reply.startswith(prefix) else reply


def split_even(text: str, n: int) -> list[str]:
    """Split into n pieces as evenly as possible (fewer if text is shorter); ''.join(...) == text."""
    n = max(1, min(n, len(text)))
    size = len(text)
    return [text[i * size // n:(i + 1) * size // n] for i in range(n)]


@dataclass
class StreamFaults:
    """How ``FakeServer._write_stream`` misbehaves. Each ``*_after`` = N acts after N events were sent
    (with ``clamp``, an N beyond the last event acts after it, before ``tail``)."""

    chunk_delay: float = 0.0  # seconds between events (and before ``tail`` with ``tail_delay``)
    first_delay: float = 0.0  # seconds between the response head and the first event
    malformed_after: int | None = None  # writes ``malformed``, then goes on
    malformed: bytes = b""
    error_after: int | None = None  # writes ``error`` and ends the stream cleanly
    error: bytes = b""
    cut_after: int | None = None  # drops the connection
    stall_after: int | None = None  # holds the connection until the client leaves, then drops it
    tail: bytes = b""  # written after the last event (an end marker), if any
    tail_delay: bool = False
    clamp: bool = True


class FakeServer(Generic[R, B]):
    """An aiohttp app on 127.0.0.1:0 in a background thread with its own loop (see the module doc)."""

    thread_name = "fake-upstream"
    api_root = "/v1"  # base_url is http://127.0.0.1:<port><api_root>
    label = "fake upstream"  # named in the start error

    def __init__(self, behaviour: Callable[[], B],
                 record: Callable[[web.Request, dict[str, str], Any], R]) -> None:
        """``behaviour()`` makes a default behaviour; ``record(request, headers, body)`` what ``requests``
        keeps of a request (``headers`` lower-cased, ``body`` the parsed JSON or None)."""
        self.client_gone = 0  # connections the client closed while held or written to
        self.default: B = behaviour()
        # scripts a conversation: the request's parsed body -> its behaviour (None: queue, cue, default)
        self.responder: Callable[[Any], B | None] | None = None
        self.requests: list[R] = []
        self.port: int = 0
        self.base_url: str = ""
        self._new_behaviour = behaviour
        self._record = record
        self._lock = threading.Lock()
        self._queue: list[B] = []
        self._cue_counts: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    # ---- public API -------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._ready.clear()
        self._startup_error = None
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._startup_error is not None:
            raise RuntimeError(f"{self.label} failed to start") from self._startup_error
        self.base_url = f"http://127.0.0.1:{self.port}{self.api_root}"

    def stop(self) -> None:
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stopping.set)
        if thread is not None:
            thread.join(5)
        self._thread = None

    def enqueue(self, *behaviours: B) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    def reset(self) -> None:
        """Forget the recorded requests, the queue and the cue counts; a fresh ``default``."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self._cue_counts.clear()
            self.default = self._new_behaviour()
            self.responder = None

    # ---- for subclasses ---------------------------------------------------------------------
    async def _answer(self, request: web.Request, recorded: R) -> web.StreamResponse:
        raise NotImplementedError

    def _parse_cue(self, model: str, base: B) -> tuple[B, int | None]:
        """(behaviour, times) for a ``fault:...`` model; raises CueError on bad input."""
        raise CueError(f"{self.label} takes no fault cues")

    def _requests_where(self, keep: Callable[[R], bool]) -> list[R]:
        with self._lock:
            return [r for r in self.requests if keep(r)]

    def _posts_to(self, path: str) -> list[R]:
        return self._requests_where(lambda r: r.method == "POST" and r.path == path)

    def _choose(self, model: object = None, body: Any = None) -> B:
        """The ``responder``'s behaviour for ``body``, else the queue's next behaviour, else the fault cue in
        ``model``, else ``default``."""
        responder = self.responder
        if responder is not None:
            scripted = responder(body)
            if scripted is not None:
                return scripted
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
            default = self.default
            if not isinstance(model, str) or not model.startswith("fault:"):
                return default
            beh, times = self._parse_cue(model, default)
            count = self._cue_counts[model] = self._cue_counts.get(model, 0) + 1
            return beh if times is None or count <= times else default

    async def _before_headers(self, request: web.Request, *, reset: bool = False, silence: bool = False,
                              delay: float = 0.0) -> web.StreamResponse | None:
        """Drop the connection (``reset``), or hold it until the client leaves (``silence``) and return
        the dead response; else wait ``delay`` seconds and return None."""
        if reset:
            self._abort(request)
            return web.Response()
        if silence:
            await self._hold(request)
            self._abort(request)
            return web.Response()
        if delay > 0:
            await asyncio.sleep(delay)
        return None

    async def _write_stream(self, request: web.Request, resp: web.StreamResponse, events: Sequence[bytes],
                            faults: StreamFaults) -> web.StreamResponse:
        """Prepare ``resp`` and write ``events`` (then ``faults.tail``), misbehaving as ``faults`` says."""
        try:
            await resp.prepare(request)
            n = len(events)
            bad, error, cut, stall = (None if v is None else min(v, n) if faults.clamp else v for v in (
                faults.malformed_after, faults.error_after, faults.cut_after, faults.stall_after))
            for sent in range(n + 1):
                if bad == sent:
                    await resp.write(faults.malformed)
                if error == sent:
                    await resp.write(faults.error)
                    await resp.write_eof()
                    return resp
                if cut == sent:
                    self._abort(request)
                    return resp
                if stall == sent:
                    await self._hold(request)
                    self._abort(request)
                    return resp
                if sent == n:
                    break
                if sent == 0 and faults.first_delay > 0:
                    await asyncio.sleep(faults.first_delay)
                if sent > 0 and faults.chunk_delay > 0:
                    await asyncio.sleep(faults.chunk_delay)
                await resp.write(events[sent])
            if faults.tail:
                if faults.tail_delay and faults.chunk_delay > 0:
                    await asyncio.sleep(faults.chunk_delay)
                await resp.write(faults.tail)
            await resp.write_eof()
        except ConnectionError:  # the client went away mid-stream
            self.client_gone += 1
            self._abort(request)
        return resp

    async def _raw(self, request: web.Request, raw: bytes, *, stream: bool) -> web.StreamResponse:
        """200 with exactly ``raw`` (a body of the wrong shape, one too large, an event never ended), in
        64 KiB writes with no Content-Length."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream" if stream else "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError):
            for start in range(0, len(raw), 65536):
                await resp.write(raw[start:start + 65536])
            await resp.write_eof()
        return resp

    async def _hold(self, request: web.Request) -> None:
        """Wait until the server stops or the client disconnects."""
        stopping = self._stopping
        while stopping is not None and not stopping.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                self.client_gone += 1  # the client (the proxy) closed the connection
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 0.05)

    @staticmethod
    def _abort(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()

    # ---- server lifecycle -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - surfaced through start()
            self._startup_error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = int(runner.addresses[0][1])
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        if raw:
            with contextlib.suppress(ValueError):
                body = json.loads(raw)
        recorded = self._record(request, {k.lower(): v for k, v in request.headers.items()}, body)
        with self._lock:
            self.requests.append(recorded)
        return await self._answer(request, recorded)
