"""OpenAI Chat Completions wire format ⇄ canonical model, in both directions.

Shared by the OpenAI frontend (client side) and the OpenAI backend (upstream side) so the
format is written down once. Parsing validates what a client may get wrong and names the
field in an InvalidRequest; rendering trusts the canonical model.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from lip.core.errors import InvalidRequest
from lip.core.model import (
    EMPTY,
    ROLES,
    FilePart,
    Finish,
    ImagePart,
    Message,
    Part,
    ProviderPart,
    ReasoningDelta,
    ReasoningPart,
    ResponseStart,
    StreamEvent,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
    UsageReport,
    token_count,
)

# Keys of Message.extensions holding another protocol's message-level keys (never sent to OpenAI).
FOREIGN = frozenset({"anthropic", "anthropic.tool_result", "openai-responses", "gemini"})
# Body keys that are structure, not generation parameters.
STRUCTURAL = frozenset({"model", "messages", "stream", "stream_options", "tools", "tool_choice"})
_MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id"})
_INT_PARAMS = ("max_tokens", "max_completion_tokens", "n", "seed", "top_k", "top_logprobs")
_NUMBER_PARAMS = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0),
                  "presence_penalty": (-2.0, 2.0), "frequency_penalty": (-2.0, 2.0)}


def _fail(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid value for '{param}': expected {expected}.", param=param,
                          code="invalid_value")


# ---- client → canonical ------------------------------------------------------------------------


def parse_messages(raw: Any) -> tuple[Message, ...]:
    if raw is None:
        raise InvalidRequest("Missing required parameter: 'messages'.", param="messages",
                             code="missing_required_parameter")
    if not isinstance(raw, list):
        raise _fail("messages", "an array of message objects")
    if not raw:
        raise InvalidRequest("'messages' must contain at least one message.", param="messages",
                             code="invalid_value")
    return tuple(_parse_message(m, f"messages[{i}]") for i, m in enumerate(raw))


def _parse_message(raw: Any, where: str) -> Message:
    if not isinstance(raw, dict):
        raise _fail(where, "a message object")
    role = raw.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise _fail(f"{where}.role", "one of " + ", ".join(sorted(ROLES)))
    content = _parse_content(raw.get("content"), f"{where}.content")
    tool_calls = _parse_tool_calls(raw.get("tool_calls"), f"{where}.tool_calls")
    if content is None and not tool_calls and role != "assistant":
        raise InvalidRequest(f"Missing required parameter: '{where}.content'.", param=f"{where}.content",
                             code="missing_required_parameter")
    name, tool_call_id = raw.get("name"), raw.get("tool_call_id")
    if name is not None and not isinstance(name, str):
        raise _fail(f"{where}.name", "a string")
    if role == "tool" and not isinstance(tool_call_id, str):
        raise InvalidRequest(f"Missing required parameter: '{where}.tool_call_id'.",
                             param=f"{where}.tool_call_id", code="missing_required_parameter")
    extras = {k: v for k, v in raw.items() if k not in _MESSAGE_KEYS}
    return Message(role=role, content=content, name=name, tool_calls=tool_calls,
                   tool_call_id=tool_call_id if isinstance(tool_call_id, str) else None,
                   extensions=extras or EMPTY)


def _parse_content(raw: Any, where: str) -> str | tuple[Part, ...] | None:
    if raw is None or isinstance(raw, str):
        return raw
    if not isinstance(raw, list):
        raise _fail(where, "a string or an array of content parts")
    parts: list[Part] = []
    for i, part in enumerate(raw):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(TextPart(part["text"]))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise _fail(f"{where}[{i}].image_url.url", "a URL string")
            detail = image.get("detail") if isinstance(image, dict) else None
            parts.append(ImagePart(url, detail if isinstance(detail, str) else None))
        else:
            raise _fail(f"{where}[{i}]", "a content part of type 'text' (with 'text') or 'image_url'")
    return tuple(parts)


def _parse_tool_calls(raw: Any, where: str) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail(where, "an array of tool calls")
    calls = []
    for i, call in enumerate(raw):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _fail(f"{where}[{i}].function", "an object with 'name' and 'arguments'")
        arguments = fn.get("arguments", "")
        if not isinstance(arguments, str):
            raise _fail(f"{where}[{i}].function.arguments", "a JSON string")
        call_id = call.get("id") or f"call_{uuid.uuid4().hex[:24]}"
        calls.append(ToolCall(id=str(call_id), name=fn["name"], arguments=arguments))
    return tuple(calls)


def parse_tools(raw: Any) -> tuple[Tool, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail("tools", "an array of tool objects")
    tools = []
    for i, tool in enumerate(raw):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _fail(f"tools[{i}].function", "an object with a 'name'")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise _fail(f"tools[{i}].function.parameters", "a JSON schema object")
        if fn.get("description") is not None and not isinstance(fn["description"], str):
            raise _fail(f"tools[{i}].function.description", "a string")
        extras = {k: v for k, v in fn.items() if k not in {"name", "description", "parameters"}}
        tools.append(Tool(name=fn["name"], description=fn.get("description"), parameters=params,
                          extensions=extras or EMPTY))
    return tuple(tools)


def parse_tool_choice(raw: Any) -> ToolChoice | None:
    if raw is None:
        return None
    if raw in ("auto", "none", "required"):
        return ToolChoice(raw)
    if isinstance(raw, dict):
        fn = raw.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return ToolChoice("tool", fn["name"])
    raise _fail("tool_choice", "'auto', 'none', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}")


def tool_choice_to_wire(choice: ToolChoice) -> Any:
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def parse_parameters(body: Mapping[str, Any]) -> dict[str, Any]:
    """Every non-structural key of the body, with the common ones type-checked."""
    params = {k: v for k, v in body.items() if k not in STRUCTURAL and v is not None}  # null = not set
    for key in _INT_PARAMS:
        value = params.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise _fail(key, "a non-negative integer")
    for key, (low, high) in _NUMBER_PARAMS.items():
        value = params.get(key)
        if value is not None and (
            not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high
        ):
            raise _fail(key, f"a number between {low:g} and {high:g}")
    stop = params.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
        isinstance(stop, list) and all(isinstance(s, str) for s in stop)
    ):
        raise _fail("stop", "a string or an array of strings")
    return params


# ---- canonical → wire (requests) ---------------------------------------------------------------


def message_to_wire(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role}
    if m.content is None or isinstance(m.content, str):
        out["content"] = m.content
    else:
        # Reasoning is not replayed to OpenAI; other protocols' server-tool blocks have no place here.
        parts = [p for p in m.content if not isinstance(p, ReasoningPart | ProviderPart)]
        if parts and all(isinstance(p, TextPart) for p in parts) and m.role != "user":
            out["content"] = "".join(p.text for p in parts if isinstance(p, TextPart))
        else:
            out["content"] = [_part_to_wire(p) for p in parts] or (None if m.tool_calls else "")
    if m.name is not None:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    if m.extensions:  # an OpenAI client's own message keys; other protocols' are kept under their name
        out.update({k: v for k, v in m.extensions.items() if k not in FOREIGN})
    return out


def _part_to_wire(p: Part) -> dict[str, Any]:
    if isinstance(p, TextPart):
        return {"type": "text", "text": p.text}
    if isinstance(p, ReasoningPart):
        return {"type": "text", "text": p.text}  # OpenAI has no reasoning input part
    if isinstance(p, FilePart):
        return file_to_wire(p)
    if isinstance(p, ProviderPart):
        return {"type": "text", "text": p.text}
    image: dict[str, Any] = {"url": p.url}
    if p.detail:
        image["detail"] = p.detail
    return {"type": "image_url", "image_url": image}


def file_to_wire(p: FilePart) -> dict[str, Any]:
    """A document as a ``file`` part (base64 as a data URL), or as text when it is text."""
    if p.data is not None:
        file: dict[str, Any] = {"file_data": f"data:{p.media_type};base64,{p.data}"}
        file["filename"] = p.filename or ("document.pdf" if p.media_type == "application/pdf" else "document")
        return {"type": "file", "file": file}
    if p.url is not None:
        raise InvalidRequest(
            f"A document given by URL ({p.url[:200]}) cannot be sent to an OpenAI Chat Completions upstream, "
            "which takes files only inline; send the document as base64 data, or route to an Anthropic, "
            "Gemini or OpenAI Responses backend.", param="messages", code="unsupported_document_url",
        )
    title = f"{p.filename}\n\n" if p.filename else ""
    return {"type": "text", "text": title + p.text}


def tool_to_wire(t: Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name}
    if t.description is not None:
        fn["description"] = t.description
    if t.parameters is not None:
        fn["parameters"] = t.parameters
    fn.update(t.extensions)
    return {"type": "function", "function": fn}


# ---- wire → canonical (responses) --------------------------------------------------------------


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


def needs_max_completion_tokens(model: str) -> bool:
    """OpenAI's reasoning models reject ``max_tokens`` and take ``max_completion_tokens``."""
    name = model.rsplit("/", 1)[-1].lower()
    return name.startswith(("o1", "o3", "o4", "gpt-5"))


def usage_to_wire(u: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
                           "total_tokens": u.total_tokens}
    if u.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": u.cached_tokens}
    if u.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": u.reasoning_tokens}
    return out
