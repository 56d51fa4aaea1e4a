"""A deliberately fast fake OpenAI-compatible upstream for benchmarking.

Raw ``asyncio.Protocol`` + ``httptools`` HTTP/1.1 server on uvloop, keep-alive,
listening on 127.0.0.1 only. Responses are pre-rendered bytes, so serving a
request costs a parse plus one ``transport.write``.

* ``POST /v1/chat/completions`` -> canned ``chat.completion`` JSON (with usage), or,
  when the body contains ``"stream": true``, an SSE stream (chunked transfer
  encoding) of ``--chunks`` ``chat.completion.chunk`` events with content, one usage
  chunk (``choices: []``) and ``data: [DONE]``.
* ``GET /v1/models`` -> one model; ``GET /health`` -> ``{"status":"ok"}``.

It stops by itself after ``--lifetime`` seconds, and (with ``--exit-with-parent``)
as soon as the process that started it is gone.

Run: ``python bench/upstream.py --port 8001`` (``--port 0`` picks a free port; the
chosen one is printed as ``listening on http://127.0.0.1:<port>``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import Any, cast

import httptools
import orjson

HOST = "127.0.0.1"
MODEL = "bench-model"
CREATED = 1_700_000_000
REPLY_WORDS = [f"word{i} " for i in range(64)]


def _response(status: str, content_type: bytes, body: bytes, *, keep_alive: bool = True) -> bytes:
    head = (
        b"HTTP/1.1 " + status.encode() + b"\r\n"
        b"Content-Type: " + content_type + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    )
    if not keep_alive:
        head += b"Connection: close\r\n"
    return head + b"\r\n" + body


def build_completion(chunks: int) -> bytes:
    content = "".join(REPLY_WORDS[i % len(REPLY_WORDS)] for i in range(chunks)).rstrip()
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks},
    }
    return orjson.dumps(body)


def build_stream_events(chunks: int) -> list[bytes]:
    """SSE events (``data: ...\\n\\n``), one per list element."""
    events: list[bytes] = []
    for i in range(chunks):
        delta: dict[str, Any] = {"content": REPLY_WORDS[i % len(REPLY_WORDS)]}
        if i == 0:
            delta = {"role": "assistant", **delta}
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": "stop" if i == chunks - 1 else None,
                }
            ],
        }
        events.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    usage_chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks},
    }
    events.append(b"data: " + orjson.dumps(usage_chunk) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def http_chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream; charset=utf-8\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
)
LAST_CHUNK = b"0\r\n\r\n"


class Canned:
    def __init__(self, chunks: int, chunk_delay_s: float) -> None:
        self.chunk_delay_s = chunk_delay_s
        self.completion = _response("200 OK", b"application/json", build_completion(chunks))
        self.events = build_stream_events(chunks)
        self.stream_whole = STREAM_HEAD + b"".join(http_chunk(e) for e in self.events) + LAST_CHUNK
        self.health = _response("200 OK", b"application/json", b'{"status":"ok"}')
        models = {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]}
        self.models = _response("200 OK", b"application/json", orjson.dumps(models))
        self.not_found = _response(
            "404 Not Found", b"application/json", b'{"error":{"message":"not found","type":"not_found"}}'
        )
        self.bad_request = _response(
            "400 Bad Request", b"application/json", b'{"error":{"message":"bad request"}}', keep_alive=False
        )
        self.requests = 0


class UpstreamProtocol(asyncio.Protocol):
    """One connection. Requests are answered in order (pipelining-safe)."""

    def __init__(self, canned: Canned) -> None:
        self.canned = canned
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        # Only used with a chunk delay: serialises the slow streaming responses.
        self.pending: asyncio.Task[None] | None = None

    # -- asyncio.Protocol -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack like one.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.pending is not None:
            self.pending.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(self.canned.bad_request)
                self.transport.close()

    # -- httptools callbacks ----------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        transport = self.transport
        if transport is None:
            return
        canned = self.canned
        canned.requests += 1
        keep_alive = self.parser.should_keep_alive()
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0]
        if method == b"POST" and path.endswith(b"/chat/completions"):
            body = b"".join(self.body)
            stream = b'"stream":true' in body or b'"stream": true' in body
            if not stream:
                self._send(canned.completion, keep_alive)
            elif canned.chunk_delay_s <= 0:
                self._send(canned.stream_whole, keep_alive)
            else:
                previous = self.pending
                self.pending = asyncio.get_running_loop().create_task(self._slow_stream(previous, keep_alive))
        elif method == b"GET" and path == b"/health":
            self._send(canned.health, keep_alive)
        elif method == b"GET" and path.endswith(b"/models"):
            self._send(canned.models, keep_alive)
        else:
            self._send(canned.not_found, keep_alive)

    # -- helpers ------------------------------------------------------------
    def _send(self, data: bytes, keep_alive: bool) -> None:
        if self.pending is not None and not self.pending.done():
            # A slow stream is still being written on this connection: queue behind it.
            previous = self.pending
            self.pending = asyncio.get_running_loop().create_task(self._after(previous, data, keep_alive))
            return
        if self.transport is not None:
            self.transport.write(data)
            if not keep_alive:
                self.transport.close()

    async def _after(self, previous: asyncio.Task[None], data: bytes, keep_alive: bool) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await previous
        if self.transport is not None:
            self.transport.write(data)
            if not keep_alive:
                self.transport.close()

    async def _slow_stream(self, previous: asyncio.Task[None] | None, keep_alive: bool) -> None:
        if previous is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await previous
        if self.transport is None:
            return
        self.transport.write(STREAM_HEAD)
        for event in self.canned.events:
            await asyncio.sleep(self.canned.chunk_delay_s)
            if self.transport is None:
                return
            self.transport.write(http_chunk(event))
        self.transport.write(LAST_CHUNK)
        if not keep_alive:
            self.transport.close()


async def serve(port: int, chunks: int, chunk_delay_s: float, lifetime_s: float, exit_with_parent: bool) -> None:
    loop = asyncio.get_running_loop()
    canned = Canned(chunks, chunk_delay_s)
    server = await loop.create_server(lambda: UpstreamProtocol(canned), HOST, port, backlog=1024, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://{HOST}:{bound}", flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    deadline = loop.time() + lifetime_s
    async with server:
        while not stop.is_set() and loop.time() < deadline:
            if exit_with_parent and os.getppid() != parent:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
    print(f"upstream served {canned.requests} requests, exiting", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True, help="port on 127.0.0.1 (0 = pick a free one)")
    ap.add_argument("--chunks", type=int, default=20, help="content chunks per streamed reply (default 20)")
    ap.add_argument(
        "--chunk-delay-ms",
        type=float,
        default=0.0,
        help="sleep between streamed chunks (default 0: one write)",
    )
    ap.add_argument("--lifetime", type=float, default=900.0, help="exit after this many seconds (default 900)")
    ap.add_argument("--exit-with-parent", action="store_true", help="exit when the parent process goes away")
    args = ap.parse_args(argv)
    if args.chunks < 1:
        ap.error("--chunks must be >= 1")
    try:
        import uvloop  # noqa: PLC0415

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(serve(args.port, args.chunks, args.chunk_delay_ms / 1000.0, args.lifetime, args.exit_with_parent))


if __name__ == "__main__":
    main()
