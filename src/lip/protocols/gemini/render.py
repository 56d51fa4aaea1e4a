"""Canonical ChatRequest → the GenerateContentRequest body sent to a Gemini upstream."""

from __future__ import annotations

import base64
import mimetypes
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from lip.core.errors import InvalidRequest
from lip.core.model import (
    EMPTY,
    ChatRequest,
    FilePart,
    Message,
    Part,
    ProviderPart,
    ReasoningPart,
    RedactedReasoningPart,
    TextPart,
)
from lip.protocols import portable
from lip.protocols.gemini.calls import arguments_object, wire_signature
from lip.protocols.gemini.common import GENERATION_PARAMS, PROTOCOL
from lip.protocols.gemini.tools import tool_choice_to_wire, tool_to_wire

# reasoning_effort (OpenAI) → thinkingConfig.thinkingBudget, as Google's OpenAI-compatible endpoint maps it.
THINKING_BUDGETS: Mapping[str, int] = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576,
                                      "xhigh": 24576, "max": 24576}


# ---- canonical → wire (requests) ---------------------------------------------------------------


def request_to_wire(request: ChatRequest) -> dict[str, Any]:
    """The GenerateContentRequest body for a Gemini upstream (no model: it is in the URL)."""
    ext = request.extensions.get(PROTOCOL, EMPTY)
    body: dict[str, Any] = {k: v for k, v in ext.items() if k not in ("tools", "toolConfig", "generationConfig")}
    system = [m.text() for m in request.messages if m.role in ("system", "developer")]
    if system:
        body["systemInstruction"] = {"parts": [{"text": text} for text in system]}
    body["contents"] = contents_to_wire(request.messages)
    tools: list[Any] = []
    functions = [tool_to_wire(t) for t in request.tools if t.callable]
    if functions:
        tools.append({"functionDeclarations": functions})
    if any(not t.callable and portable.family(t) == "web_search" for t in request.tools):
        tools.append({"googleSearch": {}})  # another protocol's hosted web search: Gemini's own
    tools.extend(ext.get("tools") or ())
    if tools:
        body["tools"] = tools
    tool_config = dict(ext.get("toolConfig") or {})
    if request.tool_choice is not None and "functionCallingConfig" not in tool_config:
        tool_config["functionCallingConfig"] = tool_choice_to_wire(request.tool_choice)
    if tool_config:
        body["toolConfig"] = tool_config
    generation = generation_to_wire(request)
    kept = ext.get("generationConfig") or {}
    if "responseSchema" in kept:
        generation.pop("responseJsonSchema", None)  # the client's own schema wins
    generation.update(kept)
    if generation:
        body["generationConfig"] = generation
    return body


def contents_to_wire(messages: Sequence[Message]) -> list[dict[str, Any]]:
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id → function name, for the responses
    for i, m in enumerate(messages):
        if m.role in ("system", "developer"):
            continue
        if m.role == "assistant":
            role, parts = "model", _assistant_parts(m)
            for call in m.tool_calls:
                names[call.id] = call.name
        elif m.role == "tool":
            role, parts = "user", [_function_response(m, names, i)]
        else:
            role, parts = "user", _content_parts(m)
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)  # Gemini alternates turns: merge neighbours
        else:
            contents.append({"role": role, "parts": parts})
    return contents


def _content_parts(m: Message) -> list[dict[str, Any]]:
    if m.content is None:
        return []
    if isinstance(m.content, str):
        return [{"text": m.content}] if m.content else []
    return [p for p in (part_to_wire(p) for p in m.content) if p is not None]


def part_to_wire(p: Part) -> dict[str, Any] | None:
    if isinstance(p, TextPart):
        return {"text": p.text} if p.text else None
    if isinstance(p, ReasoningPart | RedactedReasoningPart):
        return None  # thoughts are not replayed to Gemini (signatures of other vendors would be rejected)
    if isinstance(p, ProviderPart):
        return None  # another protocol's server-tool block (portable.dropped names it)
    if isinstance(p, FilePart):
        return _file_to_wire(p)
    if p.url.startswith("data:"):
        header, _, data = p.url[len("data:"):].partition(",")
        if not header.endswith(";base64"):
            data = base64.b64encode(urllib.parse.unquote_to_bytes(data)).decode()
        mime = header.removesuffix(";base64").split(";", 1)[0] or "application/octet-stream"
        return {"inlineData": {"mimeType": mime, "data": data}}
    file_data: dict[str, Any] = {"fileUri": p.url}
    guessed, _ = mimetypes.guess_type(p.url.split("?", 1)[0])
    if guessed:
        file_data["mimeType"] = guessed
    return {"fileData": file_data}


def _file_to_wire(p: FilePart) -> dict[str, Any] | None:
    """A document: inline data, a file URI, or its text."""
    if p.data is not None:
        return {"inlineData": {"mimeType": p.media_type, "data": p.data}}
    if p.url is not None:
        return {"fileData": {"mimeType": p.media_type, "fileUri": p.url}}
    title = f"{p.filename}\n\n" if p.filename else ""
    return {"text": title + p.text} if p.text else None


def _assistant_parts(m: Message) -> list[dict[str, Any]]:
    parts = _content_parts(m)
    for call in m.tool_calls:
        _, signature = wire_signature(call)  # the id itself is not sent: Gemini pairs calls by name and order
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": arguments_object(call.arguments)}}
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _function_response(m: Message, names: Mapping[str, str], index: int) -> dict[str, Any]:
    call_id = m.tool_call_id or ""
    name = names.get(call_id) or m.name
    if not name:
        raise InvalidRequest(
            f"Invalid value for 'messages[{index}].tool_call_id': no earlier assistant tool call has the id "
            f"'{call_id}', and Gemini needs the function's name for its result.",
            param=f"messages[{index}].tool_call_id", code="invalid_value",
        )
    return {"functionResponse": {"name": name, "response": _response_object(m)}}


def _response_object(m: Message) -> dict[str, Any]:
    text = m.text()
    try:
        value = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        return {"result": text}
    return value if isinstance(value, dict) else {"result": value}


def generation_to_wire(request: ChatRequest) -> dict[str, Any]:
    """Canonical parameters as generationConfig; parameters Gemini has no field for are left out."""
    p = request.parameters
    out: dict[str, Any] = {}
    for wire_key, name in GENERATION_PARAMS.items():
        if name != "max_tokens" and p.get(name) is not None:
            out[wire_key] = p[name]
    if isinstance(out.get("stopSequences"), str):
        out["stopSequences"] = [out["stopSequences"]]
    if request.max_output_tokens is not None:
        out["maxOutputTokens"] = request.max_output_tokens
    fmt = p.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        out["responseMimeType"] = "application/json"
        spec = fmt.get("json_schema")
        if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
            out["responseJsonSchema"] = spec["schema"]
    effort = portable.effort(request)  # OpenAI's reasoning_effort, else Anthropic's output_config.effort
    budget = portable.thinking_budget(request)
    if budget is not None:
        out["thinkingConfig"] = {"thinkingBudget": budget}
    elif isinstance(effort, str) and effort in THINKING_BUDGETS:
        out["thinkingConfig"] = {"thinkingBudget": THINKING_BUDGETS[effort]}
    if p.get("logprobs") is True:
        out["responseLogprobs"] = True
        if isinstance(p.get("top_logprobs"), int):
            out["logprobs"] = p["top_logprobs"]
    return out
