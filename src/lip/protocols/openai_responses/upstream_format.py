"""The Responses API as an upstream protocol (``protocol: openai-responses``): canonical request → a
``POST /responses`` body, and the upstream's response object or ``response.*`` events → canonical events.

A Responses client's request reaches such an upstream with everything it carried (hosted tools,
namespaces, custom tools, ``include``, ``store``, ``reasoning``, ``text``, encrypted reasoning items,
hosted tools' items); ``previous_response_id`` is not sent: the proxy keeps the conversation and sends
it whole (the upstream never saw the proxy's response ids). Requests of other protocols are mapped:
system messages become ``developer``/``system`` input messages, tool calls ``function_call`` items,
Anthropic's effort ``reasoning.effort`` (docs/protocols-responses.md, "As an upstream").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from lip.core.errors import ProxyError
from lip.core.model import (
    EMPTY,
    ChatRequest,
    FilePart,
    Finish,
    ImagePart,
    Message,
    ProviderItem,
    ProviderPart,
    ReasoningDelta,
    ReasoningPart,
    ResponseStart,
    StreamEvent,
    TextDelta,
    TextPart,
    Tool,
    ToolCallDelta,
    Usage,
    UsageReport,
    token_count,
)
from lip.protocols import portable
from lip.protocols.openai_responses import tools as tools_wire

PROTOCOL = tools_wire.PROTOCOL
NOT_SENT = frozenset({"previous_response_id", "stream", "instructions", "conversation", "background"})
CALLS = ("function_call", "custom_tool_call", "tool_search_call")


# ---- canonical → wire (requests) ---------------------------------------------------------------


def request_to_wire(request: ChatRequest, model: str) -> dict[str, Any]:
    carried = request.extensions.get(PROTOCOL, EMPTY)
    messages = request.messages
    body: dict[str, Any] = {"model": model}
    instructions = carried.get("instructions")
    if isinstance(instructions, str) and instructions and messages and messages[0].role == "system":
        body["instructions"] = instructions  # the proxy made it the first message: it goes back as it came
        messages = messages[1:]
    # tools that came in additional_tools items go back in such items, at the start of the input
    body["input"] = [*tools_wire.additional_items(request.tools),
                     *input_to_wire(messages, request.tools, PROTOCOL in request.extensions)]
    tools = tools_wire.tools_to_wire(tools_wire.top_level(request.tools))
    if tools:
        body["tools"] = tools
    if request.tool_choice is not None:
        choice = request.tool_choice
        body["tool_choice"] = {"type": "function", "name": choice.name} if choice.mode == "tool" else choice.mode
    params = request.parameters
    if request.max_output_tokens is not None:
        body["max_output_tokens"] = request.max_output_tokens
    for key in ("temperature", "top_p", "parallel_tool_calls"):
        if params.get(key) is not None:
            body[key] = params[key]
    body.update({k: v for k, v in carried.items() if k not in NOT_SENT})
    effort = portable.effort(request)
    if effort is not None:
        reasoning = dict(body.get("reasoning") or {})
        reasoning.setdefault("effort", portable.EFFORT_TO_OPENAI.get(effort, effort))
        body["reasoning"] = reasoning
    fmt = params.get("response_format")
    if isinstance(fmt, Mapping) and "text" not in carried:
        body["text"] = {"format": _text_format(fmt)}
    if request.stream:
        body["stream"] = True
    return body


def _text_format(fmt: Mapping[str, Any]) -> dict[str, Any]:
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), Mapping):
        return {"type": "json_schema", **fmt["json_schema"]}
    return {"type": str(fmt.get("type") or "text")}


def input_to_wire(messages: tuple[Message, ...], tools: tuple[Tool, ...], own: bool) -> list[dict[str, Any]]:
    """Canonical messages as input items; ``own``: the request came in this protocol (its reasoning
    items, encrypted by the same vendor, can be given back)."""
    by_name = {t.name: t for t in tools}
    call_tools: dict[str, Tool | None] = {}
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "assistant":
            _assistant(m, items, own)
            for call in m.tool_calls:
                tool = by_name.get(call.name)
                call_tools[call.id] = tool
                item = tools_wire.call_item("", call, tool, "completed")
                item.pop("id")
                item.pop("status")
                items.append(item)
        elif m.role == "tool":
            items.append(_output(m, call_tools.get(m.tool_call_id or "")))
        else:
            role = m.role if m.role in ("user", "system", "developer") else "user"
            content = _content(m, "input_text")
            items.append({"role": role, "content": content})
            items.extend(dict(p.data) for p in _parts(m) if isinstance(p, ProviderPart) and p.protocol == PROTOCOL)
    return items


def _parts(m: Message) -> tuple[Any, ...]:
    return m.content if isinstance(m.content, tuple) else ()


def _content(m: Message, text_type: str) -> str | list[dict[str, Any]]:
    if isinstance(m.content, str) or m.content is None:
        return m.content or ""
    out: list[dict[str, Any]] = []
    for p in m.content:
        if isinstance(p, TextPart):
            out.append({"type": text_type, "text": p.text})
        elif isinstance(p, ImagePart):
            image: dict[str, Any] = {"type": "input_image", "image_url": p.url}
            if p.detail:
                image["detail"] = p.detail
            out.append(image)
        elif isinstance(p, FilePart):
            out.append(_file(p))
    return out


def _file(p: FilePart) -> dict[str, Any]:
    if p.protocol == PROTOCOL and p.spec is not None:
        return dict(p.spec)
    if p.data is not None:
        return {"type": "input_file", "filename": p.filename or "document.pdf",
                "file_data": f"data:{p.media_type};base64,{p.data}"}
    if p.url is not None:
        return {"type": "input_file", "file_url": p.url}
    return {"type": "input_text", "text": (f"{p.filename}\n\n" if p.filename else "") + p.text}


def _assistant(m: Message, items: list[dict[str, Any]], own: bool) -> None:
    texts: list[str] = []
    for p in _parts(m):
        if isinstance(p, ReasoningPart):
            if own and p.signature:  # another vendor's signature would be refused
                items.append({"type": "reasoning", "encrypted_content": p.signature,
                              "summary": [{"type": "summary_text", "text": p.text}] if p.text else []})
        elif isinstance(p, TextPart):
            texts.append(p.text)
        elif isinstance(p, ProviderPart) and p.protocol == PROTOCOL:
            items.append(dict(p.data))
    if isinstance(m.content, str):
        texts.append(m.content)
    text = "".join(texts)
    if text:
        items.append({"type": "message", "role": "assistant",
                      "content": [{"type": "output_text", "text": text, "annotations": []}]})


def _output(m: Message, tool: Tool | None) -> dict[str, Any]:
    call_id = m.tool_call_id or ""
    if tool is not None and tools_wire.is_tool_search(tool):
        found = _json(m.text())
        return {"type": "tool_search_output", "call_id": call_id, "execution": "client",
                "tools": found if isinstance(found, list) else []}
    kind = "custom_tool_call_output" if tool is not None and tool.kind == "custom" else "function_call_output"
    output: str | list[dict[str, Any]] = m.content if isinstance(m.content, str) else _content(m, "input_text")
    return {"type": kind, "call_id": call_id, "output": output}


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


# ---- wire → canonical (responses) --------------------------------------------------------------


def usage_from_wire(raw: Any) -> Usage | None:
    if not isinstance(raw, Mapping):
        return None
    inputs = raw.get("input_tokens_details") or {}
    outputs = raw.get("output_tokens_details") or {}
    inputs = inputs if isinstance(inputs, Mapping) else {}
    outputs = outputs if isinstance(outputs, Mapping) else {}
    return Usage(input_tokens=token_count(raw.get("input_tokens")), output_tokens=token_count(raw.get("output_tokens")),
                 cached_tokens=token_count(inputs.get("cached_tokens")),
                 reasoning_tokens=token_count(outputs.get("reasoning_tokens")))


def error_of(response: Mapping[str, Any]) -> ProxyError:
    error = response.get("error") if isinstance(response.get("error"), Mapping) else {}
    assert isinstance(error, Mapping)
    return ProxyError(str(error.get("message") or "the upstream's response failed"),
                      code=str(error.get("code") or "upstream_error"), status=502)


def finish_of(response: Mapping[str, Any], called: bool) -> Finish:
    status = response.get("status")
    if status == "incomplete":
        details = response.get("incomplete_details") or {}
        reason = details.get("reason") if isinstance(details, Mapping) else None
        return Finish("content_filter" if reason == "content_filter" else "length")
    return Finish("tool_calls" if called else "stop")


def start_of(response: Mapping[str, Any], fallback_model: str) -> ResponseStart:
    return ResponseStart(id=str(response.get("id") or "resp_lip"), model=str(response.get("model") or fallback_model),
                         created=token_count(response.get("created_at")))


def item_events(item: Mapping[str, Any], call_index: int) -> list[StreamEvent]:
    """A whole output item as events (``call_index``: the canonical index of a call item)."""
    kind = item.get("type")
    if kind == "message":
        texts = [c.get("text") or c.get("refusal") for c in item.get("content") or () if isinstance(c, Mapping)]
        return [TextDelta(t) for t in texts if isinstance(t, str) and t]
    if kind == "reasoning":
        return reasoning_events(item, with_text=True)
    if kind in CALLS:
        call = tools_wire.call_of(item, str(kind), "output")
        return [ToolCallDelta(index=call_index, id=call.id, name=call.name, arguments=call.arguments)]
    return [ProviderItem(PROTOCOL, dict(item))]


def reasoning_events(item: Mapping[str, Any], *, with_text: bool) -> list[StreamEvent]:
    text = ""
    if with_text:
        for key in ("content", "summary"):
            pieces = [p.get("text") for p in item.get(key) or () if isinstance(p, Mapping)]
            text = "\n\n".join(t for t in pieces if isinstance(t, str))
            if text:
                break
    signature = item.get("encrypted_content")
    signature = signature if isinstance(signature, str) and signature else None
    return [ReasoningDelta(text, signature)] if text or signature else []


def response_events(body: Mapping[str, Any], fallback_model: str) -> list[StreamEvent]:
    """A whole response object as the events that would have streamed it."""
    if body.get("status") == "failed":
        raise error_of(body)
    events: list[StreamEvent] = [start_of(body, fallback_model)]
    calls = 0
    for item in body.get("output") or ():
        if isinstance(item, Mapping):
            events.extend(item_events(item, calls))
            calls += item.get("type") in CALLS
    events.append(finish_of(body, calls > 0))
    usage = usage_from_wire(body.get("usage"))
    if usage is not None:
        events.append(UsageReport(usage))
    return events


class StreamReader:
    """``response.*`` events → canonical events; complete at ``response.completed`` / ``.incomplete``."""

    __slots__ = ("_calls", "_custom", "_model", "finished")

    def __init__(self, fallback_model: str) -> None:
        self._model = fallback_model
        self._calls: dict[int, int] = {}  # output index → canonical call index
        self._custom: dict[int, list[str]] = {}  # output index → custom tool input pieces
        self.finished = False

    def feed(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        kind = data.get("type")
        if kind in ("response.output_text.delta", "response.refusal.delta", "response.reasoning_text.delta",
                    "response.reasoning_summary_text.delta"):
            delta = data.get("delta")
            if not isinstance(delta, str) or not delta:
                return []
            return [TextDelta(delta)] if kind in ("response.output_text.delta", "response.refusal.delta") else [
                ReasoningDelta(delta)]
        if kind == "response.function_call_arguments.delta":
            index = self._calls.get(token_count(data.get("output_index")))
            delta = data.get("delta")
            return [ToolCallDelta(index=index, arguments=delta)] if index is not None and isinstance(
                delta, str) and delta else []
        if kind == "response.custom_tool_call_input.delta":
            pieces = self._custom.get(token_count(data.get("output_index")))
            if pieces is not None and isinstance(data.get("delta"), str):
                pieces.append(data["delta"])
            return []
        if kind == "response.output_item.added":
            return self._added(data)
        if kind == "response.output_item.done":
            return self._done(data)
        if kind == "response.created":
            response = data.get("response")
            return [start_of(response if isinstance(response, Mapping) else {}, self._model)]
        if kind in ("response.completed", "response.incomplete"):
            response = data.get("response")
            response = response if isinstance(response, Mapping) else {}
            self.finished = True
            events: list[StreamEvent] = [finish_of(response, bool(self._calls))]
            usage = usage_from_wire(response.get("usage"))
            if usage is not None:
                events.append(UsageReport(usage))
            return events
        if kind == "response.failed":
            response = data.get("response")
            raise error_of(response if isinstance(response, Mapping) else {})
        if kind == "error":
            raise ProxyError(str(data.get("message") or "upstream error"), code=str(data.get("code") or
                                                                                     "upstream_error"), status=502)
        return []

    def _added(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        item = data.get("item")
        if not isinstance(item, Mapping) or item.get("type") not in CALLS:
            return []
        output_index = token_count(data.get("output_index"))
        index = self._calls[output_index] = len(self._calls)
        kind = item.get("type")
        if kind == "function_call":
            call = tools_wire.call_of({**item, "arguments": ""}, "function_call", "output")
            return [ToolCallDelta(index=index, id=call.id, name=call.name, arguments=item.get("arguments") or "")]
        self._custom[output_index] = []
        return []  # custom and tool_search calls are told whole when done

    def _done(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        item = data.get("item")
        if not isinstance(item, Mapping):
            return []
        kind = item.get("type")
        output_index = token_count(data.get("output_index"))
        if kind == "reasoning":
            return reasoning_events(item, with_text=False)  # its text streamed already
        if kind in ("custom_tool_call", "tool_search_call"):
            pieces = self._custom.pop(output_index, [])
            whole = dict(item)
            if kind == "custom_tool_call" and not isinstance(whole.get("input"), str):
                whole["input"] = "".join(pieces)
            index = self._calls.get(output_index, len(self._calls))
            return item_events(whole, index)
        if kind in ("message", "function_call"):
            return []
        return [ProviderItem(PROTOCOL, dict(item))]
