"""The canonical ChatRequest → a Responses ``POST /responses`` body, as an upstream of this protocol gets it.

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

from lip.core.model import EMPTY, ChatRequest, FilePart, ImagePart, Message, ProviderPart, ReasoningPart, TextPart, Tool
from lip.protocols import portable
from lip.protocols.openai_responses import tools as tools_wire
from lip.protocols.openai_responses.common import PROTOCOL

NOT_SENT = frozenset({"previous_response_id", "stream", "instructions", "conversation", "background"})


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
                     *input_to_wire(messages, request.tools)]
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


def input_to_wire(messages: tuple[Message, ...], tools: tuple[Tool, ...]) -> list[dict[str, Any]]:
    """Canonical messages as input items."""
    by_name = {t.name: t for t in tools}
    call_tools: dict[str, Tool | None] = {}
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "assistant":
            _assistant(m, items)
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


def _assistant(m: Message, items: list[dict[str, Any]]) -> None:
    texts: list[str] = []
    for p in _parts(m):
        if isinstance(p, ReasoningPart):
            if p.signature is not None and p.signature.protocol == PROTOCOL:  # another's would be refused
                items.append({"type": "reasoning", "encrypted_content": p.signature.data,
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
