"""A fake OpenAI-compatible upstream that speaks the Chat Completions wire format and misbehaves on cue.

Usage::

    with FakeOpenAI() as fake:                 # aiohttp server on 127.0.0.1:<ephemeral>, own thread + loop
        fake.enqueue(Behaviour(status=429, headers={"Retry-After": "2"}))
        ...  # point a client at fake.base_url ("http://127.0.0.1:<port>/v1")
        assert fake.chat_requests()[0].body["model"] == "gpt-4o-mini"

Endpoints: ``POST /v1/chat/completions`` (streaming and not) and ``GET /v1/models``. Every request,
whatever its path, is recorded in ``fake.requests``. Unknown paths get a 404 OpenAI error body.

Choosing a behaviour for a chat request (first match wins):

1. the FIFO queue filled by ``enqueue()`` (each request consumes one entry);
2. a fault cue in the request's ``model`` (see below);
3. ``fake.default``.

Fault cue grammar (the ``model`` field of the request body)::

    cue   := "fault:" item ("," item)*
    item  := flag | key "=" value
    flag  := "silence" | "reset" | "omit_done"
    key   := "status" (int) | "retry_after" (str, sent as the Retry-After header)
           | "code" (str) | "type" (str) | "message" (str, no commas)
           | "times" (int: only the first N requests with this exact model string get the fault,
                      later ones get ``default``; omitted = forever)
           | "first_byte_delay" | "chunk_delay" (float seconds)
           | "chunks" | "cut_after" | "stall_after" | "malformed_after" (int)

Examples: ``fault:status=429,retry_after=2,times=1``, ``fault:silence``, ``fault:reset``,
``fault:cut_after=2``, ``fault:stall_after=2``, ``fault:malformed_after=1``, ``fault:omit_done``,
``fault:first_byte_delay=1.5``, ``fault:status=400,code=context_length_exceeded``.
A cue starts from a copy of ``default`` and overrides the named fields. When ``status`` is given
without ``type``/``code``: 429 -> type "requests", code "rate_limit_exceeded"; >= 500 -> type
"server_error". ``times`` is counted per distinct model string, only over requests that reached
the cue (queued behaviours do not count). A malformed cue gets a 400 with code "fake_bad_fault_cue".

Streaming "data events" are the JSON chunks: role chunk, content (or tool-call) chunks, finish chunk,
and the usage chunk. ``cut_after``/``stall_after``/``malformed_after`` = N act after N of them have
been sent; N >= the number of JSON chunks acts just before ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["Behaviour", "FakeOpenAI", "RecordedRequest", "ToolCallSpec"]

CHAT_PATH = "/v1/chat/completions"
MODELS = ("gpt-4o-mini", "gpt-4o", "o3-mini")


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class ToolCallSpec:
    name: str
    arguments: str
    id: str = "call_fake_1"
    pieces: int = 3


@dataclass
class Behaviour:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error_message: str = "fake upstream error"
    error_code: str | None = None
    error_type: str = "invalid_request_error"
    reply: str = "Hello from the fake upstream."
    chunks: int = 5
    tool_call: ToolCallSpec | None = None
    usage: bool = True
    first_byte_delay: float = 0.0
    chunk_delay: float = 0.0
    cut_after_chunks: int | None = None
    stall_after_chunks: int | None = None
    malformed_after_chunks: int | None = None
    omit_done: bool = False
    reset_before_headers: bool = False
    silence: bool = False


class CueError(ValueError):
    pass


_INT_KEYS = {"status": "status", "chunks": "chunks", "cut_after": "cut_after_chunks",
             "stall_after": "stall_after_chunks", "malformed_after": "malformed_after_chunks"}
_FLOAT_KEYS = {"first_byte_delay": "first_byte_delay", "chunk_delay": "chunk_delay"}
_STR_KEYS = {"code": "error_code", "type": "error_type", "message": "error_message"}
_FLAGS = {"silence": "silence", "reset": "reset_before_headers", "omit_done": "omit_done"}


def parse_cue(model: str, base: Behaviour) -> tuple[Behaviour, int | None]:
    """Parse ``fault:...`` into (behaviour, times). Raises CueError on bad input."""
    changes: dict[str, Any] = {}
    headers = dict(base.headers)
    times: int | None = None
    try:
        for item in filter(None, (p.strip() for p in model.removeprefix("fault:").split(","))):
            key, sep, value = item.partition("=")
            if not sep and key in _FLAGS:
                changes[_FLAGS[key]] = True
            elif sep and key in _INT_KEYS:
                changes[_INT_KEYS[key]] = int(value)
            elif sep and key in _FLOAT_KEYS:
                changes[_FLOAT_KEYS[key]] = float(value)
            elif sep and key in _STR_KEYS:
                changes[_STR_KEYS[key]] = value
            elif sep and key == "retry_after":
                headers["Retry-After"] = value
            elif sep and key == "times":
                times = int(value)
            else:
                raise CueError(f"unknown fault cue item {item!r}")
    except ValueError as exc:
        raise CueError(f"bad fault cue {model!r}: {exc}") from exc
    status = changes.get("status", 0)
    if status == 429:
        changes.setdefault("error_type", "requests")
        changes.setdefault("error_code", "rate_limit_exceeded")
    elif status >= 500:
        changes.setdefault("error_type", "server_error")
    return dataclasses.replace(base, headers=headers, **changes), times


def _words(text: str) -> int:
    return len(text.split())


def _content_words(content: Any) -> int:
    if isinstance(content, str):
        return _words(content)
    if isinstance(content, list):
        return sum(_words(p.get("text", "")) for p in content if isinstance(p, dict))
    return 0


def prompt_tokens(body: Any) -> int:
    """Words in all message contents + 4 per message."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return 0
    return sum(4 + _content_words(m.get("content")) for m in messages if isinstance(m, dict))


def split_even(text: str, n: int) -> list[str]:
    """Split into n pieces as evenly as possible (fewer if text is shorter); ''.join(...) == text."""
    n = max(1, min(n, len(text)))
    size = len(text)
    return [text[i * size // n:(i + 1) * size // n] for i in range(n)]


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class FakeOpenAI:
    def __init__(self) -> None:
        self.client_gone = 0  # connections the client closed while a stream was held or written
        self.default: Behaviour = Behaviour()
        self.requests: list[RecordedRequest] = []
        self.port: int = 0
        self.base_url: str = ""
        self._lock = threading.Lock()
        self._queue: list[Behaviour] = []
        self._cue_counts: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    # ---- public API -------------------------------------------------------------------------
    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._ready.clear()
        self._startup_error = None
        self._thread = threading.Thread(target=self._run, name="fake-openai-upstream", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._startup_error is not None:
            raise RuntimeError("fake upstream failed to start") from self._startup_error
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stopping.set)
        if thread is not None:
            thread.join(5)
        self._thread = None

    def enqueue(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path == CHAT_PATH]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self._cue_counts.clear()
            self.default = Behaviour()

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

    # ---- request handling -------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        with self._lock:
            self.requests.append(RecordedRequest(
                method=request.method, path=request.path,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body, at=time.monotonic()))
        if request.path == "/v1/models" and request.method == "GET":
            return web.json_response({"object": "list", "data": [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in MODELS]})
        if request.path != CHAT_PATH or request.method != "POST":
            return web.json_response(error_body(f"Unknown request URL: {request.method} {request.path}",
                                                "invalid_request_error", "unknown_url"), status=404)
        if not isinstance(body, dict):
            return web.json_response(error_body("We could not parse the JSON body of your request.",
                                                "invalid_request_error", None), status=400)
        try:
            beh = self._choose(body)
        except CueError as exc:
            return web.json_response(error_body(str(exc), "invalid_request_error", "fake_bad_fault_cue",
                                                "model"), status=400)
        return await self._respond(request, body, beh)

    def _choose(self, body: dict[str, Any]) -> Behaviour:
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
            default = self.default
            model = body.get("model")
            if not isinstance(model, str) or not model.startswith("fault:"):
                return default
            beh, times = parse_cue(model, default)
            count = self._cue_counts[model] = self._cue_counts.get(model, 0) + 1
            return beh if times is None or count <= times else default

    async def _respond(self, request: web.Request, body: dict[str, Any],
                       beh: Behaviour) -> web.StreamResponse:
        if beh.reset_before_headers:
            self._abort(request)
            return web.Response()
        if beh.silence:
            await self._hold(request)
            self._abort(request)
            return web.Response()
        if beh.first_byte_delay > 0:
            await asyncio.sleep(beh.first_byte_delay)
        if beh.status >= 400:
            return web.json_response(error_body(beh.error_message, beh.error_type, beh.error_code),
                                     status=beh.status, headers=beh.headers)
        model = str(body.get("model", "gpt-4o-mini"))
        cid = f"chatcmpl-fake-{next(self._ids)}"
        usage = self._usage(body, beh)
        if body.get("stream") is True:
            opts = body.get("stream_options")
            include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
            events = self._stream_events(beh, cid, model, usage if include_usage else None, include_usage)
            return await self._stream(request, beh, events)
        message: dict[str, Any] = {"role": "assistant", "content": beh.reply, "refusal": None}
        finish = "stop"
        if beh.tool_call is not None:
            tc = beh.tool_call
            message["content"] = None
            message["tool_calls"] = [{"id": tc.id, "type": "function",
                                      "function": {"name": tc.name, "arguments": tc.arguments}}]
            finish = "tool_calls"
        payload: dict[str, Any] = {
            "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        }
        if usage is not None:
            payload["usage"] = usage
        return web.json_response(payload, status=beh.status, headers=beh.headers)

    @staticmethod
    def _usage(body: dict[str, Any], beh: Behaviour) -> dict[str, int] | None:
        if not beh.usage:
            return None
        prompt = prompt_tokens(body)
        text = beh.reply if beh.tool_call is None else f"{beh.tool_call.name} {beh.tool_call.arguments}"
        completion = max(1, _words(text))
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    @staticmethod
    def _stream_events(beh: Behaviour, cid: str, model: str, usage: dict[str, int] | None,
                       include_usage: bool) -> list[bytes]:
        created = int(time.time())

        def chunk(delta: dict[str, Any] | None, finish: str | None = None) -> bytes:
            obj: dict[str, Any] = {
                "id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [] if delta is None else
                [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                obj["usage"] = usage if delta is None else None
            return json.dumps(obj).encode()

        tc = beh.tool_call
        if tc is None:
            events = [chunk({"role": "assistant", "content": ""})]
            events += [chunk({"content": piece}) for piece in split_even(beh.reply, beh.chunks)]
        else:
            fn = {"name": tc.name, "arguments": ""}
            first = {"index": 0, "id": tc.id, "type": "function", "function": fn}
            events = [chunk({"role": "assistant", "content": None, "tool_calls": [first]})]
            events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                       for piece in split_even(tc.arguments, tc.pieces)]
        events.append(chunk({}, "stop" if tc is None else "tool_calls"))
        if usage is not None:
            events.append(chunk(None))
        return events

    async def _stream(self, request: web.Request, beh: Behaviour, events: list[bytes]) -> web.StreamResponse:
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **beh.headers}
        resp = web.StreamResponse(status=beh.status, headers=headers)
        if beh.omit_done:
            resp.force_close()
        try:
            await resp.prepare(request)
            n = len(events)
            cut, stall, bad = (None if v is None else min(v, n) for v in
                               (beh.cut_after_chunks, beh.stall_after_chunks, beh.malformed_after_chunks))
            for sent in range(n + 1):
                if bad == sent:
                    await resp.write(b"data: {not json\n\n")
                if cut == sent:
                    self._abort(request)
                    return resp
                if stall == sent:
                    await self._hold(request)
                    self._abort(request)
                    return resp
                if sent == n:
                    break
                if sent > 0 and beh.chunk_delay > 0:
                    await asyncio.sleep(beh.chunk_delay)
                await resp.write(b"data: " + events[sent] + b"\n\n")
            if not beh.omit_done:
                if beh.chunk_delay > 0:
                    await asyncio.sleep(beh.chunk_delay)
                await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionError:  # the client went away mid-stream
            self.client_gone += 1
            self._abort(request)
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
