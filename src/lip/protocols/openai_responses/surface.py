"""OpenAI Responses surface (``POST /v1/responses``): requests, response objects, ``response.*`` events.

Every backend is reached through the canonical request and event stream; nothing here knows
which one answers. ``previous_response_id`` is served from a ResponseStore owned by the app.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from lip.core.errors import NotFound, ProxyError, UpstreamError
from lip.core.model import (
    ChatRequest,
    ChatResponse,
    Finish,
    Message,
    ProviderItem,
    ReasoningDelta,
    ResponseStart,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from lip.core.sse import encode
from lip.protocols.base import Incoming, parse_json
from lip.protocols.openai_envelope import error_type, render_error
from lip.protocols.openai_responses import format as wire
from lip.protocols.openai_responses import tools as tools_wire

# ---- the store ---------------------------------------------------------------------------------

MAX_RESPONSES = 10_000
IDLE_TTL_SECONDS = 3600.0


@dataclass(slots=True)
class _Entry:
    messages: tuple[Message, ...]
    used: float
    response: bytes  # the response object as the client got it, for GET /v1/responses/{id}


class StoresResponses(Protocol):
    """Where the surface keeps responses: this process (``ResponseStore``), a file the workers of one
    machine share, or Redis, which every replica shares (``shared_responses``)."""

    async def fetch(self, response_id: str) -> tuple[Message, ...] | None:
        """The conversation ending with ``response_id``, or None."""
        ...

    async def fetch_response(self, response_id: str) -> bytes | None: ...

    async def forget(self, response_id: str) -> bool: ...

    def put(self, response_id: str, messages: tuple[Message, ...], response: bytes = b"") -> None:
        """Keep a response (never blocks; ``settle`` waits until it is where every replica reads)."""
        ...

    async def settle(self) -> None: ...


class ImmediateStore:
    """The async face of a store whose every operation is done when it returns (memory, SQLite):
    ``StoresResponses`` over the plain ``get`` / ``response`` / ``delete`` a subclass defines."""

    def get(self, response_id: str) -> tuple[Message, ...] | None:
        raise NotImplementedError

    def response(self, response_id: str) -> bytes | None:
        raise NotImplementedError

    def delete(self, response_id: str) -> bool:
        raise NotImplementedError

    async def fetch(self, response_id: str) -> tuple[Message, ...] | None:
        return self.get(response_id)

    async def fetch_response(self, response_id: str) -> bytes | None:
        return self.response(response_id)

    async def forget(self, response_id: str) -> bool:
        return self.delete(response_id)

    async def settle(self) -> None:
        """Nothing to wait for: a put is done when it returns."""


class ResponseStore(ImmediateStore):
    """Bounded in-memory store of earlier responses, for ``previous_response_id`` and
    ``GET`` / ``DELETE /v1/responses/{id}``.

    Per response id it keeps the whole conversation that response ends (the canonical messages of
    its request without ``instructions``, plus its output as assistant messages), so a next turn
    is that conversation followed by the new input. At most ``max_responses`` entries; the least
    recently used goes first, and an entry not used for ``ttl_seconds`` is gone. Entries share
    their Message objects (immutable) with the turns before them, so a long chain costs one tuple
    of references per turn, not copies. The store lives in one app instance (one process) and is
    empty after a restart; ``lip serve --workers`` uses ``shared_responses.SqliteResponseStore``.
    """

    def __init__(
        self,
        max_responses: int = MAX_RESPONSES,
        ttl_seconds: float = IDLE_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_responses < 1:
            raise ValueError("max_responses must be at least 1")
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.max_responses = max_responses
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first

    def get(self, response_id: str) -> tuple[Message, ...] | None:
        """The conversation ending with ``response_id``, or None (never stored, evicted or expired)."""
        entry = self._entry(response_id)
        return None if entry is None else entry.messages

    def response(self, response_id: str) -> bytes | None:
        """The response object of ``response_id`` (JSON), or None."""
        entry = self._entry(response_id)
        return None if entry is None else entry.response

    def delete(self, response_id: str) -> bool:
        """Forget ``response_id``; False if it was not there."""
        if self._entry(response_id) is None:
            return False
        del self._entries[response_id]
        return True

    def _entry(self, response_id: str) -> _Entry | None:
        entry = self._entries.get(response_id)
        if entry is None:
            return None
        now = self._clock()
        if now - entry.used > self.ttl_seconds:
            del self._entries[response_id]
            return None
        entry.used = now
        self._entries.move_to_end(response_id)
        return entry

    def put(self, response_id: str, messages: tuple[Message, ...], response: bytes = b"") -> None:
        now = self._clock()
        self._expire(now)
        self._entries[response_id] = _Entry(messages, now, response)
        self._entries.move_to_end(response_id)
        while len(self._entries) > self.max_responses:
            self._entries.popitem(last=False)

    def _expire(self, now: float) -> None:
        # Entries are in order of last use, so the expired ones are a prefix.
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if now - oldest.used <= self.ttl_seconds:
                return
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        self._expire(self._clock())
        return len(self._entries)

    def __contains__(self, response_id: object) -> bool:
        return isinstance(response_id, str) and self.get(response_id) is not None


def _history(previous: str | None, found: tuple[Message, ...] | None) -> tuple[Message, ...]:
    if previous is None:
        return ()
    if found is None:
        raise NotFound(f"Previous response with id '{previous}' not found.",
                       code="previous_response_not_found", param="previous_response_id")
    return found


# ---- the surface -------------------------------------------------------------------------------


class OpenAIResponses:
    """``POST /v1/responses``."""

    name = "openai-responses"
    stream_media_type = "text/event-stream"

    def __init__(self, store: StoresResponses) -> None:
        self.store = store

    @staticmethod
    def key(client: str | None, response_id: str) -> str:
        """Where ``client``'s response ``response_id`` is stored: each client has its own ids, so another
        client's id (to read, continue or delete) is simply not found."""
        return response_id if client is None else f"{len(client)}:{client}/{response_id}"

    def parse(self, incoming: Incoming) -> ChatRequest:
        """With a store of this process or machine (read at once); the server uses ``parse_async``."""
        body = parse_json(incoming.body)
        previous = wire.previous_response_id(body)
        get = getattr(self.store, "get", None)
        found = get(self.key(incoming.client, previous)) if previous is not None and get is not None else None
        return wire.parse_request(body, _history(previous, found))

    async def parse_async(self, incoming: Incoming) -> ChatRequest:
        body = parse_json(incoming.body)
        previous = wire.previous_response_id(body)
        found = await self.store.fetch(self.key(incoming.client, previous)) if previous is not None else None
        return wire.parse_request(body, _history(previous, found))

    async def settle(self) -> None:
        """Until the responses rendered so far are stored where the next turn may look (another replica)."""
        await self.store.settle()

    def render_response(self, response: ChatResponse, request: ChatRequest, incoming: Incoming) -> bytes:
        status, details = wire.status_for(response.finish_reason)
        if status == "failed":
            raise _unfinished(response.finish_reason)
        response_id = wire.new_id("resp")
        output = wire.output_items(response, status, request.tools)
        body = orjson.dumps(wire.response_object(
            request, response_id=response_id, created_at=response.created or int(time.time()),
            model=response.model or request.model, status=status, output=output, usage=response.usage,
            incomplete_details=details,
        ))
        self._remember(self.key(incoming.client, response_id), request, output, body)
        return body

    def render_stream(
        self, events: AsyncIterator[StreamEvent], request: ChatRequest, incoming: Incoming
    ) -> AsyncIterator[bytes]:
        return self._stream(events, request, incoming.client)

    def render_error(self, error: ProxyError) -> tuple[int, bytes]:
        return render_error(error)

    @staticmethod
    def render_deleted(response_id: str) -> bytes:
        """The answer to ``DELETE /v1/responses/{id}``."""
        return orjson.dumps({"id": response_id, "object": "response.deleted", "deleted": True})

    def _remember(self, key: str, request: ChatRequest, output: list[dict[str, Any]], response: bytes) -> None:
        """Store the conversation this response ends and the response, unless the request said ``store: false``."""
        if wire.wants_store(request):
            history = request.messages[wire.instructions_count(request):]
            self.store.put(key, history + wire.output_messages(output), response)

    async def _stream(self, events: AsyncIterator[StreamEvent], request: ChatRequest,
                      client: str | None) -> AsyncIterator[bytes]:
        """``response.*`` events; a failure mid-stream ends with ``response.failed`` and ``error``."""
        state = _StreamState(request)
        try:
            async for event in events:
                for chunk in state.feed(event):
                    yield chunk
        except ProxyError as error:
            for chunk in state.fail(error):
                yield chunk
            return
        status, details = wire.status_for(state.finish)
        if status == "failed":
            for chunk in state.fail(_unfinished(state.finish)):
                yield chunk
            return
        for chunk in state.close_all(wire.item_status(status)):
            yield chunk
        response = state.final(status, details)
        self._remember(self.key(client, state.id), request, state.items, orjson.dumps(response))
        await self.store.settle()
        yield state.terminal(status, response)


def _unfinished(finish_reason: str | None) -> UpstreamError:
    if finish_reason is None:
        return UpstreamError("The backend ended its answer without saying how it finished.",
                             code="upstream_incomplete")
    return UpstreamError("The backend ended its answer with an error.", code="upstream_error")


class _StreamState:
    """One streamed response: canonical events in, ``response.*`` SSE events out.

    Text and reasoning each stream into one open item at a time (a change of kind closes it);
    each tool call (by its index) is its own ``function_call`` item, open until the end.
    """

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self.id = wire.new_id("resp")
        self.created_at = int(time.time())
        self.model = request.model
        self.sequence = 0
        self.started = False
        self.items: list[dict[str, Any]] = []  # output items, by output index
        self._pieces: list[list[str]] = []  # per item: its text, reasoning text or arguments so far
        self._signatures: dict[int, str] = {}
        self._closed: set[int] = set()
        self._current: int | None = None  # the open message or reasoning item
        self._calls: dict[int, int] = {}  # tool call index → output index
        self._tools = {t.name: t for t in request.tools}  # what each call's item looks like
        self.finish: str | None = None
        self.usage: Usage | None = None

    # -- emitting --

    def _emit(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return encode(orjson.dumps(payload), event=kind)

    def _response(self, status: str, output: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return wire.response_object(self.request, response_id=self.id, created_at=self.created_at,
                                    model=self.model, status=status, output=output, **extra)

    def _start(self) -> list[bytes]:
        self.started = True
        response = self._response("in_progress", [])
        return [self._emit("response.created", response=response),
                self._emit("response.in_progress", response=response)]

    # -- events in --

    def feed(self, event: StreamEvent) -> list[bytes]:
        out: list[bytes] = []
        if isinstance(event, ResponseStart):
            if not self.started:
                self.model = event.model or self.model
                self.created_at = event.created or self.created_at
                out.extend(self._start())
            return out
        if not self.started:
            out.extend(self._start())
        if isinstance(event, TextDelta):
            if event.text:
                out.extend(self._text(event.text))
        elif isinstance(event, ToolCallDelta):
            out.extend(self._tool(event))
        elif isinstance(event, ReasoningDelta):
            out.extend(self._reasoning(event))
        elif isinstance(event, Finish):
            self.finish = event.reason
        elif isinstance(event, UsageReport):
            self.usage = event.usage
        elif isinstance(event, ProviderItem) and event.protocol == wire.PROTOCOL:
            out.extend(self._whole(dict(event.data)))
        return out

    def _whole(self, item: dict[str, Any]) -> list[bytes]:
        """A hosted tool's item, added and done at once (it came whole from the upstream)."""
        out = self._close(self._current, "completed") if self._current is not None else []
        index, added = self._open(item)
        self._closed.add(index)
        out.append(added)
        out.append(self._emit("response.output_item.done", output_index=index, item=item))
        return out

    def _open(self, item: dict[str, Any]) -> tuple[int, bytes]:
        index = len(self.items)
        self.items.append(item)
        self._pieces.append([])
        return index, self._emit("response.output_item.added", output_index=index, item=dict(item))

    def _open_current(self, kind: str) -> tuple[int, list[bytes]]:
        """The open item of ``kind`` ("message" or "reasoning"), opening it (closing another) if needed."""
        current = self._current
        if current is not None and self.items[current]["type"] == kind:
            return current, []
        out = self._close(current, "completed") if current is not None else []
        if kind == "message":
            item = {"id": wire.new_id("msg"), "type": "message", "status": "in_progress", "role": "assistant",
                    "content": []}
            part: dict[str, Any] = wire.output_text_part("")
        else:
            item = {"id": wire.new_id("rs"), "type": "reasoning", "status": "in_progress", "summary": []}
            part = {"type": "reasoning_text", "text": ""}
        index, added = self._open(item)
        out.append(added)
        out.append(self._emit("response.content_part.added", item_id=item["id"], output_index=index,
                              content_index=0, part=part))
        self._current = index
        return index, out

    def _text(self, text: str) -> list[bytes]:
        index, out = self._open_current("message")
        self._pieces[index].append(text)
        out.append(self._emit("response.output_text.delta", item_id=self.items[index]["id"], output_index=index,
                              content_index=0, delta=text, logprobs=[]))
        return out

    def _reasoning(self, event: ReasoningDelta) -> list[bytes]:
        if not event.text:  # a signature alone closes the reasoning block it belongs to
            if event.signature:
                target = self._current if self._current is not None and self.items[
                    self._current]["type"] == "reasoning" else self._last("reasoning")
                if target is None:
                    index, out = self._open_current("reasoning")
                    self._signatures[index] = event.signature
                    return out
                self._signatures[target] = event.signature
            return []
        index, out = self._open_current("reasoning")
        if event.signature:
            self._signatures[index] = event.signature
        self._pieces[index].append(event.text)
        out.append(self._emit("response.reasoning_text.delta", item_id=self.items[index]["id"],
                              output_index=index, content_index=0, delta=event.text))
        return out

    def _last(self, kind: str) -> int | None:
        for index in range(len(self.items) - 1, -1, -1):
            if self.items[index]["type"] == kind:
                return index
        return None

    def _tool(self, event: ToolCallDelta) -> list[bytes]:
        out: list[bytes] = []
        index = self._calls.get(event.index)
        if index is None:
            if self._current is not None:
                out.extend(self._close(self._current, "completed"))
            call_id = event.id or wire.new_id("call")
            call = ToolCall(call_id, event.name or "", "")
            item = tools_wire.call_item(wire.new_id("fc"), call, self._tools.get(call.name), "in_progress")
            index, added = self._open(item)
            out.append(added)
            self._calls[event.index] = index
        elif event.name and not self.items[index].get("name"):
            self.items[index]["name"] = event.name
        if event.arguments:
            self._pieces[index].append(event.arguments)
            if self.items[index]["type"] == "function_call":  # custom and tool_search calls come whole at the end
                out.append(self._emit("response.function_call_arguments.delta", item_id=self.items[index]["id"],
                                      output_index=index, delta=event.arguments))
        return out

    # -- closing --

    def _final(self, index: int, status: str) -> dict[str, Any]:
        """Item ``index`` with everything streamed into it so far."""
        item, text = self.items[index], "".join(self._pieces[index])
        if item["type"] == "message":
            return wire.message_item(item["id"], text, status)
        if item["type"] == "reasoning":
            return wire.reasoning_item(item["id"], text, self._signatures.get(index), status)
        kind = item["type"]
        if kind not in ("function_call", "custom_tool_call", "tool_search_call"):
            return item  # a hosted tool's item, whole
        name = item.get("name", "")
        if item.get("namespace"):
            name = f"{item['namespace']}{tools_wire.SEPARATOR}{name}"
        tool = self._tools.get(name) if kind != "tool_search_call" else self._tools.get(tools_wire.TOOL_SEARCH)
        return tools_wire.call_item(item["id"], ToolCall(item["call_id"], name, text), tool, status)

    def _close(self, index: int, status: str) -> list[bytes]:
        if self._current == index:
            self._current = None
        self._closed.add(index)
        final = self.items[index] = self._final(index, status)
        item_id, kind = final["id"], final["type"]
        out: list[bytes] = []
        if kind == "message":
            text = final["content"][0]["text"]
            out.append(self._emit("response.output_text.done", item_id=item_id, output_index=index,
                                  content_index=0, text=text, logprobs=[]))
            out.append(self._emit("response.content_part.done", item_id=item_id, output_index=index,
                                  content_index=0, part=final["content"][0]))
        elif kind == "reasoning":
            part = final["content"][0]
            out.append(self._emit("response.reasoning_text.done", item_id=item_id, output_index=index,
                                  content_index=0, text=part["text"]))
            out.append(self._emit("response.content_part.done", item_id=item_id, output_index=index,
                                  content_index=0, part=part))
        elif kind == "function_call":
            out.append(self._emit("response.function_call_arguments.done", item_id=item_id, output_index=index,
                                  arguments=final["arguments"]))
        elif kind == "custom_tool_call":
            out.append(self._emit("response.custom_tool_call_input.delta", item_id=item_id, output_index=index,
                                  delta=final["input"]))
            out.append(self._emit("response.custom_tool_call_input.done", item_id=item_id, output_index=index,
                                  input=final["input"]))
        out.append(self._emit("response.output_item.done", output_index=index, item=final))
        return out

    def close_all(self, status: str) -> list[bytes]:
        if not self.started:
            return self._start()
        out: list[bytes] = []
        for index in range(len(self.items)):
            if index not in self._closed:
                out.extend(self._close(index, status))
        return out

    def final(self, status: str, details: dict[str, Any] | None) -> dict[str, Any]:
        """The finished response object."""
        return self._response(status, self.items, usage=self.usage, incomplete_details=details)

    def terminal(self, status: str, response: dict[str, Any]) -> bytes:
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return self._emit(kind, response=response)

    def fail(self, error: ProxyError) -> list[bytes]:
        """``response.failed`` with what had arrived (items marked incomplete), then an ``error`` event.

        The ``error`` event carries OpenAI's fields (code, message, param) and also an ``error``
        object, which is what makes the OpenAI SDKs raise instead of returning a partial answer.
        """
        out = [] if self.started else self._start()
        output = [self.items[i] if i in self._closed else self._final(i, "incomplete")
                  for i in range(len(self.items))]
        code = "rate_limit_exceeded" if error.status == 429 else "server_error"
        failed = self._response("failed", output, usage=self.usage,
                                error=wire.error_object(code, error.message))
        out.append(self._emit("response.failed", response=failed))
        detail = {"type": error_type(error), "code": error.code, "message": error.message, "param": error.param}
        out.append(self._emit("error", code=error.code, message=error.message, param=error.param, error=detail))
        return out
