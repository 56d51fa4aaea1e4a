"""A fake Gemini API upstream that speaks the generateContent wire format and misbehaves on cue.

Usage::

    with FakeGemini() as fake:                 # aiohttp server on 127.0.0.1:<ephemeral>, own thread + loop
        fake.enqueue(GeminiBehaviour(status=429, retry_after="2"))
        ...  # point a backend at fake.base_url ("http://127.0.0.1:<port>/v1beta")
        assert fake.generate_requests()[0].model == "gemini-2.5-flash"

Endpoints (as Google serves them under ``/v1beta``):

- ``POST /v1beta/models/{model}:generateContent``: one GenerateContentResponse;
- ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``: ``data: {...}`` SSE events, no end
  marker (the stream ends when the connection closes); without ``alt=sse``: one JSON array whose
  elements are written as they come (``[{...}``, ``,\\r\\n{...}``, ``]``);
- ``POST /v1beta/models/{model}:countTokens``: ``{"totalTokens": N}``;
- ``GET /v1beta/models``: ``{"models": [...]}``.

Every request is recorded in ``fake.requests``. Errors use Google's envelope
``{"error": {"code": 429, "message": ..., "status": "RESOURCE_EXHAUSTED", "details": [...]}}``;
with ``retry_after`` a 429 also carries a ``Retry-After`` header and a google.rpc.RetryInfo.
When ``fake.api_key`` is set, a request without that ``x-goog-api-key`` gets Google's 400
API_KEY_INVALID answer.

A behaviour is chosen per generate request: ``fake.responder(body)`` when set and not None (a scripted
conversation), then the FIFO queue filled by ``enqueue()``, then ``fake.default``. Stream chunks are: a
thought chunk (if ``thoughts``), the text pieces (or one chunk per function call), and the finishReason
travels on the last of them; every chunk carries ``usageMetadata`` with the counts so far, as Gemini
does. ``cut_after_chunks``, ``stall_after_chunks``, ``error_after_chunks`` and ``malformed_after_chunks``
= N act after N chunks have been sent. ``prefill`` says how contents ending in a model turn are
answered: ``ignore`` it (answer anew), ``continue`` the reply from there, or ``reject`` it (400).

Token counts are words: the prompt is every text part of contents and systemInstruction; the
answer is the reply's words (or each call's name and JSON arguments).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fakes.server import PREFILL_REFUSAL, FakeServer, StreamFaults, continue_prefill, split_even

__all__ = ["FakeGemini", "FunctionCallSpec", "GeminiBehaviour", "GeminiRequest"]

MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash")
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


@dataclass
class GeminiRequest:
    method: str  # HTTP method
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    at: float

    @classmethod
    def of(cls, request: web.Request, headers: dict[str, str], body: Any) -> GeminiRequest:
        return cls(request.method, request.path, dict(request.query), headers, body, time.monotonic())

    @property
    def model(self) -> str:
        tail = self.path.removeprefix("/v1beta/models/")
        return tail.rsplit(":", 1)[0]

    @property
    def rpc(self) -> str:
        """generateContent, streamGenerateContent, countTokens (or "" for other paths)."""
        return self.path.rsplit(":", 1)[1] if self.path.startswith("/v1beta/models/") and ":" in self.path else ""


@dataclass
class FunctionCallSpec:
    name: str
    args: dict[str, Any]
    id: str | None = None
    thought_signature: str | None = None


@dataclass
class GeminiBehaviour:
    status: int = 200
    error_message: str = "fake upstream error"
    error_status: str | None = None  # default: the google.rpc.Code name of ``status``
    retry_after: str | None = None  # Retry-After header + RetryInfo on an error answer
    reply: str = "Hello from the fake Gemini."
    chunks: int = 4
    thoughts: str | None = None
    thought_signature: str | None = None
    function_calls: list[FunctionCallSpec] = field(default_factory=list)
    finish_reason: str = "STOP"
    usage: bool = True
    cached_tokens: int = 0
    thoughts_tokens: int = 0
    first_byte_delay: float = 0.0
    first_chunk_delay: float = 0.0  # after the response head, before the first chunk
    reset_before_headers: bool = False
    silence: bool = False  # never answer: hold the connection until the client leaves
    raw_body: bytes | None = None  # answer 200 with exactly these bytes (FakeServer._raw)
    chunk_delay: float = 0.0
    cut_after_chunks: int | None = None
    stall_after_chunks: int | None = None
    error_after_chunks: int | None = None
    malformed_after_chunks: int | None = None
    error_body: dict[str, Any] | None = None  # sent as is: for an error status, the error chunk, and (status 200,
    # generateContent, with ``error_in_body``) as the whole answer
    error_in_body: bool = False
    prefill: str = "ignore"  # contents ending in a model turn: "ignore" (answer anew), "continue", "reject"


def _words(text: str) -> int:
    return len(text.split())


def prompt_tokens(body: Any) -> int:
    if not isinstance(body, dict):
        return 0
    contents = body.get("contents") or []
    system = body.get("systemInstruction") or body.get("system_instruction")
    texts = []
    for content in [*contents, *([system] if isinstance(system, dict) else [])]:
        for part in content.get("parts") or [] if isinstance(content, dict) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, dict) and "functionResponse" in part:
                texts.append(json.dumps(part["functionResponse"]))
    return sum(_words(t) for t in texts)


def error_body(code: int, message: str, status: str | None = None, retry_after: str | None = None,
               reason: str | None = None) -> dict[str, Any]:
    details: list[dict[str, Any]] = []
    if reason:
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                        "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}})
    if retry_after is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after}s"})
    error: dict[str, Any] = {"code": code, "message": message, "status": status or STATUS_NAMES.get(code, "UNKNOWN")}
    if details:
        error["details"] = details
    return {"error": error}


class FakeGemini(FakeServer[GeminiRequest, GeminiBehaviour]):
    thread_name = "fake-gemini-upstream"
    api_root = "/v1beta"
    label = "fake Gemini upstream"

    def __init__(self) -> None:
        super().__init__(GeminiBehaviour, GeminiRequest.of)
        self.api_key: str | None = None

    def generate_requests(self) -> list[GeminiRequest]:
        """The generateContent and streamGenerateContent requests, in order."""
        return self._requests_where(lambda r: r.rpc in ("generateContent", "streamGenerateContent"))

    # ---- request handling -------------------------------------------------------------------

    async def _answer(self, request: web.Request, recorded: GeminiRequest) -> web.StreamResponse:
        body = recorded.body
        if self.api_key is not None and recorded.headers.get("x-goog-api-key") != self.api_key:
            return web.json_response(error_body(400, "API key not valid. Please pass a valid API key.",
                                                reason="API_KEY_INVALID"), status=400)
        if request.method == "GET" and request.path == "/v1beta/models":
            return web.json_response({"models": [
                {"name": f"models/{m}", "displayName": m, "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
                 "supportedGenerationMethods": ["generateContent", "countTokens"]} for m in MODELS]})
        rpc = recorded.rpc
        if request.method != "POST" or rpc not in ("generateContent", "streamGenerateContent", "countTokens"):
            return web.json_response(error_body(404, f"Unknown path {request.method} {request.path}"), status=404)
        if not isinstance(body, dict):
            return web.json_response(error_body(400, "Invalid JSON payload received."), status=400)
        if rpc == "countTokens":
            inner = body.get("generateContentRequest", body)
            return web.json_response({"totalTokens": prompt_tokens(inner)})
        if not body.get("contents"):
            return web.json_response(error_body(400, "* GenerateContentRequest.contents: contents is not specified"),
                                     status=400)
        beh = self._choose(body=body)
        dropped = await self._before_headers(request, reset=beh.reset_before_headers, silence=beh.silence,
                                             delay=beh.first_byte_delay)
        if dropped is not None:
            return dropped
        contents = body["contents"]
        last = contents[-1] if isinstance(contents, list) else None
        prefix = None
        if isinstance(last, dict) and last.get("role") == "model":
            prefix = "".join(p.get("text", "") for p in last.get("parts") or [] if isinstance(p, dict))
        reply = continue_prefill(beh.prefill, prefix, beh.reply)
        if reply is None:
            return web.json_response(error_body(400, PREFILL_REFUSAL), status=400)
        beh = dataclasses.replace(beh, reply=reply)
        if beh.status >= 400 or (beh.error_in_body and rpc == "generateContent"):
            headers = {"Retry-After": beh.retry_after} if beh.retry_after is not None else {}
            return web.json_response(
                beh.error_body or error_body(beh.status, beh.error_message, beh.error_status, beh.retry_after),
                status=beh.status, headers=headers)
        if beh.raw_body is not None:
            return await self._raw(request, beh.raw_body, stream=request.query.get("alt") == "sse")
        chunks = self._chunks(beh, recorded.model, prompt_tokens(body))
        if rpc == "generateContent":
            return web.json_response(self._whole(chunks))
        return await self._stream(request, beh, chunks, sse=recorded.query.get("alt") == "sse")

    def _chunks(self, beh: GeminiBehaviour, model: str, prompt: int) -> list[dict[str, Any]]:
        response_id = f"fake-gemini-{next(self._ids)}"
        part_lists: list[list[dict[str, Any]]] = []
        if beh.thoughts is not None:
            thought: dict[str, Any] = {"text": beh.thoughts, "thought": True}
            if beh.thought_signature:
                thought["thoughtSignature"] = beh.thought_signature
            part_lists.append([thought])
        if beh.function_calls:
            for fc in beh.function_calls:
                call: dict[str, Any] = {"name": fc.name, "args": fc.args}
                if fc.id:
                    call["id"] = fc.id
                part: dict[str, Any] = {"functionCall": call}
                if fc.thought_signature:
                    part["thoughtSignature"] = fc.thought_signature
                part_lists.append([part])
            answer_words = sum(_words(fc.name) + _words(json.dumps(fc.args)) for fc in beh.function_calls)
        else:
            part_lists.extend([{"text": piece}] for piece in split_even(beh.reply, beh.chunks))
            answer_words = _words(beh.reply)
        out = []
        sent_words = 0
        for i, parts in enumerate(part_lists):
            sent_words += sum(_words(p.get("text", "")) for p in parts if not p.get("thought"))
            last = i == len(part_lists) - 1
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if last:
                candidate["finishReason"] = beh.finish_reason
            chunk: dict[str, Any] = {"candidates": [candidate]}
            if beh.usage:
                done = answer_words if last else min(sent_words, answer_words)
                usage: dict[str, Any] = {"promptTokenCount": prompt, "candidatesTokenCount": done,
                                         "totalTokenCount": prompt + done + beh.thoughts_tokens}
                if beh.thoughts_tokens:
                    usage["thoughtsTokenCount"] = beh.thoughts_tokens
                if beh.cached_tokens:
                    usage["cachedContentTokenCount"] = beh.cached_tokens
                chunk["usageMetadata"] = usage
            chunk["modelVersion"] = model
            chunk["responseId"] = response_id
            out.append(chunk)
        return out

    @staticmethod
    def _whole(chunks: list[dict[str, Any]]) -> dict[str, Any]:
        """The non-streamed answer: every chunk's parts in one candidate, the last chunk's metadata."""
        parts: list[dict[str, Any]] = []
        for chunk in chunks:
            for part in chunk["candidates"][0]["content"]["parts"]:
                if "text" in part and parts and "text" in parts[-1] and not part.get("thought") \
                        and not parts[-1].get("thought"):
                    parts[-1] = {**parts[-1], "text": parts[-1]["text"] + part["text"]}
                else:
                    parts.append(part)
        last = chunks[-1]
        whole = {**last, "candidates": [{**last["candidates"][0], "content": {"parts": parts, "role": "model"}}]}
        return whole

    async def _stream(self, request: web.Request, beh: GeminiBehaviour, chunks: list[dict[str, Any]],
                      sse: bool) -> web.StreamResponse:
        content_type = "text/event-stream" if sse else "application/json"
        resp = web.StreamResponse(status=200, headers={"Content-Type": content_type})
        resp.force_close()  # Gemini's stream ends when the connection closes
        data = [json.dumps(chunk).encode() for chunk in chunks]
        if sse:
            events = [b"data: " + d + b"\r\n\r\n" for d in data]
        else:  # one JSON array, its elements written as they come
            events = [(b"[" if i == 0 else b"\n,\r\n") + d for i, d in enumerate(data)]
        overloaded = error_body(503, "The model is overloaded. Please try again later.")
        error = json.dumps(beh.error_body or overloaded).encode()
        return await self._write_stream(request, resp, events, StreamFaults(
            chunk_delay=beh.chunk_delay, first_delay=beh.first_chunk_delay, malformed_after=beh.malformed_after_chunks,
            malformed=b"data: {not json\n\n" if sse else b",\r\n{not json", error_after=beh.error_after_chunks,
            error=b"data: " + error + b"\n\n" if sse else b",\r\n" + error + b"]", cut_after=beh.cut_after_chunks,
            stall_after=beh.stall_after_chunks, tail=b"" if sse else b"\n]", clamp=False))
