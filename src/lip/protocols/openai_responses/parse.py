"""OpenAI Responses requests (``POST /v1/responses``) as clients send them → the canonical ChatRequest.

Parsing validates what a client may get wrong and names the field (``input[2].content[0].image_url``)
in an InvalidRequest. Output items are valid input items, so a response's output is turned back into
canonical messages by the same parser (``output_messages``) when it is stored for ``previous_response_id``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lip.core.errors import InvalidRequest
from lip.core.model import (
    EMPTY,
    ChatRequest,
    FilePart,
    ImagePart,
    Message,
    Part,
    ReasoningPart,
    RedactedReasoningPart,
    TextPart,
    ToolCall,
    ToolChoice,
)
from lip.core.opaque import read_reasoning
from lip.protocols.openai_envelope import invalid_value, missing_parameter
from lip.protocols.openai_responses import tools as tools_wire
from lip.protocols.openai_responses.common import CALL_ITEMS, PROTOCOL, unsupported

# Body keys mapped entirely onto canonical fields; every other key is carried in
# ChatRequest.extensions[PROTOCOL] (those also honoured are read back from there).
CANONICAL_KEYS = frozenset({"model", "input", "stream", "tools", "tool_choice", "temperature", "top_p",
                            "max_output_tokens"})
# Keys the proxy cannot honour and would change the answer if ignored: rejected when set.
UNSUPPORTED = {
    "background": "background responses are not supported by this proxy; send the request without it",
    "conversation": "conversations are not supported by this proxy; use previous_response_id",
    "prompt": "stored prompt templates are not supported by this proxy; send the prompt as input",
}
_INPUT_ROLES = frozenset({"user", "assistant", "system", "developer"})
_FORMAT_TYPES = ("text", "json_object", "json_schema")


def previous_response_id(body: Mapping[str, Any]) -> str | None:
    value = body.get("previous_response_id")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise invalid_value("previous_response_id", "a response id string")
    return value


def parse_request(body: Mapping[str, Any], history: Sequence[Message] = ()) -> ChatRequest:
    """The canonical request: ``instructions`` as a leading system message, then ``history``
    (the turns behind ``previous_response_id``), then ``input``."""
    model = body.get("model", "")
    if not isinstance(model, str):
        raise invalid_value("model", "a string")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid_value("stream", "a boolean")
    previous_response_id(body)
    for key, why in UNSUPPORTED.items():
        if body.get(key) not in (None, False):
            raise unsupported(key, why)
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise invalid_value("instructions", "a string")
    messages = [Message(role="system", content=instructions)] if instructions else []
    messages.extend(history)
    messages.extend(parse_input(body.get("input")))
    tools = (*tools_wire.parse_tools(body.get("tools")), *tools_wire.additional_tools(body.get("input")))
    tool_choice, allowed = parse_tool_choice(body.get("tool_choice"))
    if allowed is not None:
        tools = tuple(t for t in tools if t.name in allowed)
    parameters = parse_parameters(body)
    if tools and isinstance(body.get("parallel_tool_calls"), bool):
        parameters["parallel_tool_calls"] = body["parallel_tool_calls"]
    carried = {k: v for k, v in body.items() if k not in CANONICAL_KEYS}
    _check_carried(carried)
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        stream=bool(stream),
        include_usage=True,
        tools=tools,
        tool_choice=tool_choice,
        parameters=parameters,
        extensions={PROTOCOL: carried} if carried else EMPTY,
    )


def _check_carried(carried: Mapping[str, Any]) -> None:
    for key in ("store", "parallel_tool_calls"):
        if carried.get(key) is not None and not isinstance(carried[key], bool):
            raise invalid_value(key, "a boolean")
    metadata = carried.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise invalid_value("metadata", "an object of string values")


def parse_input(raw: Any, where: str = "input") -> tuple[Message, ...]:
    """``input`` (a string, or a list of items) as canonical messages.

    Consecutive ``function_call`` items join the assistant message before them (one assistant
    turn with text and tool calls, as chat formats want it); ``reasoning`` items become a
    ReasoningPart leading the assistant message right after them (one followed by anything else,
    or by nothing, is dropped: no upstream accepts an assistant turn of reasoning alone).
    """
    if isinstance(raw, str):
        return (Message(role="user", content=raw),)
    if raw is None:
        raise missing_parameter(where)
    if not isinstance(raw, list):
        raise invalid_value(where, "a string or an array of input items")
    messages = _parse_items(raw, where)
    if not messages:
        raise InvalidRequest(f"'{where}' must contain at least one message.", param=where, code="invalid_value")
    return tuple(messages)


def output_messages(output: Sequence[Mapping[str, Any]]) -> tuple[Message, ...]:
    """A response's output items as the canonical assistant turn they make (for the store)."""
    return tuple(_parse_items(output, "output"))


def _parse_items(raw: Sequence[Any], where: str) -> list[Message]:
    messages: list[Message] = []
    reasoning: list[Part] = []
    joinable = False  # the last message is an assistant turn that following function calls join
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise invalid_value(at, "an input item object")
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"
        if not isinstance(kind, str):
            raise invalid_value(f"{at}.type", "an input item type (a string)")
        if kind == "message":
            message = _parse_message(item, at)
            if message.role == "assistant" and reasoning:
                message = Message(role="assistant", content=(*reasoning, *_as_parts(message.content)))
            reasoning = []  # reasoning belongs to the assistant turn right after it, or to none
            messages.append(message)
            joinable = message.role == "assistant"
        elif kind in CALL_ITEMS:
            reasoning = _assistant_piece(messages, reasoning, joinable, call=tools_wire.call_of(item, kind, at))
            joinable = True
        elif kind in ("function_call_output", "custom_tool_call_output", "tool_search_output"):
            messages.append(tools_wire.tool_search_output(item, at) if kind == "tool_search_output"
                            else _parse_function_output(item, at))
            reasoning = []
            joinable = False
        elif kind in tools_wire.PROVIDER_ITEMS:  # a hosted tool's item: part of the assistant's turn
            reasoning = _assistant_piece(messages, reasoning, joinable, part=tools_wire.provider_item(item))
            joinable = True
        elif kind == "reasoning":
            reasoning.append(_parse_reasoning(item, at))
        elif kind == tools_wire.ADDITIONAL:
            continue  # its tools are the request's (parse_request); an upstream of this protocol gets the item
        elif kind == "item_reference":
            raise unsupported(f"{at}.type", "item references are not supported by this proxy; "
                               "send the item itself or use previous_response_id")
        else:
            raise invalid_value(f"{at}.type", "one of 'message', 'function_call', 'function_call_output', "
                        "'custom_tool_call', 'custom_tool_call_output', 'reasoning' or a hosted tool's item")
    return messages


def _assistant_piece(messages: list[Message], reasoning: list[Part], joinable: bool, *,
                     call: ToolCall | None = None, part: Part | None = None) -> list[Part]:
    """Add a tool call or a hosted tool's item to the assistant turn at the end (a new one when there is
    none to join, led by the reasoning before it); returns the reasoning still waiting for its turn."""
    if joinable and (part is not None or not reasoning):
        last = messages[-1]
        content = (*_as_parts(last.content), part) if part is not None else last.content
        calls = (*last.tool_calls, call) if call is not None else last.tool_calls
        messages[-1] = Message(role="assistant", content=content, tool_calls=calls)
        return reasoning
    content = (*reasoning, part) if part is not None else (tuple(reasoning) or None)
    messages.append(Message(role="assistant", content=content, tool_calls=(call,) if call is not None else ()))
    return []


def _as_parts(content: str | tuple[Part, ...] | None) -> tuple[Part, ...]:
    if content is None:
        return ()
    return (TextPart(content),) if isinstance(content, str) else content


def _parse_message(item: Mapping[str, Any], where: str) -> Message:
    role = item.get("role")
    if not isinstance(role, str) or role not in _INPUT_ROLES:
        raise invalid_value(f"{where}.role", "one of " + ", ".join(sorted(_INPUT_ROLES)))
    content = item.get("content")
    if isinstance(content, str):
        return Message(role=role, content=content)
    if content is None:
        raise missing_parameter(f"{where}.content")
    if not isinstance(content, list):
        raise invalid_value(f"{where}.content", "a string or an array of content parts")
    return Message(role=role, content=tuple(_parse_part(p, f"{where}.content[{j}]") for j, p in enumerate(content)))


def _parse_part(part: Any, where: str) -> Part:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text"):
        text = part.get("text")
        if not isinstance(text, str):
            raise invalid_value(f"{where}.text", "a string")
        return TextPart(text)
    if kind == "refusal":
        refusal = part.get("refusal")
        if not isinstance(refusal, str):
            raise invalid_value(f"{where}.refusal", "a string")
        return TextPart(refusal)
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            if part.get("file_id") is not None:
                raise unsupported(f"{where}.file_id", "file ids are not supported by this proxy; "
                                   "send the image as image_url (https or data: URL)")
            raise missing_parameter(f"{where}.image_url")
        detail = part.get("detail")
        if detail is not None and not isinstance(detail, str):
            raise invalid_value(f"{where}.detail", "'low', 'high' or 'auto'")
        return ImagePart(url, detail)
    if kind == "input_file":
        return _parse_file(part, where)
    if kind == "input_audio":
        raise unsupported(f"{where}.type", f"'{kind}' content is not supported by this proxy")
    raise invalid_value(f"{where}.type", "'input_text', 'input_image' or (in assistant messages) 'output_text'")


def _parse_file(part: Mapping[str, Any], where: str) -> FilePart:
    """An ``input_file``: inline ``file_data`` (a data URL) or a ``file_url``; file ids are not supported."""
    filename = part.get("filename")
    name = filename if isinstance(filename, str) else None
    data = part.get("file_data")
    if isinstance(data, str):
        header, comma, payload = data.partition(",")
        if data.startswith("data:") and comma and header.endswith(";base64"):
            media = header[len("data:"):].removesuffix(";base64").split(";", 1)[0]
            return FilePart(media or "application/pdf", data=payload, filename=name, spec=part, protocol=PROTOCOL)
        return FilePart("application/pdf", data=data, filename=name, spec=part, protocol=PROTOCOL)  # bare base64
    url = part.get("file_url")
    if isinstance(url, str):
        return FilePart("application/pdf", url=url, filename=name, spec=part, protocol=PROTOCOL)
    if part.get("file_id") is not None:
        raise unsupported(f"{where}.file_id", "file ids are not supported by this proxy; send the file as "
                           "file_data (a base64 data URL) or file_url")
    raise missing_parameter(f"{where}.file_data")


def _string(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if value is None:
        raise missing_parameter(f"{where}.{key}")
    if not isinstance(value, str):
        raise invalid_value(f"{where}.{key}", "a string")
    return value


def _parse_function_output(item: Mapping[str, Any], where: str) -> Message:
    call_id = _string(item, "call_id", where)
    output = item.get("output")
    if output is None:
        raise missing_parameter(f"{where}.output")
    if isinstance(output, str):
        return Message(role="tool", content=output, tool_call_id=call_id)
    if not isinstance(output, list):
        raise invalid_value(f"{where}.output", "a string or an array of content parts")
    parts = tuple(_parse_part(p, f"{where}.output[{j}]") for j, p in enumerate(output))
    return Message(role="tool", content=parts, tool_call_id=call_id)


def _parse_reasoning(item: Mapping[str, Any], where: str) -> ReasoningPart | RedactedReasoningPart:
    texts: list[str] = []
    for key in ("content", "summary"):
        pieces = item.get(key)
        if pieces is None:
            continue
        if not isinstance(pieces, list):
            raise invalid_value(f"{where}.{key}", "an array of text parts")
        for j, piece in enumerate(pieces):
            text = piece.get("text") if isinstance(piece, dict) else None
            if not isinstance(text, str):
                raise invalid_value(f"{where}.{key}[{j}].text", "a string")
            texts.append(text)
        if texts:  # the full reasoning text wins over its summary
            break
    signature = item.get("encrypted_content")
    if signature is not None and not isinstance(signature, str):
        raise invalid_value(f"{where}.encrypted_content", "a string")
    return read_reasoning("\n".join(texts), signature or None, PROTOCOL)  # another protocol's comes folded


def parse_tool_choice(raw: Any) -> tuple[ToolChoice | None, frozenset[str] | None]:
    """The tool choice, and the tool names an ``allowed_tools`` choice narrows ``tools`` to."""
    if raw is None:
        return None, None
    if raw in ("auto", "none", "required"):
        return ToolChoice(raw), None
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind in ("function", "custom") and isinstance(raw, dict):
        if not isinstance(raw.get("name"), str):
            raise missing_parameter("tool_choice.name")
        namespace = raw.get("namespace")
        name = f"{namespace}{tools_wire.SEPARATOR}{raw['name']}" if isinstance(namespace, str) else raw["name"]
        return ToolChoice("tool", name), None
    if kind == "allowed_tools" and isinstance(raw, dict):
        mode = raw.get("mode")
        if mode not in ("auto", "required"):
            raise invalid_value("tool_choice.mode", "'auto' or 'required'")
        listed = raw.get("tools")
        if not isinstance(listed, list):
            raise invalid_value("tool_choice.tools", "an array of {\"type\": \"function\", \"name\": ...}")
        names = set()
        for i, entry in enumerate(listed):
            if not isinstance(entry, dict) or entry.get("type") != "function" or not isinstance(
                entry.get("name"), str
            ):
                raise invalid_value(f"tool_choice.tools[{i}]", "{\"type\": \"function\", \"name\": ...}")
            names.add(entry["name"])
        return ToolChoice(mode), frozenset(names)
    if isinstance(kind, str):  # a hosted tool (web_search ...): the model may use it, as with "auto"
        return ToolChoice("auto"), None
    raise invalid_value("tool_choice", "'auto', 'none', 'required' or {\"type\": \"function\", \"name\": ...}")


def parse_parameters(body: Mapping[str, Any]) -> dict[str, Any]:
    """Generation parameters under the canonical (Chat Completions) names."""
    params: dict[str, Any] = {}
    limit = body.get("max_output_tokens")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise invalid_value("max_output_tokens", "a positive integer")
        params["max_tokens"] = limit
    for key, (low, high) in (("temperature", (0.0, 2.0)), ("top_p", (0.0, 1.0))):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
            raise invalid_value(key, f"a number between {low:g} and {high:g}")
        params[key] = value
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise invalid_value("reasoning", "an object")
        effort = reasoning.get("effort")
        if effort is not None and not isinstance(effort, str):
            raise invalid_value("reasoning.effort", "a string such as 'low', 'medium' or 'high'")
        if effort is not None:
            params["reasoning_effort"] = effort
    text = body.get("text")
    if text is not None:
        if not isinstance(text, dict):
            raise invalid_value("text", "an object")
        response_format = _response_format(text.get("format"))
        if response_format is not None:
            params["response_format"] = response_format
    return params


def _response_format(raw: Any) -> dict[str, Any] | None:
    """``text.format`` as Chat Completions' ``response_format`` (None for plain text)."""
    if raw is None:
        return None
    kind = raw.get("type") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or kind not in _FORMAT_TYPES:
        raise invalid_value("text.format.type", "'text', 'json_object' or 'json_schema'")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    name = _string(raw, "name", "text.format")
    schema = raw.get("schema")
    if not isinstance(schema, dict):
        raise invalid_value("text.format.schema", "a JSON schema object")
    spec: dict[str, Any] = {"name": name, "schema": schema}
    for key in ("description", "strict"):
        if raw.get(key) is not None:
            spec[key] = raw[key]
    return {"type": "json_schema", "json_schema": spec}
