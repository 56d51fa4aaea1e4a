"""OpenAI Chat Completions answers ⇄ canonical events: an upstream's ``chat.completion`` and its
``chat.completion.chunk`` events read as events, a canonical answer rendered for a client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lip.core.model import (
    ChatResponse,
    Finish,
    ReasoningDelta,
    ResponseStart,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
    token_count,
)


def usage_from_wire(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    output_details = raw.get("completion_tokens_details")
    reasoning = output_details.get("reasoning_tokens", 0) if isinstance(output_details, dict) else 0
    return Usage(input_tokens=token_count(raw.get("prompt_tokens")),
                 output_tokens=token_count(raw.get("completion_tokens")),
                 cached_tokens=token_count(cached), reasoning_tokens=token_count(reasoning))


def completion_events(body: Mapping[str, Any], fallback_model: str) -> list[StreamEvent]:
    """A whole chat.completion object as the events that would have streamed it."""
    events: list[StreamEvent] = [_start(body, fallback_model)]
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        events.append(ReasoningDelta(reasoning))
    if isinstance(message.get("content"), str) and message["content"]:
        events.append(TextDelta(message["content"]))
    for i, call in enumerate(message.get("tool_calls") or ()):
        fn = call.get("function") or {}
        events.append(ToolCallDelta(index=i, id=call.get("id"), name=fn.get("name"),
                                    arguments=fn.get("arguments") or ""))
    events.append(Finish(choice.get("finish_reason") or "stop"))
    usage = usage_from_wire(body.get("usage"))
    if usage is not None:
        events.append(UsageReport(usage))
    return events


def _start(chunk: Mapping[str, Any], fallback_model: str) -> ResponseStart:
    return ResponseStart(id=str(chunk.get("id") or "chatcmpl-lip"),
                         model=str(chunk.get("model") or fallback_model),
                         created=token_count(chunk.get("created")))


def chunk_events(chunk: Mapping[str, Any], first: bool, fallback_model: str) -> list[StreamEvent]:
    """One chat.completion.chunk as events; ``first`` adds the ResponseStart."""
    events: list[StreamEvent] = [_start(chunk, fallback_model)] if first else []
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            events.append(ReasoningDelta(reasoning))
        content = delta.get("content")
        if isinstance(content, str) and content:
            events.append(TextDelta(content))
        for call in delta.get("tool_calls") or ():
            fn = call.get("function") or {}
            events.append(ToolCallDelta(index=int(call.get("index") or 0), id=call.get("id"),
                                        name=fn.get("name"), arguments=fn.get("arguments") or ""))
        if choice.get("finish_reason"):
            events.append(Finish(choice["finish_reason"]))
    usage = usage_from_wire(chunk.get("usage"))
    if usage is not None:
        events.append(UsageReport(usage))
    return events


def usage_to_wire(u: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
                           "total_tokens": u.total_tokens}
    if u.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": u.cached_tokens}
    if u.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": u.reasoning_tokens}
    return out


def response_body(response: ChatResponse) -> dict[str, Any]:
    """A whole answer as a ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": response.text or None}
    if response.reasoning:
        message["reasoning_content"] = response.reasoning
    if response.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in response.tool_calls
        ]
    elif message["content"] is None:
        message["content"] = ""
    body: dict[str, Any] = {
        "id": response.id,
        "object": "chat.completion",
        "created": response.created,
        "model": response.model,
        "choices": [{"index": 0, "message": message, "finish_reason": response.finish_reason or "stop",
                     "logprobs": None}],
    }
    if response.usage is not None:
        body["usage"] = usage_to_wire(response.usage)
    return body
