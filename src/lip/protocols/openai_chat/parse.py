"""OpenAI Chat Completions requests as clients send them → the canonical ChatRequest.

Parsing validates what a client may get wrong and names the field in an InvalidRequest.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from lip.core.errors import InvalidRequest
from lip.core.model import (
    EMPTY,
    ROLES,
    ChatRequest,
    ImagePart,
    Message,
    Part,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
)
from lip.protocols.base import parse_json
from lip.protocols.openai_envelope import invalid_value, missing_parameter

# Body keys that are structure, not generation parameters.
STRUCTURAL = frozenset({"model", "messages", "stream", "stream_options", "tools", "tool_choice"})
_MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id"})
_INT_PARAMS = ("max_tokens", "max_completion_tokens", "n", "seed", "top_k", "top_logprobs")
_NUMBER_PARAMS = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0),
                  "presence_penalty": (-2.0, 2.0), "frequency_penalty": (-2.0, 2.0)}


def parse_request(raw: bytes) -> ChatRequest:
    body = parse_json(raw)
    model = body.get("model", "")
    if not isinstance(model, str):
        raise invalid_value("model", "a string")
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise invalid_value("stream", "a boolean")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise invalid_value("stream_options", "an object")
    parameters = parse_parameters(body)
    if parameters.get("n", 1) != 1:
        raise InvalidRequest("Only n=1 is supported by this proxy.", param="n", code="invalid_value")
    return ChatRequest(
        model=model,
        messages=parse_messages(body.get("messages")),
        stream=bool(stream),
        include_usage=bool(options and options.get("include_usage")),
        tools=parse_tools(body.get("tools")),
        tool_choice=parse_tool_choice(body.get("tool_choice")),
        parameters=parameters,
    )


def parse_messages(raw: Any) -> tuple[Message, ...]:
    if raw is None:
        raise missing_parameter("messages")
    if not isinstance(raw, list):
        raise invalid_value("messages", "an array of message objects")
    if not raw:
        raise InvalidRequest("'messages' must contain at least one message.", param="messages",
                             code="invalid_value")
    return tuple(_parse_message(m, f"messages[{i}]") for i, m in enumerate(raw))


def _parse_message(raw: Any, where: str) -> Message:
    if not isinstance(raw, dict):
        raise invalid_value(where, "a message object")
    role = raw.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise invalid_value(f"{where}.role", "one of " + ", ".join(sorted(ROLES)))
    content = _parse_content(raw.get("content"), f"{where}.content")
    tool_calls = _parse_tool_calls(raw.get("tool_calls"), f"{where}.tool_calls")
    if content is None and not tool_calls and role != "assistant":
        raise missing_parameter(f"{where}.content")
    name, tool_call_id = raw.get("name"), raw.get("tool_call_id")
    if name is not None and not isinstance(name, str):
        raise invalid_value(f"{where}.name", "a string")
    if role == "tool" and not isinstance(tool_call_id, str):
        raise missing_parameter(f"{where}.tool_call_id")
    extras = {k: v for k, v in raw.items() if k not in _MESSAGE_KEYS}
    return Message(role=role, content=content, name=name, tool_calls=tool_calls,
                   tool_call_id=tool_call_id if isinstance(tool_call_id, str) else None,
                   extensions=extras or EMPTY)


def _parse_content(raw: Any, where: str) -> str | tuple[Part, ...] | None:
    if raw is None or isinstance(raw, str):
        return raw
    if not isinstance(raw, list):
        raise invalid_value(where, "a string or an array of content parts")
    parts: list[Part] = []
    for i, part in enumerate(raw):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(TextPart(part["text"]))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise invalid_value(f"{where}[{i}].image_url.url", "a URL string")
            detail = image.get("detail") if isinstance(image, dict) else None
            parts.append(ImagePart(url, detail if isinstance(detail, str) else None))
        else:
            raise invalid_value(f"{where}[{i}]", "a content part of type 'text' (with 'text') or 'image_url'")
    return tuple(parts)


def _parse_tool_calls(raw: Any, where: str) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise invalid_value(where, "an array of tool calls")
    calls = []
    for i, call in enumerate(raw):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise invalid_value(f"{where}[{i}].function", "an object with 'name' and 'arguments'")
        arguments = fn.get("arguments", "")
        if not isinstance(arguments, str):
            raise invalid_value(f"{where}[{i}].function.arguments", "a JSON string")
        call_id = call.get("id") or f"call_{uuid.uuid4().hex[:24]}"
        calls.append(ToolCall(id=str(call_id), name=fn["name"], arguments=arguments))
    return tuple(calls)


def parse_tools(raw: Any) -> tuple[Tool, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise invalid_value("tools", "an array of tool objects")
    tools = []
    for i, tool in enumerate(raw):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise invalid_value(f"tools[{i}].function", "an object with a 'name'")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise invalid_value(f"tools[{i}].function.parameters", "a JSON schema object")
        if fn.get("description") is not None and not isinstance(fn["description"], str):
            raise invalid_value(f"tools[{i}].function.description", "a string")
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
    raise invalid_value("tool_choice",
                        "'auto', 'none', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}")


def parse_parameters(body: Mapping[str, Any]) -> dict[str, Any]:
    """Every non-structural key of the body, with the common ones type-checked."""
    params = {k: v for k, v in body.items() if k not in STRUCTURAL and v is not None}  # null = not set
    for key in _INT_PARAMS:
        value = params.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise invalid_value(key, "a non-negative integer")
    for key, (low, high) in _NUMBER_PARAMS.items():
        value = params.get(key)
        if value is not None and (
            not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high
        ):
            raise invalid_value(key, f"a number between {low:g} and {high:g}")
    stop = params.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
        isinstance(stop, list) and all(isinstance(s, str) for s in stop)
    ):
        raise invalid_value("stop", "a string or an array of strings")
    return params
