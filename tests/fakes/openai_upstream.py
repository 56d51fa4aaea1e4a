"""A fake OpenAI-compatible upstream that speaks the Chat Completions wire format and misbehaves on cue.

Usage::

    with FakeOpenAI() as fake:                 # aiohttp server on 127.0.0.1:<ephemeral>, own thread + loop
        fake.enqueue(Behaviour(status=429, headers={"Retry-After": "2"}))
        ...  # point a client at fake.base_url ("http://127.0.0.1:<port>/v1")
        assert fake.chat_requests()[0].body["model"] == "gpt-4o-mini"

Endpoints: ``POST /v1/chat/completions`` (streaming and not) and ``GET /v1/models``. Every request,
whatever its path, is recorded in ``fake.requests``. Unknown paths get a 404 OpenAI error body.
``POST /tokenize`` (beside ``/v1``, as vLLM and llama.cpp servers serve it) answers when
``fake.tokenize`` names a dialect: ``"vllm"`` counts ``messages`` (words + 4 a message, + 7 for the
chat template) as ``{"count", "max_model_len", "tokens"}``; ``"llamacpp"`` counts the words of
``content`` as ``{"tokens": [...]}``. ``fake.tokenize_status`` other than 200 answers that status.

Choosing a behaviour for a chat request (first match wins):

0. ``fake.responder(body)`` when set and it returns a behaviour (a scripted conversation);
1. the FIFO queue filled by ``enqueue()`` (each request consumes one entry);
2. a fault cue in the request's ``model`` (see below);
3. ``fake.default``.

Fault cue grammar (the ``model`` field of the request body)::

    cue   := "fault:" item ("," item)*
    item  := flag | key "=" value
    flag  := "silence" | "reset" | "omit_done"
    (prefill=continue|ignore|reject: how a request ending in an assistant message is answered)
    key   := "status" (int) | "retry_after" (str, sent as the Retry-After header)
           | "code" (str) | "type" (str) | "message" (str, no commas)
           | "times" (int: only the first N requests with this exact model string get the fault,
                      later ones get ``default``; omitted = forever)
           | "first_byte_delay" (before the response head) | "first_chunk_delay" (after the head,
             before the first data event) | "chunk_delay" (between events) (float seconds)
           | "chunks" | "cut_after" | "stall_after" | "malformed_after" | "error_after" (int)

Examples: ``fault:status=429,retry_after=2,times=1``, ``fault:silence``, ``fault:reset``,
``fault:cut_after=2``, ``fault:stall_after=2``, ``fault:malformed_after=1``, ``fault:omit_done``,
``fault:first_byte_delay=1.5``, ``fault:status=400,code=context_length_exceeded``.
A cue starts from a copy of ``default`` and overrides the named fields. When ``status`` is given
without ``type``/``code``: 429 -> type "requests", code "rate_limit_exceeded"; >= 500 -> type
"server_error". ``times`` is counted per distinct model string, only over requests that reached
the cue (queued behaviours do not count). A malformed cue gets a 400 with code "fake_bad_fault_cue".

``error_body`` replaces the error object an error status (and ``error_after_chunks``' mid-stream
error event) sends, for tests of what the proxy does with each of its fields.

Streaming "data events" are the JSON chunks: role chunk, content (or tool-call) chunks, finish chunk,
and the usage chunk. ``cut_after``/``stall_after``/``malformed_after`` = N act after N of them have
been sent; N >= the number of JSON chunks acts just before ``data: [DONE]``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fakes.server import (
    PREFILL_REFUSAL,
    CueError,
    FakeServer,
    RecordedRequest,
    StreamFaults,
    continue_prefill,
    cue_changes,
    split_even,
)

__all__ = ["Behaviour", "CueError", "FakeOpenAI", "RecordedRequest", "ToolCallSpec", "split_even"]

CHAT_PATH = "/v1/chat/completions"
TOKENIZE_PATH = "/tokenize"
TEMPLATE_TOKENS = 7  # what the fake vLLM's chat template adds to a conversation
MODELS = ("gpt-4o-mini", "gpt-4o", "o3-mini")


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
    first_chunk_delay: float = 0.0  # after the response head, before the first data event
    chunk_delay: float = 0.0
    cut_after_chunks: int | None = None
    stall_after_chunks: int | None = None
    malformed_after_chunks: int | None = None
    error_after_chunks: int | None = None  # then an ``{"error": ...}`` data event, and the stream ends
    error_body: dict[str, Any] | None = None  # sent as is for an error status and as that error event
    prefill: str = "ignore"  # a request ending in an assistant message: "ignore" (OpenAI), "continue", "reject"
    omit_done: bool = False
    reset_before_headers: bool = False
    silence: bool = False
    raw_body: bytes | None = None  # answer 200 with exactly these bytes, in 64 KiB writes, no Content-Length


_INT_KEYS = {"status": "status", "chunks": "chunks", "cut_after": "cut_after_chunks",
             "stall_after": "stall_after_chunks", "malformed_after": "malformed_after_chunks",
             "error_after": "error_after_chunks"}
_FLOAT_KEYS = {"first_byte_delay": "first_byte_delay", "first_chunk_delay": "first_chunk_delay",
               "chunk_delay": "chunk_delay"}
_STR_KEYS = {"code": "error_code", "type": "error_type", "message": "error_message", "prefill": "prefill"}
_FLAGS = {"silence": "silence", "reset": "reset_before_headers", "omit_done": "omit_done"}


def parse_cue(model: str, base: Behaviour) -> tuple[Behaviour, int | None]:
    """Parse ``fault:...`` into (behaviour, times). Raises CueError on bad input."""
    changes, times = cue_changes(model, base.headers, flags=_FLAGS, ints=_INT_KEYS, floats=_FLOAT_KEYS,
                                 strs=_STR_KEYS)
    status = changes.get("status", 0)
    if status == 429:
        changes.setdefault("error_type", "requests")
        changes.setdefault("error_code", "rate_limit_exceeded")
    elif status >= 500:
        changes.setdefault("error_type", "server_error")
    return dataclasses.replace(base, **changes), times


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


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class FakeOpenAI(FakeServer[RecordedRequest, Behaviour]):
    thread_name = "fake-openai-upstream"

    def __init__(self) -> None:
        super().__init__(Behaviour, RecordedRequest.of)
        self.tokenize: str | None = None  # "vllm" or "llamacpp": serve POST /tokenize in that dialect
        self.tokenize_status = 200

    def chat_requests(self) -> list[RecordedRequest]:
        return self._posts_to(CHAT_PATH)

    def tokenize_requests(self) -> list[RecordedRequest]:
        return self._posts_to(TOKENIZE_PATH)

    # ---- request handling -------------------------------------------------------------------

    async def _answer(self, request: web.Request, recorded: RecordedRequest) -> web.StreamResponse:
        body = recorded.body
        if request.path == "/v1/models" and request.method == "GET":
            return web.json_response({"object": "list", "data": [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in MODELS]})
        if request.path == TOKENIZE_PATH and request.method == "POST" and self.tokenize is not None:
            return self._tokenize(body)
        if request.path != CHAT_PATH or request.method != "POST":
            return web.json_response(error_body(f"Unknown request URL: {request.method} {request.path}",
                                                "invalid_request_error", "unknown_url"), status=404)
        if not isinstance(body, dict):
            return web.json_response(error_body("We could not parse the JSON body of your request.",
                                                "invalid_request_error", None), status=400)
        try:
            beh = self._choose(body.get("model"), body)
        except CueError as exc:
            return web.json_response(error_body(str(exc), "invalid_request_error", "fake_bad_fault_cue",
                                                "model"), status=400)
        return await self._respond(request, body, beh)

    def _parse_cue(self, model: str, base: Behaviour) -> tuple[Behaviour, int | None]:
        return parse_cue(model, base)

    def _tokenize(self, body: Any) -> web.Response:
        if self.tokenize_status != 200:
            return web.json_response(error_body("tokenizer busy", "server_error", None), status=self.tokenize_status)
        if not isinstance(body, dict):
            return web.json_response(error_body("invalid JSON", "invalid_request_error", None), status=400)
        if self.tokenize == "vllm":
            count = prompt_tokens(body) + TEMPLATE_TOKENS
            return web.json_response({"count": count, "max_model_len": 8192, "tokens": list(range(count))})
        content = body.get("content")
        if not isinstance(content, str):
            return web.json_response({"error": "\"content\" must be provided"}, status=400)
        return web.json_response({"tokens": list(range(_words(content)))})

    async def _respond(self, request: web.Request, body: dict[str, Any],
                       beh: Behaviour) -> web.StreamResponse:
        dropped = await self._before_headers(request, reset=beh.reset_before_headers, silence=beh.silence,
                                             delay=beh.first_byte_delay)
        if dropped is not None:
            return dropped
        if beh.status >= 400:
            return web.json_response(beh.error_body or error_body(beh.error_message, beh.error_type, beh.error_code),
                                     status=beh.status, headers=beh.headers)
        if beh.raw_body is not None:
            return await self._raw(request, beh.raw_body, stream=body.get("stream") is True)
        messages = body.get("messages")
        last = messages[-1] if isinstance(messages, list) and messages else None
        prefix = last.get("content") if isinstance(last, dict) and last.get("role") == "assistant" else None
        reply = continue_prefill(beh.prefill, prefix if isinstance(prefix, str) else None, beh.reply)
        if reply is None:
            return web.json_response(error_body(PREFILL_REFUSAL, "invalid_request_error", "invalid_request"),
                                     status=400)
        beh = dataclasses.replace(beh, reply=reply)
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
        return await self._write_stream(request, resp, [b"data: " + e + b"\n\n" for e in events], StreamFaults(
            chunk_delay=beh.chunk_delay, first_delay=beh.first_chunk_delay, malformed_after=beh.malformed_after_chunks,
            malformed=b"data: {not json\n\n",
            cut_after=beh.cut_after_chunks, stall_after=beh.stall_after_chunks,
            error_after=beh.error_after_chunks, error=b"data: " + json.dumps(
                beh.error_body or error_body(beh.error_message, "server_error", beh.error_code)).encode() + b"\n\n",
            tail=b"" if beh.omit_done else b"data: [DONE]\n\n", tail_delay=True))
