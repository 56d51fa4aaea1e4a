"""Anthropic Messages wire format ⇄ canonical model, in both directions.

Shared by the Anthropic frontend (client side: parse requests, render messages, events and errors)
and the Anthropic backend (upstream side: render requests, read messages and events) so the format
is written down once. Parsing of client requests validates what a client may get wrong and names
the field the way Anthropic does (``messages.1.content.0.type``); everything else trusts the
canonical model. See docs/protocols-anthropic.md for the mapping, field by field.

Usage: Anthropic's ``input_tokens`` excludes cache reads and cache writes; the canonical
``Usage.input_tokens`` (OpenAI's ``prompt_tokens``) includes them, and ``cached_tokens`` is the
cache-read part. Reading adds them up; rendering subtracts the cache reads again.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from lip.core.errors import InvalidRequest, LimitExceeded, ProxyError, UpstreamStatus
from lip.core.model import (
    EMPTY,
    ChatRequest,
    ChatResponse,
    Finish,
    ImagePart,
    Message,
    Part,
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
)

PROTOCOL = "anthropic"  # key of ChatRequest.extensions holding Anthropic-only body keys
VERSION = "2023-06-01"  # the anthropic-version header every upstream request needs (set by the preset)
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; sent when neither client nor limits set one
# A redacted_thinking block has no canonical part of its own: it travels as a ReasoningPart (or a
# ReasoningDelta) with empty text and this prefix before its opaque ``data`` in ``signature``.
# Other protocols never send reasoning parts upstream, so the marker only reaches Anthropic again.
REDACTED = "redacted_thinking:"
# OpenAI's ``reasoning_effort`` as Anthropic's ``output_config.effort`` (low, medium, high, xhigh, max).
EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "max"}

# Client body keys with a canonical meaning; every other key is kept in extensions["anthropic"].
STRUCTURAL = frozenset({
    "model", "messages", "system", "stream", "max_tokens", "temperature", "top_p", "top_k",
    "stop_sequences", "tools", "tool_choice",
})
# Canonical parameters that an Anthropic upstream receives under the same name when set (from
# backend.yaml model parameters, for example). Names that OpenAI also uses with another meaning
# (metadata, service_tier) are not among them; OpenAI-only parameters are not sent at all.
NATIVE_PARAMETERS = (
    "top_k", "thinking", "stop_sequences", "container", "mcp_servers", "context_management",
    "output_config", "inference_geo", "speed", "cache_control",
)

STOP_FROM_WIRE = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}
STOP_TO_WIRE = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "content_filter": "refusal", "error": "end_turn"}

ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}
ERROR_STATUSES = {kind: status for status, kind in ERROR_TYPES.items()}

_DATA_URL = re.compile(r"^data:([^;,]+)(?:;[^;,=]+=[^;,]*)*;base64,(.*)$", re.DOTALL)
_USER_BLOCKS = "'text', 'image' or 'tool_result'"
_ASSISTANT_BLOCKS = "'text', 'thinking', 'redacted_thinking' or 'tool_use'"


def _fail(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: expected {expected}.", param=param, code="invalid_value")


def _missing(param: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: Field required.", param=param, code="missing_required_parameter")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---- client → canonical ------------------------------------------------------------------------


def parse_request(body: Mapping[str, Any]) -> ChatRequest:
    """A Messages (or count_tokens) body as the canonical request.

    ``max_tokens`` is not required here (count_tokens has none; the proxy fills a model's limit).
    """
    model = body.get("model", "")
    if not isinstance(model, str):
        raise _fail("model", "a string")
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise _fail("stream", "a boolean")
    messages = (*parse_system(body.get("system")), *parse_messages(body.get("messages")))
    choice, parallel = parse_tool_choice(body.get("tool_choice"))
    parameters = parse_parameters(body)
    if parallel is False:
        parameters["parallel_tool_calls"] = False
    extras = {k: v for k, v in body.items() if k not in STRUCTURAL and v is not None}
    return ChatRequest(
        model=model,
        messages=messages,
        stream=bool(stream),
        include_usage=True,  # Anthropic streams always carry usage
        tools=parse_tools(body.get("tools")),
        tool_choice=choice,
        parameters=parameters,
        extensions={PROTOCOL: extras} if extras else EMPTY,
    )


def parse_parameters(body: Mapping[str, Any]) -> dict[str, Any]:
    """max_tokens, temperature, top_p, top_k and stop_sequences under their canonical names."""
    params: dict[str, Any] = {}
    max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        if not _is_int(max_tokens) or max_tokens < 1:
            raise _fail("max_tokens", "an integer of at least 1")
        params["max_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None:
            if not _is_number(value) or not 0 <= value <= 1:
                raise _fail(key, "a number between 0 and 1")
            params[key] = value
    top_k = body.get("top_k")
    if top_k is not None:
        if not _is_int(top_k) or top_k < 0:
            raise _fail("top_k", "a non-negative integer")
        params["top_k"] = top_k
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise _fail("stop_sequences", "an array of strings")
        if stop:
            params["stop"] = list(stop)
    return params


def parse_system(raw: Any) -> list[Message]:
    """``system`` as leading system messages: one per text block, so blocks stay apart."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        return [Message("system", raw)]
    if not isinstance(raw, list):
        raise _fail("system", "a string or an array of text blocks")
    messages = []
    for i, block in enumerate(raw):
        where = f"system.{i}"
        if not isinstance(block, dict):
            raise _fail(where, "a text block")
        if block.get("type") != "text":
            raise _fail(f"{where}.type", "'text'")
        text = block.get("text")
        if not isinstance(text, str):
            raise _fail(f"{where}.text", "a string")
        messages.append(Message("system", text))
    return messages


def parse_messages(raw: Any) -> tuple[Message, ...]:
    if raw is None:
        raise _missing("messages")
    if not isinstance(raw, list):
        raise _fail("messages", "an array of message objects")
    if not raw:
        raise InvalidRequest("messages: at least one message is required.", param="messages",
                             code="invalid_value")
    out: list[Message] = []
    for i, message in enumerate(raw):
        out.extend(_parse_message(message, f"messages.{i}"))
    return tuple(out)


def _parse_message(raw: Any, where: str) -> list[Message]:
    if not isinstance(raw, dict):
        raise _fail(where, "a message object")
    role = raw.get("role")
    if role not in ("user", "assistant"):
        raise _fail(f"{where}.role", "'user' or 'assistant'")
    if "content" not in raw:
        raise _missing(f"{where}.content")
    content = raw["content"]
    if isinstance(content, str):
        return [Message(role, content)]
    if not isinstance(content, list):
        raise _fail(f"{where}.content", "a string or an array of content blocks")
    if role == "user":
        return _parse_user_blocks(content, f"{where}.content")
    return [_parse_assistant_blocks(content, f"{where}.content")]


def _block_type(block: Any, where: str) -> str:
    if not isinstance(block, dict):
        raise _fail(where, "a content block object")
    kind = block.get("type")
    if not isinstance(kind, str):
        raise _missing(f"{where}.type")
    return kind


def _unsupported(kind: str, where: str, allowed: str) -> InvalidRequest:
    return InvalidRequest(
        f"{where}.type: content blocks of type '{kind}' are not supported by this proxy here; "
        f"expected {allowed}.",
        param=f"{where}.type",
        code="invalid_value",
    )


def _text_of(block: Mapping[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise _fail(f"{where}.text", "a string")
    return text


def _parse_user_blocks(blocks: list[Any], where: str) -> list[Message]:
    """User blocks in order; each tool_result becomes a tool message of its own."""
    out: list[Message] = []
    parts: list[Part] = []
    for i, block in enumerate(blocks):
        at = f"{where}.{i}"
        kind = _block_type(block, at)
        if kind == "text":
            parts.append(TextPart(_text_of(block, at)))
        elif kind == "image":
            parts.append(_parse_image(block, at))
        elif kind == "tool_result":
            if parts:
                out.append(Message("user", tuple(parts)))
                parts = []
            out.append(_parse_tool_result(block, at))
        else:
            raise _unsupported(kind, at, _USER_BLOCKS)
    if parts or not out:
        out.append(Message("user", tuple(parts)))
    return out


def _parse_image(block: Mapping[str, Any], where: str) -> ImagePart:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _missing(f"{where}.source")
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str):
            raise _fail(f"{where}.source.media_type", "a media type such as 'image/png'")
        if not isinstance(data, str):
            raise _fail(f"{where}.source.data", "base64 text")
        return ImagePart(f"data:{media};base64,{data}")
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str):
            raise _fail(f"{where}.source.url", "a URL string")
        return ImagePart(url)
    raise _fail(f"{where}.source.type", "'base64' or 'url'")


def _parse_tool_result(block: Mapping[str, Any], where: str) -> Message:
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str):
        raise _missing(f"{where}.tool_use_id")
    raw = block.get("content")
    content: str | tuple[Part, ...]
    if raw is None:
        content = ""
    elif isinstance(raw, str):
        content = raw
    elif isinstance(raw, list):
        parts: list[Part] = []
        for i, inner in enumerate(raw):
            at = f"{where}.content.{i}"
            kind = _block_type(inner, at)
            if kind == "text":
                parts.append(TextPart(_text_of(inner, at)))
            elif kind == "image":
                parts.append(_parse_image(inner, at))
            else:
                raise _unsupported(kind, at, "'text' or 'image'")
        only_text = all(isinstance(p, TextPart) for p in parts)
        content = "\n".join(p.text for p in parts if isinstance(p, TextPart)) if only_text else tuple(parts)
    else:
        raise _fail(f"{where}.content", "a string or an array of text and image blocks")
    return Message("tool", content, tool_call_id=tool_use_id)


def _parse_assistant_blocks(blocks: list[Any], where: str) -> Message:
    parts: list[Part] = []
    calls: list[ToolCall] = []
    for i, block in enumerate(blocks):
        at = f"{where}.{i}"
        kind = _block_type(block, at)
        if kind == "text":
            parts.append(TextPart(_text_of(block, at)))
        elif kind == "thinking":
            thinking, signature = block.get("thinking"), block.get("signature")
            if not isinstance(thinking, str):
                raise _fail(f"{at}.thinking", "a string")
            if signature is not None and not isinstance(signature, str):
                raise _fail(f"{at}.signature", "a string")
            parts.append(ReasoningPart(thinking, signature or None))
        elif kind == "redacted_thinking":
            data = block.get("data")
            if not isinstance(data, str):
                raise _fail(f"{at}.data", "a string")
            parts.append(ReasoningPart("", REDACTED + data))
        elif kind == "tool_use":
            call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
            if not isinstance(call_id, str):
                raise _missing(f"{at}.id")
            if not isinstance(name, str):
                raise _missing(f"{at}.name")
            if not isinstance(arguments, dict):
                raise _fail(f"{at}.input", "an object")
            calls.append(ToolCall(call_id, name, orjson.dumps(arguments).decode()))
        else:
            raise _unsupported(kind, at, _ASSISTANT_BLOCKS)
    content: str | tuple[Part, ...] | None = tuple(parts) if parts else None
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        content = parts[0].text
    return Message("assistant", content, tool_calls=tuple(calls))


def parse_tools(raw: Any) -> tuple[Tool, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail("tools", "an array of tool objects")
    tools = []
    for i, tool in enumerate(raw):
        where = f"tools.{i}"
        if not isinstance(tool, dict):
            raise _fail(where, "a tool object")
        kind = tool.get("type")
        if kind not in (None, "custom"):
            raise InvalidRequest(
                f"{where}.type: server tools ('{kind}') are not supported by this proxy; "
                "define client tools with name, description and input_schema.",
                param=f"{where}.type", code="invalid_value",
            )
        name, schema, description = tool.get("name"), tool.get("input_schema"), tool.get("description")
        if not isinstance(name, str) or not name:
            raise _missing(f"{where}.name")
        if schema is None:
            raise _missing(f"{where}.input_schema")
        if not isinstance(schema, dict):
            raise _fail(f"{where}.input_schema", "a JSON schema object")
        if description is not None and not isinstance(description, str):
            raise _fail(f"{where}.description", "a string")
        tools.append(Tool(name=name, description=description, parameters=schema))
    return tuple(tools)


def parse_tool_choice(raw: Any) -> tuple[ToolChoice | None, bool | None]:
    """The choice, and False when ``disable_parallel_tool_use`` is set (canonical parallel_tool_calls)."""
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        raise _fail("tool_choice", "an object such as {\"type\": \"auto\"}")
    kind = raw.get("type")
    disable = raw.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise _fail("tool_choice.disable_parallel_tool_use", "a boolean")
    parallel = False if disable else None
    if kind == "auto":
        return ToolChoice("auto"), parallel
    if kind == "any":
        return ToolChoice("required"), parallel
    if kind == "none":
        return ToolChoice("none"), parallel
    if kind == "tool":
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise _missing("tool_choice.name")
        return ToolChoice("tool", name), parallel
    raise _fail("tool_choice.type", "'auto', 'any', 'tool' or 'none'")


# ---- canonical → wire (requests) ---------------------------------------------------------------


def request_to_wire(request: ChatRequest, model: str) -> dict[str, Any]:
    """The upstream body: canonical fields translated, Anthropic-only client keys merged in last."""
    params = request.parameters
    system, messages = messages_to_wire(request.messages)
    body: dict[str, Any] = {"model": model, "messages": messages,
                            "max_tokens": request.max_output_tokens or DEFAULT_MAX_TOKENS}
    if system:
        body["system"] = system
    if request.tools:
        body["tools"] = [tool_to_wire(t) for t in request.tools]
        choice = tool_choice_to_wire(request.tool_choice) if request.tool_choice else None
        if params.get("parallel_tool_calls") is False and (choice is None or choice["type"] != "none"):
            choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        if choice is not None:
            body["tool_choice"] = choice
    temperature = params.get("temperature")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        body["temperature"] = min(max(float(temperature), 0.0), 1.0)  # OpenAI allows up to 2
    if _is_number(params.get("top_p")):
        body["top_p"] = params["top_p"]
    stop = params.get("stop")
    if isinstance(stop, str):
        body["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        body["stop_sequences"] = list(stop)
    user = params.get("user")
    if isinstance(user, str) and user:
        body["metadata"] = {"user_id": user}
    for key in NATIVE_PARAMETERS:
        if params.get(key) is not None:
            body[key] = params[key]
    body.update(request.extensions.get(PROTOCOL, EMPTY))
    effort = params.get("reasoning_effort")
    if isinstance(effort, str) and effort in EFFORTS:
        config = body.get("output_config")
        config = dict(config) if isinstance(config, dict) else {}
        config.setdefault("effort", EFFORTS[effort])  # the client's own output_config wins
        body["output_config"] = config
    if request.stream:
        body["stream"] = True
    return body


def messages_to_wire(messages: tuple[Message, ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, messages): system and developer messages, wherever they are, go to ``system``;
    tool results join the user turn that follows the assistant's tool calls."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role in ("system", "developer"):
            text = m.text()
            if text:
                system.append({"type": "text", "text": text})
        elif m.role == "assistant":
            out.append({"role": "assistant", "content": _assistant_blocks(m)})
        elif m.role == "tool":
            _add_user_blocks(out, [_tool_result(m)])
        elif isinstance(m.content, str) and not (out and out[-1]["role"] == "user"):
            out.append({"role": "user", "content": m.content})
        else:
            _add_user_blocks(out, _content_blocks(m.content))
    return system, out


def _add_user_blocks(out: list[dict[str, Any]], blocks: list[dict[str, Any]]) -> None:
    """Append to the user turn at the end (Anthropic joins consecutive user turns anyway)."""
    if out and out[-1]["role"] == "user":
        last = out[-1]
        if isinstance(last["content"], str):
            last["content"] = [{"type": "text", "text": last["content"]}] if last["content"] else []
        last["content"].extend(blocks)
    else:
        out.append({"role": "user", "content": blocks})


def _content_blocks(content: str | tuple[Part, ...] | None) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content:
        if isinstance(part, TextPart):
            blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(image_to_wire(part))
    return blocks


def image_to_wire(part: ImagePart) -> dict[str, Any]:
    if part.url.startswith("data:"):
        match = _DATA_URL.match(part.url)
        if match is None:
            raise InvalidRequest("An image data URL must be base64-encoded (data:<type>;base64,<data>).",
                                 param="messages", code="invalid_value")
        return {"type": "image", "source": {"type": "base64", "media_type": match[1], "data": match[2]}}
    return {"type": "image", "source": {"type": "url", "url": part.url}}


def _tool_result(m: Message) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.tool_call_id or ""}
    if isinstance(m.content, str):
        block["content"] = m.content
    elif m.content:
        block["content"] = _content_blocks(m.content)
    return block


def _assistant_blocks(m: Message) -> list[dict[str, Any]] | str:
    if isinstance(m.content, str) and not m.tool_calls:
        return m.content
    blocks: list[dict[str, Any]] = []
    if isinstance(m.content, str):
        if m.content:
            blocks.append({"type": "text", "text": m.content})
    elif m.content:
        for part in m.content:
            if isinstance(part, ReasoningPart):
                if part.signature and part.signature.startswith(REDACTED):
                    blocks.append({"type": "redacted_thinking", "data": part.signature[len(REDACTED):]})
                elif part.signature:  # unsigned reasoning (another vendor's) cannot be verified: left out
                    blocks.append({"type": "thinking", "thinking": part.text, "signature": part.signature})
            elif isinstance(part, TextPart):
                if part.text:
                    blocks.append({"type": "text", "text": part.text})
            else:
                blocks.append(image_to_wire(part))
    for call in m.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name,
                       "input": arguments_object(call)})
    return blocks


def arguments_object(call: ToolCall) -> dict[str, Any]:
    """A tool call's JSON text as the object Anthropic's ``input`` must be."""
    if not call.arguments.strip():
        return {}
    try:
        value = orjson.loads(call.arguments)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"The arguments of tool call '{call.id}' ({call.name}) are not a JSON object; "
            "an Anthropic upstream needs an object as a tool call's input.",
            param="messages", code="invalid_value",
        )
    return value


def tool_to_wire(t: Tool) -> dict[str, Any]:
    schema = dict(t.parameters) if t.parameters else {"properties": {}}
    schema.setdefault("type", "object")
    out: dict[str, Any] = {"name": t.name, "input_schema": schema}
    if t.description is not None:
        out["description"] = t.description
    return out


def tool_choice_to_wire(choice: ToolChoice) -> dict[str, Any]:
    if choice.mode == "tool":
        return {"type": "tool", "name": choice.name}
    return {"type": {"required": "any", "none": "none"}.get(choice.mode, "auto")}


# ---- wire → canonical (responses) --------------------------------------------------------------


def stop_reason_from_wire(reason: Any) -> str:
    return STOP_FROM_WIRE.get(reason, "stop") if isinstance(reason, str) else "stop"


def stop_reason_to_wire(reason: str | None) -> str:
    return STOP_TO_WIRE.get(reason or "stop", "end_turn")


def _int(value: Any) -> int:
    return value if _is_int(value) else 0


def usage_from_wire(raw: Any) -> Usage | None:
    """Canonical usage: input counts cache reads and writes too; cached is the cache-read part."""
    if not isinstance(raw, dict):
        return None
    read = _int(raw.get("cache_read_input_tokens"))
    written = _int(raw.get("cache_creation_input_tokens"))
    return Usage(input_tokens=_int(raw.get("input_tokens")) + read + written,
                 output_tokens=_int(raw.get("output_tokens")), cached_tokens=read)


def error_from_wire(body: Mapping[str, Any]) -> UpstreamStatus:
    """An ``error`` event (or body) as the error a 4xx/5xx answer with that type would have been."""
    error = body.get("error")
    error = error if isinstance(error, dict) else {}
    kind = error.get("type") if isinstance(error.get("type"), str) else "api_error"
    message = error.get("message") if isinstance(error.get("message"), str) else "upstream error"
    return UpstreamStatus(str(message), status=ERROR_STATUSES.get(str(kind), 502), code=str(kind))


def message_events(body: Mapping[str, Any], fallback_model: str) -> list[StreamEvent]:
    """A whole Message object as the events that would have streamed it."""
    events: list[StreamEvent] = [_start(body, fallback_model)]
    tools = 0
    for block in body.get("content") or ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            events.append(TextDelta(block["text"]))
        elif kind == "thinking":
            events.append(ReasoningDelta(str(block.get("thinking") or ""), block.get("signature") or None))
        elif kind == "redacted_thinking":
            events.append(ReasoningDelta("", REDACTED + str(block.get("data") or "")))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            events.append(ToolCallDelta(index=tools, id=block.get("id"), name=block.get("name"),
                                        arguments=arguments))
            tools += 1
    events.append(Finish(stop_reason_from_wire(body.get("stop_reason"))))
    usage = usage_from_wire(body.get("usage"))
    if usage is not None:
        events.append(UsageReport(usage))
    return events


def _start(message: Mapping[str, Any], fallback_model: str) -> ResponseStart:
    return ResponseStart(id=str(message.get("id") or "msg_lip"), model=str(message.get("model") or fallback_model),
                         created=int(time.time()))


@dataclass(slots=True)
class _Block:
    kind: str
    tool: int = -1  # canonical tool-call index of a tool_use block
    start_input: Any = None  # the input of content_block_start (normally {}; used if no delta follows)
    streamed: bool = False


class StreamParser:
    """Anthropic stream events → canonical events; tool input_json_delta pieces pass through unchanged.

    Usage: message_start's usage (input and cache counts) merged with message_delta's cumulative
    counts (output, sometimes input) is reported once, with the stop reason, at message_delta.
    """

    __slots__ = ("_blocks", "_model", "_tools", "_usage", "finished")

    def __init__(self, fallback_model: str) -> None:
        self._model = fallback_model
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._usage: dict[str, Any] = {}
        self.finished = False  # a stop_reason arrived

    def feed(self, kind: str, data: Mapping[str, Any]) -> list[StreamEvent]:
        """Events for one stream event (``kind`` is its type); message_stop and error are the caller's."""
        if kind == "content_block_delta":
            return self._delta(data)
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "content_block_stop":
            return self._block_stop(data)
        if kind == "message_start":
            message = data.get("message")
            message = message if isinstance(message, dict) else {}
            if isinstance(message.get("usage"), dict):
                self._usage.update({k: v for k, v in message["usage"].items() if v is not None})
            return [_start(message, self._model)]
        if kind == "message_delta":
            return self._message_delta(data)
        return []  # ping, and event types this proxy does not know

    def _block_start(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        block = data.get("content_block")
        block = block if isinstance(block, dict) else {}
        index = _int(data.get("index"))
        kind = str(block.get("type"))
        if kind == "tool_use":
            state = self._blocks[index] = _Block(kind, tool=self._tools, start_input=block.get("input"))
            self._tools += 1
            return [ToolCallDelta(index=state.tool, id=block.get("id"), name=block.get("name"))]
        self._blocks[index] = _Block(kind)
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            return [TextDelta(block["text"])]
        if kind == "thinking" and (block.get("thinking") or block.get("signature")):
            return [ReasoningDelta(str(block.get("thinking") or ""), block.get("signature") or None)]
        if kind == "redacted_thinking":
            return [ReasoningDelta("", REDACTED + str(block.get("data") or ""))]
        return []

    def _delta(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        delta = data.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return [TextDelta(text)] if isinstance(text, str) and text else []
        if kind == "input_json_delta":
            state = self._blocks.get(_int(data.get("index")))
            piece = delta.get("partial_json")
            if state is None or state.kind != "tool_use" or not isinstance(piece, str) or not piece:
                return []
            state.streamed = True
            return [ToolCallDelta(index=state.tool, arguments=piece)]
        if kind == "thinking_delta":
            text = delta.get("thinking")
            return [ReasoningDelta(text)] if isinstance(text, str) and text else []
        if kind == "signature_delta":
            signature = delta.get("signature")
            return [ReasoningDelta("", signature)] if isinstance(signature, str) and signature else []
        return []  # citations_delta and unknown deltas

    def _block_stop(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        state = self._blocks.get(_int(data.get("index")))
        if state is not None and state.kind == "tool_use" and not state.streamed and state.start_input:
            return [ToolCallDelta(index=state.tool, arguments=orjson.dumps(state.start_input).decode())]
        return []

    def _message_delta(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        delta = data.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if isinstance(reason, str):
            events.append(Finish(stop_reason_from_wire(reason)))
            self.finished = True
        usage = data.get("usage")
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})
        if self._usage:
            report = usage_from_wire(self._usage)
            if report is not None:
                events.append(UsageReport(report))
        return events


# ---- canonical → wire (responses) --------------------------------------------------------------


def message_id(raw: str) -> str:
    """Anthropic-looking ids (``msg_…``); another protocol's id is kept after the prefix."""
    if raw.startswith("msg_"):
        return raw
    return "msg_" + (raw or uuid.uuid4().hex[:24])


def usage_to_wire(u: Usage | None) -> dict[str, Any]:
    if u is None:
        return {"input_tokens": 0, "output_tokens": 0}
    out: dict[str, Any] = {"input_tokens": max(0, u.input_tokens - u.cached_tokens),
                           "output_tokens": u.output_tokens}
    if u.cached_tokens:
        out["cache_read_input_tokens"] = u.cached_tokens
    return out


def tool_input(arguments: str) -> dict[str, Any]:
    """A canonical tool call's arguments as a ``tool_use`` input (never fails: see the docs)."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"_raw_arguments": arguments}


def response_to_wire(response: ChatResponse, request_model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    signature = response.reasoning_signature
    if signature and signature.startswith(REDACTED):
        if response.reasoning:
            content.append({"type": "thinking", "thinking": response.reasoning, "signature": ""})
        content.append({"type": "redacted_thinking", "data": signature[len(REDACTED):]})
    elif response.reasoning or signature:
        content.append({"type": "thinking", "thinking": response.reasoning, "signature": signature or ""})
    if response.text or not response.tool_calls:
        content.append({"type": "text", "text": response.text})
    for call in response.tool_calls:
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input(call.arguments)})
    return {
        "id": message_id(response.id),
        "type": "message",
        "role": "assistant",
        "model": response.model or request_model,
        "content": content,
        "stop_reason": stop_reason_to_wire(response.finish_reason),
        "stop_sequence": None,
        "usage": usage_to_wire(response.usage),
    }


def error_type(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_body(error: ProxyError) -> dict[str, Any]:
    """Anthropic's envelope, plus the proxy's ``code`` (and ``details``) inside ``error``.

    A limit error also carries the top-level ``detail`` object every surface gives it.
    """
    inner: dict[str, Any] = {"type": error_type(error.status), "message": error.message, "code": error.code}
    if error.details:
        inner["details"] = error.details
    body: dict[str, Any] = {"type": "error", "error": inner}
    if isinstance(error, LimitExceeded):
        body["detail"] = {"code": error.code, "message": error.message, "details": error.details or {}}
    return body
