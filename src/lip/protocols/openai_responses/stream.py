"""The ``response.*`` events a Responses client streams: canonical events in, SSE events out, one output
item at a time; a failure ends the stream with ``response.failed`` and ``error``."""

from __future__ import annotations

import time
from typing import Any

import orjson

from lip.core.errors import ProxyError
from lip.core.model import (
    ChatRequest,
    Finish,
    ProviderItem,
    ProviderState,
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
from lip.protocols.openai_responses import errors
from lip.protocols.openai_responses import response as wire
from lip.protocols.openai_responses import tools as tools_wire
from lip.protocols.openai_responses.common import PROTOCOL, new_id


class StreamWriter:
    """One streamed response: canonical events in, ``response.*`` SSE events out.

    Text and reasoning each stream into one open item at a time (a change of kind closes it);
    each tool call (by its index) is its own ``function_call`` item, open until the end.
    """

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self.id = new_id("resp")
        self.created_at = int(time.time())
        self.model = request.model
        self.sequence = 0
        self.started = False
        self.items: list[dict[str, Any]] = []  # output items, by output index
        self._pieces: list[list[str]] = []  # per item: its text, reasoning text or arguments so far
        self._signatures: dict[int, ProviderState] = {}
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
        elif isinstance(event, ProviderItem) and event.protocol == PROTOCOL:
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
            item = {"id": new_id("msg"), "type": "message", "status": "in_progress", "role": "assistant",
                    "content": []}
            part: dict[str, Any] = wire.output_text_part("")
        else:
            item = {"id": new_id("rs"), "type": "reasoning", "status": "in_progress", "summary": []}
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
            if event.signature is not None:
                target = self._current if self._current is not None and self.items[
                    self._current]["type"] == "reasoning" else self._last("reasoning")
                if target is None:
                    index, out = self._open_current("reasoning")
                    self._signatures[index] = event.signature
                    return out
                self._signatures[target] = event.signature
            return []
        index, out = self._open_current("reasoning")
        if event.signature is not None:
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
            call_id = event.id or new_id("call")
            call = ToolCall(call_id, event.name or "", "")
            item = tools_wire.call_item(new_id("fc"), call, self._tools.get(call.name), "in_progress")
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
        failed = self._response("failed", output, usage=self.usage, error=errors.failed_object(error))
        out.append(self._emit("response.failed", response=failed))
        out.append(self._emit("error", **errors.error_event(error)))
        return out
