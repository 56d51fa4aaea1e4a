"""Anthropic Messages client request (JSON) → canonical ChatRequest, validated.

Parsing validates what a client may get wrong and names the field the way Anthropic does
(``messages.1.content.0.type``). Body keys with no canonical meaning are kept in
``ChatRequest.extensions["anthropic"]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson

from lip.core.errors import InvalidRequest
from lip.core.model import (
    EMPTY,
    ChatRequest,
    ImagePart,
    Message,
    Part,
    RedactedReasoningPart,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
)
from lip.core.opaque import read_reasoning
from lip.protocols import portable
from lip.protocols.anthropic import blocks as extra
from lip.protocols.anthropic.common import (
    PROTOCOL,
    cache_control_of,
    fail,
    is_int,
    is_number,
    missing,
)

# Client body keys with a canonical meaning; every other key is kept in extensions["anthropic"].
STRUCTURAL = frozenset({
    "model", "messages", "system", "stream", "max_tokens", "temperature", "top_p", "top_k",
    "stop_sequences", "tools", "tool_choice",
})
_USER_BLOCKS = "'text', 'image', 'document', 'tool_result' or a server tool's block"
_RESULT_BLOCKS = "'text', 'image', 'document', 'search_result' or 'tool_reference'"
_ASSISTANT_BLOCKS = "'text', 'thinking', 'redacted_thinking', 'tool_use' or a server tool's block"


_fail, _missing, _cache_control = fail, missing, cache_control_of


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
        if not is_int(max_tokens) or max_tokens < 1:
            raise _fail("max_tokens", "an integer of at least 1")
        params["max_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None:
            if not is_number(value) or not 0 <= value <= 1:
                raise _fail(key, "a number between 0 and 1")
            params[key] = value
    top_k = body.get("top_k")
    if top_k is not None:
        if not is_int(top_k) or top_k < 0:
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
        messages.append(Message("system", (TextPart(text, _cache_control(block, where)),)))
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
        parsed = _parse_message(message, f"messages.{i}")
        extras = {k: v for k, v in message.items() if k not in ("role", "content")}
        if extras:  # message-level keys (a turn's output_config, ...): for an Anthropic upstream
            parsed[-1] = dataclasses.replace(parsed[-1], extensions={**parsed[-1].extensions, PROTOCOL: extras})
        out.extend(parsed)
    return tuple(out)


def _parse_message(raw: Any, where: str) -> list[Message]:
    if not isinstance(raw, dict):
        raise _fail(where, "a message object")
    role = raw.get("role")
    if role not in ("user", "assistant", "system"):
        raise _fail(f"{where}.role", "'user', 'assistant' or 'system'")
    if "content" not in raw:
        raise _missing(f"{where}.content")
    if role == "system":  # a system message in the conversation (Claude Code 2.x): kept in its place
        return [Message("system", extra.parse_system_message(raw, where))]
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


def _text_part(block: Mapping[str, Any], where: str) -> TextPart:
    return TextPart(_text_of(block, where), _cache_control(block, where))


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
        if kind == "tool_result":
            if parts:
                out.append(Message("user", tuple(parts)))
                parts = []
            out.append(_parse_tool_result(block, at))
        else:
            parts.append(_content_part(block, kind, at, _USER_BLOCKS))
    if parts or not out:
        out.append(Message("user", tuple(parts)))
    return out


def _content_part(block: Mapping[str, Any], kind: str, where: str, allowed: str) -> Part:
    """A text, image, document or server-tool block: what a user turn and a tool result hold."""
    if kind == "text":
        return _text_part(block, where)
    if kind == "image":
        return _parse_image(block, where)
    if kind == "document":
        return extra.parse_document(block, where)
    if extra.is_server_block(kind):
        return extra.server_block(block)
    raise _unsupported(kind, where, allowed)


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
        return ImagePart(f"data:{media};base64,{data}", cache_control=_cache_control(block, where))
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str):
            raise _fail(f"{where}.source.url", "a URL string")
        return ImagePart(url, cache_control=_cache_control(block, where))
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
            parts.append(_content_part(inner, _block_type(inner, at), at, _RESULT_BLOCKS))
        plain = all(isinstance(p, TextPart) and p.cache_control is None for p in parts)
        content = "\n".join(p.text for p in parts if isinstance(p, TextPart)) if plain else tuple(parts)
    else:
        raise _fail(f"{where}.content", "a string or an array of text and image blocks")
    extras = {k: v for k, v in block.items() if k not in ("type", "tool_use_id", "content", "cache_control")}
    return Message("tool", content, tool_call_id=tool_use_id, cache_control=_cache_control(block, where),
                   extensions={portable.TOOL_RESULT: extras} if extras else EMPTY)


def _parse_assistant_blocks(blocks: list[Any], where: str) -> Message:
    parts: list[Part] = []
    calls: list[ToolCall] = []
    for i, block in enumerate(blocks):
        at = f"{where}.{i}"
        kind = _block_type(block, at)
        if kind == "text":
            parts.append(_text_part(block, at))
        elif kind == "thinking":
            thinking, signature = block.get("thinking"), block.get("signature")
            if not isinstance(thinking, str):
                raise _fail(f"{at}.thinking", "a string")
            if signature is not None and not isinstance(signature, str):
                raise _fail(f"{at}.signature", "a string")
            parts.append(read_reasoning(thinking, signature, PROTOCOL))  # another protocol's comes folded
        elif kind == "redacted_thinking":
            data = block.get("data")
            if not isinstance(data, str):
                raise _fail(f"{at}.data", "a string")
            parts.append(RedactedReasoningPart(PROTOCOL, data))
        elif kind == "tool_use":
            call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
            if not isinstance(call_id, str):
                raise _missing(f"{at}.id")
            if not isinstance(name, str):
                raise _missing(f"{at}.name")
            if not isinstance(arguments, dict):
                raise _fail(f"{at}.input", "an object")
            calls.append(ToolCall(call_id, name, orjson.dumps(arguments).decode()))
        elif extra.is_server_block(kind):
            parts.append(extra.server_block(block))
        else:
            raise _unsupported(kind, at, _ASSISTANT_BLOCKS)
    content: str | tuple[Part, ...] | None = tuple(parts) if parts else None
    if len(parts) == 1 and isinstance(parts[0], TextPart) and parts[0].cache_control is None:
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
            if not isinstance(kind, str):
                raise _fail(f"{where}.type", "a string")
            tools.append(extra.parse_server_tool(tool, kind, where))
            continue
        name, schema, description = tool.get("name"), tool.get("input_schema"), tool.get("description")
        if not isinstance(name, str) or not name:
            raise _missing(f"{where}.name")
        if schema is None:
            raise _missing(f"{where}.input_schema")
        if not isinstance(schema, dict):
            raise _fail(f"{where}.input_schema", "a JSON schema object")
        if description is not None and not isinstance(description, str):
            raise _fail(f"{where}.description", "a string")
        tools.append(Tool(name=name, description=description, parameters=schema,
                          cache_control=_cache_control(tool, where), spec=tool, protocol=PROTOCOL))
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
