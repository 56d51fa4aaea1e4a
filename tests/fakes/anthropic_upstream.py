"""A fake Anthropic upstream that speaks the Messages wire format and misbehaves on cue.

Usage::

    with FakeAnthropic() as fake:              # aiohttp server on 127.0.0.1:<ephemeral>, own thread + loop
        fake.enqueue(Behaviour(status=429, headers={"Retry-After": "2"}))
        ...  # point a backend at fake.base_url ("http://127.0.0.1:<port>/v1")
        assert fake.message_requests()[0].body["max_tokens"] == 4096

Endpoints: ``POST /v1/messages`` (streaming and not) and ``POST /v1/messages/count_tokens``. Every
request, whatever its path, is recorded in ``fake.requests``. Unknown paths get a 404
``not_found_error``. Like the real API, a request without the ``anthropic-version`` header, without
``max_tokens``, with a role other than user/assistant (or system after the first message), or with
a top-level key the API does not know gets a 400 ``invalid_request_error`` naming the field (so tests
see what the proxy really sends).

Choosing a behaviour for a messages request (first match wins): ``fake.responder(body)`` when set and
not None (a scripted conversation); the FIFO queue filled by ``enqueue()``; a fault cue in the
request's ``model``; ``fake.default``.

Fault cue grammar (the ``model`` field)::

    cue   := "fault:" item ("," item)*
    item  := flag | key "=" value
    flag  := "reset" | "omit_stop" | "silence"
    (prefill=continue|ignore|reject: how a request ending in an assistant message is answered; like
    the API, a prefill ending in whitespace is a 400)
    key   := "status" (int) | "retry_after" (str, sent as Retry-After) | "type" (error type)
           | "message" (str, no commas) | "times" (int: only the first N requests with this exact
             model string get the fault) | "cut_after" | "stall_after" | "error_after"
           | "malformed_after" (int: act after N stream events) | "chunk_delay" (float seconds)

When ``status`` is given without ``type`` the type is Anthropic's for that status (429
rate_limit_error, 529 overloaded_error, 500 api_error, other 4xx invalid_request_error).

Stream events are the real sequence: message_start, [thinking block], ping, [redacted_thinking block], [text block],
[tool_use block: input_json_delta pieces, the first one empty as the API sends it], message_delta
(stop_reason, cumulative usage), message_stop. ``cut_after``/``stall_after``/``error_after``/
``malformed_after`` = N act after N of these events have been sent (``error_after`` sends an
``event: error`` overloaded_error, as the API does when it is overloaded mid-stream).
"""

from __future__ import annotations

import dataclasses
import json
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

__all__ = ["VERSION", "Behaviour", "CueError", "FakeAnthropic", "RecordedRequest", "ToolUseSpec", "split_even"]

MESSAGES_PATH = "/v1/messages"
COUNT_PATH = "/v1/messages/count_tokens"
VERSION = "2023-06-01"  # the version the proxy's preset sends (any non-empty version is accepted)
KNOWN_KEYS = frozenset({
    "model", "messages", "max_tokens", "system", "stop_sequences", "stream", "temperature", "top_p",
    "top_k", "tools", "tool_choice", "metadata", "thinking", "service_tier", "container", "mcp_servers",
    "context_management", "output_config", "inference_geo", "speed", "cache_control",
})
# What POST /v1/messages/count_tokens takes: max_tokens, sampling and stream are refused there.
COUNT_KEYS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers",
                        "cache_control", "context_management", "output_config"})
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               500: "api_error", 529: "overloaded_error"}


@dataclass
class ToolUseSpec:
    name: str
    input_json: str  # the exact JSON text streamed in input_json_delta pieces
    id: str = "toolu_fake_1"
    pieces: int = 4
    preamble: str | None = None  # a text block before the tool_use block


@dataclass
class Behaviour:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error_type: str | None = None
    error_message: str = "fake upstream error"
    reply: str = "Hello from the fake Anthropic upstream."
    chunks: int = 4
    thinking: str | None = None
    signature: str = "sig-fake-0123"
    redacted: str | None = None  # the data of a redacted_thinking block after the thinking
    tool_use: ToolUseSpec | None = None
    stop_reason: str | None = None  # default: end_turn, or tool_use with a tool
    input_tokens: int | None = None  # default: words of the request + 4 a message
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    first_byte_delay: float = 0.0
    first_chunk_delay: float = 0.0  # after the response head, before the first event
    chunk_delay: float = 0.0
    cut_after_events: int | None = None
    stall_after_events: int | None = None
    error_after_events: int | None = None
    malformed_after_events: int | None = None
    error_body: dict[str, Any] | None = None  # sent as is: for an error status, the error event, and (status 200,
    # not streaming, with ``error_in_body``) as the whole answer
    error_in_body: bool = False
    omit_message_stop: bool = False
    reset_before_headers: bool = False
    silence: bool = False  # never answer: hold the connection until the client leaves
    raw_body: bytes | None = None  # answer 200 with exactly these bytes (FakeServer._raw)
    prefill: str = "continue"  # a final assistant message: "continue" it (the API does), "ignore", "reject"


_INT_KEYS = {"status": "status", "cut_after": "cut_after_events", "stall_after": "stall_after_events",
             "error_after": "error_after_events", "malformed_after": "malformed_after_events"}
_STR_KEYS = {"type": "error_type", "message": "error_message", "prefill": "prefill"}
_FLOAT_KEYS = {"chunk_delay": "chunk_delay"}
_FLAGS = {"reset": "reset_before_headers", "omit_stop": "omit_message_stop", "silence": "silence"}


def parse_cue(model: str, base: Behaviour) -> tuple[Behaviour, int | None]:
    changes, times = cue_changes(model, base.headers, flags=_FLAGS, ints=_INT_KEYS, floats=_FLOAT_KEYS,
                                 strs=_STR_KEYS)
    return dataclasses.replace(base, **changes), times


def _words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_words(b.get("text") or b.get("content") or "") for b in value if isinstance(b, dict))
    return 0


def input_tokens(body: dict[str, Any]) -> int:
    """Words of the system prompt and of every message's text, plus 4 a message."""
    raw = body.get("messages")
    messages: list[Any] = raw if isinstance(raw, list) else []
    return _words(body.get("system")) + sum(4 + _words(m.get("content")) for m in messages if isinstance(m, dict))


def _prefill(body: dict[str, Any]) -> str | None:
    """The text of a final assistant message (a prefill), if the request ends with one."""
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    if not isinstance(last, dict) or last.get("role") != "assistant":
        return None
    content = last.get("content")
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return content if isinstance(content, str) else None


def error_body(status: int, message: str, type_: str | None = None) -> dict[str, Any]:
    kind = type_ or ERROR_TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}


def sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


class FakeAnthropic(FakeServer[RecordedRequest, Behaviour]):
    thread_name = "fake-anthropic-upstream"

    def __init__(self) -> None:
        super().__init__(Behaviour, RecordedRequest.of)
        self.require_version = True  # like the API: 400 without the anthropic-version header

    def message_requests(self) -> list[RecordedRequest]:
        return self._posts_to(MESSAGES_PATH)

    # ---- request handling -------------------------------------------------------------------

    async def _answer(self, request: web.Request, recorded: RecordedRequest) -> web.StreamResponse:
        body = recorded.body
        if request.method != "POST" or request.path not in (MESSAGES_PATH, COUNT_PATH):
            return web.json_response(error_body(404, f"Not found: {request.method} {request.path}"), status=404)
        problem = self._validate(recorded.headers, body, count=request.path == COUNT_PATH)
        if problem is not None:
            return web.json_response(error_body(400, problem), status=400)
        assert isinstance(body, dict)
        if request.path == COUNT_PATH:
            return web.json_response({"input_tokens": input_tokens(body)})
        try:
            beh = self._choose(body.get("model"), body)
        except CueError as exc:
            return web.json_response(error_body(400, str(exc)), status=400)
        return await self._respond(request, body, beh)

    def _parse_cue(self, model: str, base: Behaviour) -> tuple[Behaviour, int | None]:
        return parse_cue(model, base)

    def _validate(self, headers: dict[str, str], body: Any, *, count: bool) -> str | None:
        if not isinstance(body, dict):
            return "There was an issue with the format of your request: invalid JSON"
        if self.require_version and not headers.get("anthropic-version"):
            return "anthropic-version: header is required"
        unknown = sorted(set(body) - (COUNT_KEYS if count else KNOWN_KEYS))
        if unknown:
            return f"{unknown[0]}: Extra inputs are not permitted"
        if not count and not isinstance(body.get("max_tokens"), int):
            return "max_tokens: Field required"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: Field required"
        for i, message in enumerate(messages):
            # A system message may stand in the conversation, not at its start (that is ``system``).
            roles = ("user", "assistant", "system") if i else ("user", "assistant")
            if not isinstance(message, dict) or message.get("role") not in roles:
                return f"messages.{i}.role: Input should be 'user' or 'assistant'"
            if "content" not in message:
                return f"messages.{i}.content: Field required"
        prefix = _prefill(body)
        if prefix is not None and prefix != prefix.rstrip():
            return "messages: final assistant content cannot end with trailing whitespace"
        return None

    async def _respond(self, request: web.Request, body: dict[str, Any], beh: Behaviour) -> web.StreamResponse:
        dropped = await self._before_headers(request, reset=beh.reset_before_headers, silence=beh.silence,
                                             delay=beh.first_byte_delay)
        if dropped is not None:
            return dropped
        if beh.status >= 400 or (beh.error_in_body and body.get("stream") is not True):
            return web.json_response(beh.error_body or error_body(beh.status, beh.error_message, beh.error_type),
                                     status=beh.status, headers=beh.headers)
        if beh.raw_body is not None:
            return await self._raw(request, beh.raw_body, stream=body.get("stream") is True)
        prefix = _prefill(body)
        reply = continue_prefill(beh.prefill, prefix, beh.reply)
        if reply is None:
            return web.json_response(error_body(400, PREFILL_REFUSAL), status=400)
        beh = dataclasses.replace(beh, reply=reply)
        model = str(body.get("model", "claude-sonnet-4-5"))
        mid = f"msg_fake_{next(self._ids):04d}"
        usage = {
            "input_tokens": beh.input_tokens if beh.input_tokens is not None else input_tokens(body),
            "cache_creation_input_tokens": beh.cache_creation_input_tokens,
            "cache_read_input_tokens": beh.cache_read_input_tokens,
            "output_tokens": self._output_tokens(beh),
        }
        stop = beh.stop_reason or ("tool_use" if beh.tool_use else "end_turn")
        if body.get("stream") is True:
            return await self._stream(request, beh, self._events(beh, mid, model, usage, stop))
        content: list[dict[str, Any]] = []
        if beh.thinking is not None:
            content.append({"type": "thinking", "thinking": beh.thinking, "signature": beh.signature})
        if beh.redacted is not None:
            content.append({"type": "redacted_thinking", "data": beh.redacted})
        tool = beh.tool_use
        if tool is None:
            content.append({"type": "text", "text": beh.reply})
        else:
            if tool.preamble:
                content.append({"type": "text", "text": tool.preamble})
            content.append({"type": "tool_use", "id": tool.id, "name": tool.name,
                            "input": json.loads(tool.input_json)})
        message: dict[str, Any] = {"id": mid, "type": "message", "role": "assistant", "model": model,
                                   "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage}
        return web.json_response(message, headers=beh.headers)

    @staticmethod
    def _output_tokens(beh: Behaviour) -> int:
        tool = beh.tool_use
        text = beh.reply if tool is None else f"{tool.preamble or ''} {tool.name} {tool.input_json}"
        return max(1, len(text.split()) + len((beh.thinking or "").split()))

    @staticmethod
    def _events(beh: Behaviour, mid: str, model: str, usage: dict[str, int], stop: str) -> list[bytes]:
        start_usage = {**usage, "output_tokens": 1}
        message: dict[str, Any] = {"id": mid, "type": "message", "role": "assistant", "model": model,
                                   "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}
        events = [sse("message_start", {"type": "message_start", "message": message})]
        index = 0
        pinged = False

        def block(content_block: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
            nonlocal index, pinged
            events.append(sse("content_block_start", {"type": "content_block_start", "index": index,
                                                      "content_block": content_block}))
            if not pinged:
                events.append(sse("ping", {"type": "ping"}))
                pinged = True
            for delta in deltas:
                events.append(sse("content_block_delta", {"type": "content_block_delta", "index": index,
                                                          "delta": delta}))
            events.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1

        if beh.thinking is not None:
            block({"type": "thinking", "thinking": "", "signature": ""},
                  [{"type": "thinking_delta", "thinking": p} for p in split_even(beh.thinking, beh.chunks)]
                  + [{"type": "signature_delta", "signature": beh.signature}])
        if beh.redacted is not None:  # it comes whole, with no deltas
            block({"type": "redacted_thinking", "data": beh.redacted}, [])
        tool = beh.tool_use
        if tool is None:
            block({"type": "text", "text": ""},
                  [{"type": "text_delta", "text": p} for p in split_even(beh.reply, beh.chunks)])
        else:
            if tool.preamble:
                block({"type": "text", "text": ""}, [{"type": "text_delta", "text": tool.preamble}])
            pieces = ["", *split_even(tool.input_json, tool.pieces)]
            block({"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}},
                  [{"type": "input_json_delta", "partial_json": p} for p in pieces])
        events.append(sse("message_delta", {"type": "message_delta",
                                            "delta": {"stop_reason": stop, "stop_sequence": None},
                                            "usage": {"output_tokens": usage["output_tokens"]}}))
        if not beh.omit_message_stop:
            events.append(sse("message_stop", {"type": "message_stop"}))
        return events

    async def _stream(self, request: web.Request, beh: Behaviour, events: list[bytes]) -> web.StreamResponse:
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **beh.headers}
        resp = web.StreamResponse(status=200, headers=headers)
        if beh.omit_message_stop:
            resp.force_close()
        return await self._write_stream(request, resp, events, StreamFaults(
            chunk_delay=beh.chunk_delay, first_delay=beh.first_chunk_delay, malformed_after=beh.malformed_after_events,
            malformed=b"event: content_block_delta\ndata: {not json\n\n", error_after=beh.error_after_events,
            error=sse("error", beh.error_body or error_body(529, "Overloaded", "overloaded_error")),
            cut_after=beh.cut_after_events, stall_after=beh.stall_after_events))
