"""A fake OpenAI Responses API upstream (``POST /v1/responses``) that misbehaves on cue.

Usage::

    with FakeResponses() as fake:              # aiohttp server on 127.0.0.1:<ephemeral>, own thread + loop
        fake.enqueue(ResponsesBehaviour(status=429))
        ...  # point a backend (protocol: openai-responses) at fake.base_url ("http://127.0.0.1:<port>/v1")
        assert fake.response_requests()[0].body["input"][0]["role"] == "user"

Answers are one ``response`` object, or with ``stream: true`` the ``response.*`` SSE events OpenAI
sends (created, in_progress, output_item.added, the deltas, output_item.done, completed) — no
``[DONE]``. A behaviour may answer with text (split into ``chunks`` deltas), a function call (its
arguments in ``pieces``), a custom tool call, a hosted tool's item before the text (``hosted_item``),
a reasoning item with ``encrypted_content`` (``reasoning``), or an error status (OpenAI's envelope).
``error_after`` = N sends ``response.failed`` after N events; ``cut_after``, ``stall_after`` and
``malformed_after`` = N cut, stall or corrupt the stream after N events; ``reset_before_headers``,
``silence``, ``first_byte_delay`` and ``first_chunk_delay`` misbehave before the first event; and
``prefill`` says how an input ending in an assistant message is answered (``ignore``, as the API does,
``continue`` or ``reject``). Like the real API it answers 400 to a
body without ``model`` or ``input``, or with Chat Completions' ``messages``.

Token counts are words: input tokens are the words of every text in ``input`` and ``instructions``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fakes.server import PREFILL_REFUSAL, FakeServer, RecordedRequest, StreamFaults, continue_prefill, split_even

PATH = "/v1/responses"


@dataclass
class CallSpec:
    name: str
    arguments: str  # JSON text (function) or the free-form input (custom)
    call_id: str = "call_fake_1"
    pieces: int = 1
    custom: bool = False
    namespace: str | None = None


@dataclass
class ResponsesBehaviour:
    reply: str = "Hello from the fake Responses upstream."
    chunks: int = 1
    call: CallSpec | None = None
    reasoning: str | None = None  # encrypted_content of a reasoning item before the answer
    hosted_item: dict[str, Any] | None = None
    status: int = 200
    error_message: str = "upstream error"
    error_after: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    error_body: dict[str, Any] | None = None  # sent as is for an error status; its "error" in response.failed
    headers: dict[str, str] = field(default_factory=dict)  # on an error status (e.g. Retry-After)
    first_byte_delay: float = 0.0  # before the response head
    first_chunk_delay: float = 0.0  # after the head, before the first event
    reset_before_headers: bool = False
    silence: bool = False  # never answer: hold the connection until the client leaves
    cut_after: int | None = None  # drop the connection after N events
    stall_after: int | None = None  # go silent after N events
    malformed_after: int | None = None  # a malformed event after N events
    prefill: str = "ignore"  # input ending in an assistant message: "ignore" (the API does), "continue", "reject"


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    if isinstance(value, dict):
        return [t for k, v in value.items() if k in ("text", "output", "content", "arguments", "input")
                for t in _texts(v)]
    return []


def input_tokens(body: dict[str, Any]) -> int:
    return sum(len(t.split()) for t in _texts(body.get("input")) + _texts(body.get("instructions")))


def _prefill(body: dict[str, Any]) -> str | None:
    """The text of a final assistant message of ``input`` (a prefill), if it ends with one."""
    items = body.get("input")
    last = items[-1] if isinstance(items, list) and items else None
    if not isinstance(last, dict) or last.get("role") != "assistant":
        return None
    content = last.get("content")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else None


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = "rate_limit_error" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class FakeResponses(FakeServer[RecordedRequest, ResponsesBehaviour]):
    thread_name = "fake-responses-upstream"
    label = "fake Responses upstream"

    def __init__(self) -> None:
        super().__init__(ResponsesBehaviour, RecordedRequest.of)

    def response_requests(self) -> list[RecordedRequest]:
        return self._posts_to(PATH)

    async def _answer(self, request: web.Request, recorded: RecordedRequest) -> web.StreamResponse:
        body = recorded.body
        if request.method != "POST" or request.path != PATH:
            return web.json_response(error_body(404, f"Not found: {request.method} {request.path}"), status=404)
        problem = self._validate(body)
        if problem:
            return web.json_response(error_body(400, problem), status=400)
        beh = self._choose(body.get("model"), body)
        dropped = await self._before_headers(request, reset=beh.reset_before_headers, silence=beh.silence,
                                             delay=beh.first_byte_delay)
        if dropped is not None:
            return dropped
        if beh.status >= 400:
            return web.json_response(beh.error_body or error_body(beh.status, beh.error_message), status=beh.status,
                                     headers=beh.headers)
        reply = continue_prefill(beh.prefill, _prefill(body), beh.reply)
        if reply is None:
            return web.json_response(error_body(400, PREFILL_REFUSAL), status=400)
        beh = dataclasses.replace(beh, reply=reply)
        items, events = self._items(beh)
        usage = {"input_tokens": input_tokens(body), "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": max(1, sum(len(t.split()) for t in _texts(items))),
                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 0}
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        response = {"id": "resp_fake_1", "object": "response", "created_at": 1, "status": "completed",
                    "model": body["model"], "output": items, "usage": usage, "error": None, **beh.extra}
        if body.get("stream") is not True:
            return web.json_response(response)
        started = {**response, "status": "in_progress", "output": [], "usage": None}
        frames = [("response.created", {"response": started}), ("response.in_progress", {"response": started}),
                  *events, ("response.completed", {"response": response})]
        encoded = [self._sse(kind, n, data) for n, (kind, data) in enumerate(frames)]
        failed = {**response, "status": "failed", "error": (beh.error_body or {}).get("error") or {
            "code": "server_error", "message": beh.error_message}}
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
        return await self._write_stream(request, resp, encoded, StreamFaults(
            error_after=beh.error_after, error=self._sse("response.failed", 0, {"response": failed}),
            first_delay=beh.first_chunk_delay, cut_after=beh.cut_after, stall_after=beh.stall_after,
            malformed_after=beh.malformed_after, malformed=b"event: response.output_text.delta\ndata: {not json\n\n"))

    @staticmethod
    def _validate(body: Any) -> str | None:
        if not isinstance(body, dict):
            return "We could not parse the JSON body of your request."
        if "messages" in body:
            return "Unknown parameter: 'messages'."
        if not isinstance(body.get("model"), str):
            return "Missing required parameter: 'model'."
        if "input" not in body:
            return "Missing required parameter: 'input'."
        return None

    @staticmethod
    def _sse(kind: str, n: int, data: dict[str, Any]) -> bytes:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': n, **data})}\n\n".encode()

    def _items(self, beh: ResponsesBehaviour) -> tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any]]]]:
        """The output items, and the stream events between in_progress and completed."""
        items: list[dict[str, Any]] = []
        events: list[tuple[str, dict[str, Any]]] = []

        def whole(item: dict[str, Any]) -> None:
            index = len(items)
            items.append(item)
            events.append(("response.output_item.added", {"output_index": index, "item": item}))
            events.append(("response.output_item.done", {"output_index": index, "item": item}))

        if beh.reasoning is not None:
            whole({"id": "rs_fake_1", "type": "reasoning", "summary": [], "encrypted_content": beh.reasoning})
        if beh.hosted_item is not None:
            whole(dict(beh.hosted_item))
        if beh.call is not None:
            self._call(beh.call, items, events)
        else:
            self._text(beh, items, events)
        return items, events

    @staticmethod
    def _text(beh: ResponsesBehaviour, items: list[dict[str, Any]], events: list[tuple[str, dict[str, Any]]]) -> None:
        index = len(items)
        item = {"id": "msg_fake_1", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": beh.reply, "annotations": []}]}
        items.append(item)
        events.append(("response.output_item.added", {"output_index": index,
                                                       "item": {**item, "status": "in_progress", "content": []}}))
        for piece in split_even(beh.reply, beh.chunks):
            events.append(("response.output_text.delta", {"item_id": item["id"], "output_index": index,
                                                           "content_index": 0, "delta": piece}))
        events.append(("response.output_text.done", {"item_id": item["id"], "output_index": index,
                                                      "content_index": 0, "text": beh.reply}))
        events.append(("response.output_item.done", {"output_index": index, "item": item}))

    @staticmethod
    def _call(call: CallSpec, items: list[dict[str, Any]], events: list[tuple[str, dict[str, Any]]]) -> None:
        index = len(items)
        if call.custom:
            item: dict[str, Any] = {"id": "ctc_fake_1", "type": "custom_tool_call", "status": "completed",
                                    "call_id": call.call_id, "name": call.name, "input": call.arguments}
            delta_kind, field_name = "response.custom_tool_call_input.delta", "input"
        else:
            item = {"id": "fc_fake_1", "type": "function_call", "status": "completed", "call_id": call.call_id,
                    "name": call.name, "arguments": call.arguments}
            delta_kind, field_name = "response.function_call_arguments.delta", "arguments"
        if call.namespace:
            item["namespace"] = call.namespace
        items.append(item)
        events.append(("response.output_item.added", {"output_index": index,
                                                       "item": {**item, "status": "in_progress", field_name: ""}}))
        for piece in split_even(call.arguments, call.pieces):
            events.append((delta_kind, {"item_id": item["id"], "output_index": index, "delta": piece}))
        events.append(("response.output_item.done", {"output_index": index, "item": item}))
