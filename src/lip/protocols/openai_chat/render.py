"""The canonical ChatRequest → an OpenAI Chat Completions request body, as upstreams get it.

Rendering trusts the canonical model; what it cannot carry (a document by URL) is refused by name.
"""

from __future__ import annotations

from typing import Any

from lip.core.errors import InvalidRequest
from lip.core.model import ChatRequest, FilePart, ImagePart, Message, TextPart, Tool, ToolChoice
from lip.protocols import portable

# Keys of Message.extensions holding another protocol's message-level keys (never sent to OpenAI).
FOREIGN = frozenset({portable.ANTHROPIC, portable.TOOL_RESULT, portable.RESPONSES, portable.GEMINI})


def request_body(request: ChatRequest, upstream_model: str) -> dict[str, Any]:
    """The ``POST /chat/completions`` body for ``request`` (its model: ``upstream_model``)."""
    body: dict[str, Any] = {
        "model": upstream_model,
        "messages": [message_to_wire(m) for m in request.messages],
    }
    tools = [tool_to_wire(t) for t in request.tools if t.callable]  # hosted ones: portable.dropped
    if tools:
        body["tools"] = tools
    if request.tool_choice is not None and (tools or not request.tools):
        body["tool_choice"] = tool_choice_to_wire(request.tool_choice)
    body.update(request.parameters)
    body.update(request.extensions.get("openai", {}))
    reasoning_model = portable.needs_max_completion_tokens(upstream_model)
    if "max_tokens" in body and reasoning_model:
        body.setdefault("max_completion_tokens", body.pop("max_tokens"))
    if request.extensions:  # another protocol's client: its effort, where this model takes one
        effort = portable.effort_for_openai(request, reasoning_model)
        if effort is not None:
            body["reasoning_effort"] = effort
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # usage of every stream, for limits and records
    return body


def message_to_wire(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role}
    if m.content is None or isinstance(m.content, str):
        out["content"] = m.content
    else:
        # Reasoning is not replayed to OpenAI; other protocols' server-tool blocks have no place here.
        parts = [p for p in m.content if isinstance(p, TextPart | ImagePart | FilePart)]
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


def _part_to_wire(p: TextPart | ImagePart | FilePart) -> dict[str, Any]:
    if isinstance(p, TextPart):
        return {"type": "text", "text": p.text}
    if isinstance(p, FilePart):
        return file_to_wire(p)
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


def tool_choice_to_wire(choice: ToolChoice) -> Any:
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode
