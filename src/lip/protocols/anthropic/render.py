"""Canonical ChatRequest → the Anthropic Messages request body sent to an upstream."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lip.core.errors import InvalidRequest
from lip.core.model import (
    EMPTY,
    ChatRequest,
    FilePart,
    ImagePart,
    Message,
    Part,
    ProviderPart,
    ReasoningPart,
    RedactedReasoningPart,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
)
from lip.protocols import portable
from lip.protocols.anthropic.common import PROTOCOL, is_number, json_object

DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; sent when neither client nor limits set one
# OpenAI's ``reasoning_effort`` as Anthropic's ``output_config.effort`` (low, medium, high, xhigh, max).
EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "max"}
# Canonical parameters that an Anthropic upstream receives under the same name when set (from
# backend.yaml model parameters, for example). Names that OpenAI also uses with another meaning
# (metadata, service_tier) are not among them; OpenAI-only parameters are not sent at all.
NATIVE_PARAMETERS = (
    "top_k", "thinking", "stop_sequences", "container", "mcp_servers", "context_management",
    "output_config", "inference_geo", "speed", "cache_control",
)

WEB_SEARCH = "web_search_20250305"  # the server tool other protocols' web search maps to
CACHE = "cache_control"  # a message-level caching breakpoint in Message.extensions (OpenAI-style clients)
_DATA_URL = re.compile(r"^data:([^;,]+)(?:;[^;,=]+=[^;,]*)*;base64,(.*)$", re.DOTALL)


# ---- canonical → wire (requests) ---------------------------------------------------------------


def request_to_wire(request: ChatRequest, model: str) -> dict[str, Any]:
    """The upstream body: canonical fields translated, Anthropic-only client keys merged in last."""
    params = request.parameters
    system, messages = messages_to_wire(request.messages)
    body: dict[str, Any] = {"model": model, "messages": messages,
                            "max_tokens": request.max_output_tokens or DEFAULT_MAX_TOKENS}
    if system:  # a system prompt that came as a string goes as one
        leading = request.messages[0]
        plain = len(system) == 1 and isinstance(leading.content, str) and "cache_control" not in system[0]
        body["system"] = leading.content if plain else system
    tools = [wired for wired in (tool_to_wire(t) for t in request.tools) if wired is not None]
    if tools:
        body["tools"] = tools
        choice = tool_choice_to_wire(request.tool_choice) if request.tool_choice else None
        if params.get("parallel_tool_calls") is False and (choice is None or choice["type"] != "none"):
            choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        if choice is not None:
            body["tool_choice"] = choice
    temperature = params.get("temperature")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        body["temperature"] = min(max(float(temperature), 0.0), 1.0)  # OpenAI allows up to 2
    if is_number(params.get("top_p")):
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
    effort = params.get("reasoning_effort") or portable.gemini_effort(request)  # another protocol's client
    if isinstance(effort, str) and effort in EFFORTS:
        config = body.get("output_config")
        config = dict(config) if isinstance(config, dict) else {}
        config.setdefault("effort", EFFORTS[effort])  # the client's own output_config wins
        body["output_config"] = config
    if request.stream:
        body["stream"] = True
    return body


def messages_to_wire(messages: tuple[Message, ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, messages): the leading system and developer messages go to ``system``; later
    ones stay where they are as ``role: "system"`` messages (the Messages API takes them there, and
    they apply from that point on); tool results join the user turn that follows the assistant's
    tool calls."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role in ("system", "developer"):
            if out:
                out.append({"role": "system", "content": _system_content(m)})
            else:
                system.extend(_system_blocks(m))
        elif m.role == "assistant":
            out.append({"role": "assistant", "content": _assistant_blocks(m)})
        elif m.role == "tool":
            _add_user_blocks(out, [_tool_result(m)])
        elif isinstance(m.content, str) and not (out and out[-1]["role"] == "user") and _message_cache(m) is None:
            out.append({"role": "user", "content": m.content})
        else:
            _add_user_blocks(out, _with_message_cache(_content_blocks(m.content), m))
        own = m.extensions.get(PROTOCOL) if m.extensions else None
        if own and out:  # the client's message-level keys, on the message it put them on
            out[-1].update(own)
    return system, out


def _system_blocks(m: Message) -> list[dict[str, Any]]:
    """One text block, or one per part when a part carries a caching breakpoint."""
    parts = m.content if isinstance(m.content, tuple) else ()
    if any(isinstance(p, TextPart) and p.cache_control is not None for p in parts):
        return [_cached({"type": "text", "text": p.text}, p.cache_control)
                for p in parts if isinstance(p, TextPart) and p.text]
    text = m.text()
    return _with_message_cache([{"type": "text", "text": text}] if text else [], m)


def _system_content(m: Message) -> str | list[dict[str, Any]]:
    """A system message in the conversation: a string, or text blocks as the client gave them."""
    if isinstance(m.content, tuple):
        return [_cached({"type": "text", "text": p.text}, p.cache_control)
                for p in m.content if isinstance(p, TextPart)]
    return _with_message_cache([{"type": "text", "text": m.content or ""}], m) if _message_cache(m) else (
        m.content or "")


def _cached(block: dict[str, Any], cache: Mapping[str, Any] | None) -> dict[str, Any]:
    if cache is not None:
        block["cache_control"] = dict(cache)
    return block


def _message_cache(m: Message) -> Mapping[str, Any] | None:
    """A breakpoint on the whole message: the canonical one, or ``cache_control`` as OpenAI-style
    clients (OpenRouter's convention) put it on a message."""
    cache = m.cache_control if m.cache_control is not None else m.extensions.get(CACHE)
    return cache if isinstance(cache, Mapping) else None


def _with_message_cache(blocks: list[dict[str, Any]], m: Message) -> list[dict[str, Any]]:
    """A message-level breakpoint goes on the message's last block (the same place in the prompt)."""
    cache = _message_cache(m)
    if cache is not None and blocks and "cache_control" not in blocks[-1]:
        blocks[-1]["cache_control"] = dict(cache)
    return blocks


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
            blocks.append(_cached({"type": "text", "text": part.text}, part.cache_control))
        elif isinstance(part, ImagePart):
            blocks.append(image_to_wire(part))
        elif isinstance(part, FilePart):
            blocks.append(document_to_wire(part))
        elif isinstance(part, ProviderPart) and part.protocol == PROTOCOL:
            blocks.append(dict(part.data))
    return blocks


def document_to_wire(part: FilePart) -> dict[str, Any]:
    """A document block: the client's own when it came in Anthropic's protocol."""
    if part.protocol == PROTOCOL and part.spec is not None:
        return dict(part.spec)
    source: dict[str, Any]
    if part.data is not None:
        source = {"type": "base64", "media_type": part.media_type, "data": part.data}
    elif part.url is not None:
        source = {"type": "url", "url": part.url}
    else:
        source = {"type": "text", "media_type": "text/plain", "data": part.text}
    block: dict[str, Any] = {"type": "document", "source": source}
    if part.filename:
        block["title"] = part.filename
    return _cached(block, part.cache_control)


def image_to_wire(part: ImagePart) -> dict[str, Any]:
    if part.url.startswith("data:"):
        match = _DATA_URL.match(part.url)
        if match is None:
            raise InvalidRequest("An image data URL must be base64-encoded (data:<type>;base64,<data>).",
                                 param="messages", code="invalid_value")
        return _cached({"type": "image", "source": {"type": "base64", "media_type": match[1], "data": match[2]}},
                       part.cache_control)
    return _cached({"type": "image", "source": {"type": "url", "url": part.url}}, part.cache_control)


def _tool_result(m: Message) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.tool_call_id or ""}
    own = m.extensions.get(portable.TOOL_RESULT) if m.extensions else None
    if own:  # the client's is_error and other keys of its block
        block.update(own)
    if isinstance(m.content, str):
        block["content"] = m.content
    elif m.content:
        block["content"] = _content_blocks(m.content)
    return _cached(block, _message_cache(m))


def _assistant_blocks(m: Message) -> list[dict[str, Any]] | str:
    if isinstance(m.content, str) and not m.tool_calls:
        return m.content
    blocks: list[dict[str, Any]] = []
    if isinstance(m.content, str):
        if m.content:
            blocks.append({"type": "text", "text": m.content})
    elif m.content:
        blocks.extend(block for block in (_assistant_block(part) for part in m.content) if block is not None)
    for call in m.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name,
                       "input": arguments_object(call)})
    return blocks


def _assistant_block(part: Part) -> dict[str, Any] | None:
    """One part of an assistant turn as its block; None for what an Anthropic upstream cannot be given."""
    if isinstance(part, ReasoningPart):  # only a signature of ours can be verified: other reasoning left out
        if part.signature is not None and part.signature.protocol == PROTOCOL:
            return {"type": "thinking", "thinking": part.text, "signature": part.signature.data}
        return None
    if isinstance(part, RedactedReasoningPart):
        return {"type": "redacted_thinking", "data": part.data} if part.protocol == PROTOCOL else None
    if isinstance(part, TextPart):
        return _cached({"type": "text", "text": part.text}, part.cache_control) if part.text else None
    if isinstance(part, ImagePart):
        return image_to_wire(part)
    if isinstance(part, ProviderPart):  # a server tool's call or result, in its place
        return dict(part.data) if part.protocol == PROTOCOL else None
    return document_to_wire(part)


def arguments_object(call: ToolCall) -> dict[str, Any]:
    """A tool call's JSON text as the object Anthropic's ``input`` must be."""
    value = json_object(call.arguments)
    if value is None:
        raise InvalidRequest(
            f"The arguments of tool call '{call.id}' ({call.name}) are not a JSON object; "
            "an Anthropic upstream needs an object as a tool call's input.",
            param="messages", code="invalid_value",
        )
    return value


def tool_to_wire(t: Tool) -> dict[str, Any] | None:
    """A tool as Anthropic takes it; None for a hosted tool Anthropic has no equivalent of."""
    if not t.callable:
        if t.protocol == PROTOCOL and t.spec is not None:
            return dict(t.spec)
        if portable.family(t) == "web_search":
            return _cached({"type": WEB_SEARCH, "name": "web_search"}, t.cache_control)
        return None
    schema = dict(t.parameters) if t.parameters else {"properties": {}}
    schema.setdefault("type", "object")
    # The client's own tool object (defer_loading, ...) with the canonical fields over it.
    out: dict[str, Any] = dict(t.spec) if t.protocol == PROTOCOL and t.spec is not None else {}
    out.update(name=t.name, input_schema=schema)
    if t.description is not None:
        out["description"] = t.description
    return _cached(out, t.cache_control)


def tool_choice_to_wire(choice: ToolChoice) -> dict[str, Any]:
    if choice.mode == "tool":
        return {"type": "tool", "name": choice.name}
    return {"type": {"required": "any", "none": "none"}.get(choice.mode, "auto")}
