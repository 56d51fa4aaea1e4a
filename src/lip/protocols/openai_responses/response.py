"""Responses ``response`` objects ⇄ canonical events: a canonical answer rendered as the output items
and ``response`` object a client gets, and an upstream's ``response`` object (or one output item of its
stream) read as canonical events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lip.core.model import (
    ChatRequest,
    ChatResponse,
    Finish,
    ProviderItem,
    ProviderState,
    ReasoningDelta,
    ResponseStart,
    StreamEvent,
    TextDelta,
    Tool,
    ToolCallDelta,
    ToolChoice,
    Usage,
    UsageReport,
    token_count,
)
from lip.core.opaque import signature_text
from lip.protocols.openai_responses import errors
from lip.protocols.openai_responses import tools as tools_wire
from lip.protocols.openai_responses.common import CALL_ITEMS, PROTOCOL, carried, new_id

# ---- canonical → wire (for clients) ------------------------------------------------------------


def usage_to_wire(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def status_for(finish_reason: str | None) -> tuple[str, dict[str, Any] | None]:
    """The response status and ``incomplete_details`` for a finish reason."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    if finish_reason == "error" or finish_reason is None:
        return "failed", None
    return "completed", None


def item_status(status: str) -> str:
    return "completed" if status == "completed" else "incomplete"


def output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [output_text_part(text)]}


def reasoning_item(item_id: str, text: str, signature: ProviderState | None, status: str) -> dict[str, Any]:
    """A reasoning item, its signature as ``encrypted_content`` (another protocol's folded)."""
    item: dict[str, Any] = {"id": item_id, "type": "reasoning", "status": status, "summary": [],
                            "content": [{"type": "reasoning_text", "text": text}]}
    if signature is not None:
        item["encrypted_content"] = signature_text(signature, PROTOCOL)
    return item


def output_items(response: ChatResponse, status: str, tools: tuple[Tool, ...] = ()) -> list[dict[str, Any]]:
    """A whole answer as output items: reasoning, hosted tools' items, the message, then tool calls
    (each as the item its tool expects: a function call, a namespaced one, a custom tool call, ...)."""
    state = item_status(status)
    items: list[dict[str, Any]] = []
    if response.reasoning or response.reasoning_signature is not None:
        items.append(reasoning_item(new_id("rs"), response.reasoning, response.reasoning_signature, state))
    items.extend(dict(item.data) for item in response.items if item.protocol == PROTOCOL)
    if response.text or not response.tool_calls:
        items.append(message_item(new_id("msg"), response.text, state))
    by_name = {t.name: t for t in tools}
    for call in response.tool_calls:
        items.append(tools_wire.call_item(new_id("fc"), call, by_name.get(call.name), state))
    return items


def tool_to_wire(tool: Tool) -> dict[str, Any]:
    """One tool as a Responses tool object (see ``tools.tools_to_wire`` for a list)."""
    return tools_wire.tools_to_wire((tool,))[0]


def tool_choice_to_wire(choice: ToolChoice | None) -> Any:
    if choice is None:
        return "auto"
    if choice.mode == "tool":
        return {"type": "function", "name": choice.name}
    return choice.mode


def response_object(
    request: ChatRequest,
    *,
    response_id: str,
    created_at: int,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None = None,
    incomplete_details: Mapping[str, Any] | None = None,
    error: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``response`` object, echoing the request's settings as OpenAI does."""
    body = carried(request)
    params = request.parameters
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": dict(error) if error is not None else None,
        "incomplete_details": dict(incomplete_details) if incomplete_details is not None else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": params.get("max_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": params.get("temperature"),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": tool_choice_to_wire(request.tool_choice),
        "tools": tools_wire.tools_to_wire(tools_wire.top_level(request.tools)),
        "top_p": params.get("top_p"),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage_to_wire(usage),
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


# ---- wire → canonical (from upstreams) ---------------------------------------------------------


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
    if kind in CALL_ITEMS:
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
    state = ProviderState(PROTOCOL, signature) if isinstance(signature, str) and signature else None
    return [ReasoningDelta(text, state)] if text or state is not None else []


def response_events(body: Mapping[str, Any], fallback_model: str) -> list[StreamEvent]:
    """A whole response object as the events that would have streamed it."""
    if body.get("status") == "failed":
        raise errors.error_of(body)
    events: list[StreamEvent] = [start_of(body, fallback_model)]
    calls = 0
    for item in body.get("output") or ():
        if isinstance(item, Mapping):
            events.extend(item_events(item, calls))
            calls += item.get("type") in CALL_ITEMS
    events.append(finish_of(body, calls > 0))
    usage = usage_from_wire(body.get("usage"))
    if usage is not None:
        events.append(UsageReport(usage))
    return events
