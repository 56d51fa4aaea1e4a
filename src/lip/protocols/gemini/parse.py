"""Gemini GenerateContentRequest from a client (JSON) → canonical ChatRequest, validated.

Parsing validates what a client may get wrong and names the field in an InvalidRequest. Keys are
read in Gemini's JSON spelling (``systemInstruction``) and in the proto spelling that the REST API
accepts as well (``system_instruction``). Keys with no canonical meaning are kept in
``ChatRequest.extensions["gemini"]`` and only a Gemini upstream receives them again.
"""

from __future__ import annotations

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
    TextPart,
    ToolCall,
)
from lip.core.opaque import read_reasoning
from lip.protocols.gemini.calls import call_id_and_state, signature_state
from lip.protocols.gemini.common import GENERATION_PARAMS, PROTOCOL, camel_keys, fail, get
from lip.protocols.gemini.tools import parse_tool_config, parse_tools, schema_to_json

_REQUEST_KEYS = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "model"})
_PART_KINDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse")


def parse_request(body: Mapping[str, Any], model: str, stream: bool) -> ChatRequest:
    """A GenerateContentRequest as the canonical request."""
    body = camel_keys(body)
    extensions: dict[str, Any] = {k: v for k, v in body.items() if k not in _REQUEST_KEYS and v is not None}
    system = _parse_system(body.get("systemInstruction"))
    messages = system + _parse_contents(body.get("contents"))
    tools, other_tools = parse_tools(body.get("tools"))
    if other_tools:
        extensions["tools"] = other_tools
    tool_choice, tool_config = parse_tool_config(body.get("toolConfig"))
    if tool_config:
        extensions["toolConfig"] = tool_config
    parameters, generation = _parse_generation(body.get("generationConfig"))
    if generation:
        extensions["generationConfig"] = generation
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=stream,  # Gemini streams always carry usageMetadata
        tools=tools,
        tool_choice=tool_choice,
        parameters=parameters,
        extensions={PROTOCOL: extensions} if extensions else EMPTY,
    )


def _parse_system(raw: Any) -> tuple[Message, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (Message("system", raw),)
    if not isinstance(raw, dict):
        raise fail("systemInstruction", "a Content object with 'parts'")
    parts = get(raw, "parts")
    if not isinstance(parts, list):
        raise fail("systemInstruction.parts", "an array of parts")
    texts = []
    for i, part in enumerate(parts):
        text = part.get("text") if isinstance(part, dict) else None
        if not isinstance(text, str):
            raise fail(f"systemInstruction.parts[{i}]", "a text part")
        texts.append(text)
    return (Message("system", "\n".join(texts)),)


class _History:
    """Builds canonical messages from contents, pairing functionResponses with their calls."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.waiting: list[ToolCall] = []  # calls of the model not answered yet, in order
        self.calls = 0

    def call(self, given_id: Any, name: str, args: Mapping[str, Any] | None, signature: Any) -> ToolCall:
        """A call of the model: its given id, else ``call_<n>``; its state from its thoughtSignature, else
        from its id (one a client of another protocol was shown)."""
        self.calls += 1
        call_id, carried = call_id_and_state(given_id) if isinstance(given_id, str) and given_id \
            else (f"call_{self.calls}", None)
        return ToolCall(id=call_id, name=name, arguments=orjson.dumps(args or {}).decode(),
                        signature=signature_state(signature) or carried)

    def answer(self, name: str, given_id: Any, where: str) -> str:
        """The id of the waiting call this response answers: the one with its id, else the first of its name."""
        wanted = call_id_and_state(given_id)[0] if isinstance(given_id, str) and given_id else None
        match = next((c for c in self.waiting if wanted and c.id == wanted), None)
        match = match or next((c for c in self.waiting if c.name == name), None)
        if match is not None:
            self.waiting.remove(match)
            return match.id
        raise InvalidRequest(
            f"Invalid value at '{where}': no earlier functionCall named '{name}' is waiting for this "
            "functionResponse (a function response turn must follow the model's function call turn).",
            param=where, code="invalid_value",
        )


def _parse_contents(raw: Any) -> tuple[Message, ...]:
    if raw is None:
        raise InvalidRequest("Missing required field 'contents'.", param="contents", code="missing_required_parameter")
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise fail("contents", "an array of Content objects")
    if not raw:
        raise InvalidRequest("'contents' must contain at least one Content.", param="contents", code="invalid_value")
    history = _History()
    for i, content in enumerate(raw):
        where = f"contents[{i}]"
        if not isinstance(content, dict):
            raise fail(where, "a Content object with 'role' and 'parts'")
        role = content.get("role") or "user"
        if role not in ("user", "model", "function"):
            raise fail(f"{where}.role", "'user' or 'model'")
        parts = get(content, "parts")
        if not isinstance(parts, list) or not parts:
            raise fail(f"{where}.parts", "a non-empty array of parts")
        if role == "model":
            _add_model_turn(history, parts, where)
        else:
            _add_user_turn(history, parts, where)
    return tuple(history.messages)


def _part_kind(part: Any, where: str) -> str:
    if not isinstance(part, dict):
        raise fail(where, "a Part object")
    for kind in _PART_KINDS:
        if get(part, kind) is not None:
            return kind
    known = [k for k in part if k not in ("thought", "thoughtSignature", "thought_signature", "videoMetadata")]
    what = f"'{known[0]}' parts are not supported by this proxy" if known else "the part is empty"
    raise InvalidRequest(
        f"Invalid value at '{where}': {what}; expected one of text, inlineData, fileData, functionCall, "
        "functionResponse.", param=where, code="invalid_value",
    )


def _add_model_turn(history: _History, parts: list[Any], where: str) -> None:
    content: list[Part] = []
    calls: list[ToolCall] = []
    for j, part in enumerate(parts):
        at = f"{where}.parts[{j}]"
        kind = _part_kind(part, at)
        signature = get(part, "thoughtSignature")
        if kind == "text":
            text = _text_of(part, at)
            if part.get("thought") is True:
                content.append(read_reasoning(text, signature if isinstance(signature, str) else None, PROTOCOL))
            elif content and isinstance(content[-1], TextPart):
                content[-1] = TextPart(content[-1].text + text)  # streamed pieces of one answer
            elif text:
                content.append(TextPart(text))
        elif kind == "functionCall":
            call, name, args = _function_part(part, kind, "args", at, "the function's name")
            calls.append(history.call(call.get("id"), name, args, signature))
        elif kind == "functionResponse":
            raise fail(f"{at}", "no functionResponse in a 'model' turn (send it with role 'user')")
        else:
            content.append(_media(part, kind, at))
    previous = history.messages[-1] if history.messages else None
    if previous is not None and previous.role == "assistant":  # one model turn sent as several contents
        merged = list(previous.content) if isinstance(previous.content, tuple) else []
        for p in content:
            if merged and isinstance(p, TextPart) and isinstance(merged[-1], TextPart):
                merged[-1] = TextPart(merged[-1].text + p.text)
            else:
                merged.append(p)
        history.messages[-1] = Message("assistant", tuple(merged) or None,
                                       tool_calls=previous.tool_calls + tuple(calls))
    else:
        history.messages.append(Message("assistant", tuple(content) or None, tool_calls=tuple(calls)))
    history.waiting.extend(calls)


def _add_user_turn(history: _History, parts: list[Any], where: str) -> None:
    content: list[Part] = []
    for j, part in enumerate(parts):
        at = f"{where}.parts[{j}]"
        kind = _part_kind(part, at)
        if kind == "text":
            content.append(TextPart(_text_of(part, at)))
        elif kind == "functionResponse":
            response, name, result = _function_part(part, kind, "response", at,
                                                    "the name of the function that was called")
            call_id = history.answer(name, response.get("id"), f"{at}.functionResponse")
            history.messages.append(Message("tool", orjson.dumps(result or {}).decode(), tool_call_id=call_id))
        elif kind == "functionCall":
            raise fail(at, "no functionCall in a 'user' turn (function calls come from the model)")
        else:
            content.append(_media(part, kind, at))
    if content:
        history.messages.append(Message("user", tuple(content)))


def _function_part(part: Mapping[str, Any], kind: str, value_key: str, where: str,
                   name_is: str) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
    """A functionCall's (or functionResponse's) object, its name and its args (or response), validated."""
    obj = get(part, kind)
    name = obj.get("name") if isinstance(obj, dict) else None
    if not isinstance(name, str) or not name:
        raise fail(f"{where}.{kind}.name", name_is)
    value = obj.get(value_key)
    if value is not None and not isinstance(value, dict):
        raise fail(f"{where}.{kind}.{value_key}", "an object")
    return obj, name, value


def _text_of(part: Mapping[str, Any], where: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise fail(f"{where}.text", "a string")
    return text


def _media(part: Mapping[str, Any], kind: str, where: str) -> ImagePart:
    blob = get(part, kind)
    if not isinstance(blob, dict):
        raise fail(f"{where}.{kind}", "an object")
    mime = get(blob, "mimeType")
    if kind == "inlineData":
        data = blob.get("data")
        if not isinstance(mime, str) or not mime:
            raise fail(f"{where}.inlineData.mimeType", "a MIME type such as 'image/png'")
        if not isinstance(data, str):
            raise fail(f"{where}.inlineData.data", "base64-encoded bytes")
        return ImagePart(f"data:{mime};base64,{data}")
    uri = get(blob, "fileUri")
    if not isinstance(uri, str) or not uri:
        raise fail(f"{where}.fileData.fileUri", "a URI")
    return ImagePart(uri)


def _parse_generation(raw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(canonical parameters, generationConfig keys kept for a Gemini upstream)."""
    if raw is None:
        return {}, {}
    if not isinstance(raw, dict):
        raise fail("generationConfig", "a GenerationConfig object")
    config = camel_keys(raw)
    params: dict[str, Any] = {}
    kept: dict[str, Any] = {}
    for key, value in config.items():
        if value is None:
            continue
        where = f"generationConfig.{key}"
        if key in GENERATION_PARAMS:
            params[GENERATION_PARAMS[key]] = _check_generation(key, value, where)
        elif key == "candidateCount":
            if value != 1:
                raise InvalidRequest(f"Invalid value at '{where}': only 1 candidate is supported by this proxy.",
                                     param=where, code="invalid_value")
        else:
            kept[key] = value
    mime = config.get("responseMimeType")
    if mime == "application/json":
        json_schema = config.get("responseJsonSchema")
        if json_schema is None and config.get("responseSchema") is not None:
            json_schema = schema_to_json(config["responseSchema"])
        if isinstance(json_schema, dict):
            params["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "response", "schema": json_schema}}
        else:
            params["response_format"] = {"type": "json_object"}
    return params, kept


def _check_generation(key: str, value: Any, where: str) -> Any:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    integer = isinstance(value, int) and not isinstance(value, bool)
    if key == "temperature" and not (number and 0 <= value <= 2):
        raise fail(where, "a number between 0 and 2")
    if key == "topP" and not (number and 0 <= value <= 1):
        raise fail(where, "a number between 0 and 1")
    if key in ("presencePenalty", "frequencyPenalty") and not number:
        raise fail(where, "a number")
    if key in ("topK", "maxOutputTokens") and not (integer and value >= 1):
        raise fail(where, "a positive integer")
    if key == "seed" and not integer:
        raise fail(where, "an integer")
    if key == "stopSequences":
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise fail(where, "an array of strings")
    return value
