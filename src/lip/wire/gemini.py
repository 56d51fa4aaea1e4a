"""Gemini generateContent wire format ⇄ canonical model, in both directions.

Shared by the Gemini frontend (client side: ``/v1beta/models/{model}:generateContent`` and kin)
and the Gemini backend codec (upstream side), so the format is written down once. Parsing
validates what a client may get wrong and names the field in an InvalidRequest; rendering trusts
the canonical model. See docs/protocols-gemini.md for the mapping, field by field.

Keys are read in Gemini's JSON spelling (``systemInstruction``) and in the proto spelling that
the REST API accepts as well (``system_instruction``). Keys with no canonical meaning are kept
in ``ChatRequest.extensions["gemini"]`` and only a Gemini upstream receives them again.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import time
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
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

PROTOCOL = "gemini"  # the key of ChatRequest.extensions this protocol owns

# google.rpc.Code names by HTTP status, as Google's APIs send them in error.status.
STATUS_NAMES: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
STATUS_CODES: Mapping[str, int] = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "UNKNOWN": 500, "INTERNAL": 500, "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
}

FINISH_FROM_WIRE: Mapping[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
}
FINISH_TO_WIRE: Mapping[str, str] = {
    "stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY", "error": "OTHER",
}

# generationConfig keys with a canonical (OpenAI-named) parameter.
_GENERATION_PARAMS: Mapping[str, str] = {
    "temperature": "temperature",
    "topP": "top_p",
    "topK": "top_k",
    "maxOutputTokens": "max_tokens",
    "stopSequences": "stop",
    "seed": "seed",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
}
# reasoning_effort (OpenAI) → thinkingConfig.thinkingBudget, as Google's OpenAI-compatible endpoint maps it.
THINKING_BUDGETS: Mapping[str, int] = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576}

# Tool call ids carry Gemini's thoughtSignature of a functionCall part (Gemini 2.5+ wants it back with
# the call): "<id>__thought__<signature, base64url without padding>", which stays in [A-Za-z0-9_-].
SIGNATURE_MARK = "__thought__"

_REQUEST_KEYS = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "model"})
_PART_KINDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse")


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


def get(obj: Mapping[str, Any], camel: str) -> Any:
    """A field in its JSON (camelCase) or proto (snake_case) spelling."""
    value = obj.get(camel)
    return obj.get(_snake(camel)) if value is None else value


def _camel_keys(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level keys of one wire object in camelCase (values untouched)."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        head, *rest = key.split("_")
        out[head + "".join(w[:1].upper() + w[1:] for w in rest)] = value
    return out


def _fail(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid value at '{param}': expected {expected}.", param=param, code="invalid_value")


# ---- client → canonical ------------------------------------------------------------------------


def model_name(raw: str) -> str:
    """The model of a request path (``models/gemini-2.5-flash`` or ``gemini-2.5-flash``)."""
    return raw.removeprefix("models/")


def parse_request(body: Mapping[str, Any], model: str, stream: bool) -> ChatRequest:
    """A GenerateContentRequest as the canonical request."""
    body = _camel_keys(body)
    extensions: dict[str, Any] = {k: v for k, v in body.items() if k not in _REQUEST_KEYS and v is not None}
    system = _parse_system(body.get("systemInstruction"))
    messages = system + _parse_contents(body.get("contents"))
    tools, other_tools = _parse_tools(body.get("tools"))
    if other_tools:
        extensions["tools"] = other_tools
    tool_choice, tool_config = _parse_tool_config(body.get("toolConfig"))
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
        raise _fail("systemInstruction", "a Content object with 'parts'")
    parts = get(raw, "parts")
    if not isinstance(parts, list):
        raise _fail("systemInstruction.parts", "an array of parts")
    texts = []
    for i, part in enumerate(parts):
        text = part.get("text") if isinstance(part, dict) else None
        if not isinstance(text, str):
            raise _fail(f"systemInstruction.parts[{i}]", "a text part")
        texts.append(text)
    return (Message("system", "\n".join(texts)),)


class _History:
    """Builds canonical messages from contents, pairing functionResponses with their calls."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.waiting: list[ToolCall] = []  # calls of the model not answered yet, in order
        self.calls = 0

    def new_id(self, given: Any) -> str:
        self.calls += 1
        return given if isinstance(given, str) and given else f"call_{self.calls}"

    def answer(self, name: str, given_id: Any, where: str) -> str:
        """The id of the waiting call this response answers: the one with its id, else the first of its name."""
        match = next((c for c in self.waiting if given_id and split_call_id(c.id)[0] == given_id), None)
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
        raise _fail("contents", "an array of Content objects")
    if not raw:
        raise InvalidRequest("'contents' must contain at least one Content.", param="contents", code="invalid_value")
    history = _History()
    for i, content in enumerate(raw):
        where = f"contents[{i}]"
        if not isinstance(content, dict):
            raise _fail(where, "a Content object with 'role' and 'parts'")
        role = content.get("role") or "user"
        if role not in ("user", "model", "function"):
            raise _fail(f"{where}.role", "'user' or 'model'")
        parts = get(content, "parts")
        if not isinstance(parts, list) or not parts:
            raise _fail(f"{where}.parts", "a non-empty array of parts")
        if role == "model":
            _add_model_turn(history, parts, where)
        else:
            _add_user_turn(history, parts, where)
    return tuple(history.messages)


def _part_kind(part: Any, where: str) -> str:
    if not isinstance(part, dict):
        raise _fail(where, "a Part object")
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
                content.append(ReasoningPart(text, signature if isinstance(signature, str) else None))
            elif content and isinstance(content[-1], TextPart):
                content[-1] = TextPart(content[-1].text + text)  # streamed pieces of one answer
            elif text:
                content.append(TextPart(text))
        elif kind == "functionCall":
            call = get(part, "functionCall")
            name = call.get("name") if isinstance(call, dict) else None
            if not isinstance(name, str) or not name:
                raise _fail(f"{at}.functionCall.name", "the function's name")
            args = call.get("args")
            if args is not None and not isinstance(args, dict):
                raise _fail(f"{at}.functionCall.args", "an object")
            call_id = join_call_id(history.new_id(call.get("id")), signature if isinstance(signature, str) else None)
            calls.append(ToolCall(id=call_id, name=name, arguments=orjson.dumps(args or {}).decode()))
        elif kind == "functionResponse":
            raise _fail(f"{at}", "no functionResponse in a 'model' turn (send it with role 'user')")
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
            response = get(part, "functionResponse")
            name = response.get("name") if isinstance(response, dict) else None
            if not isinstance(name, str) or not name:
                raise _fail(f"{at}.functionResponse.name", "the name of the function that was called")
            result = response.get("response")
            if result is not None and not isinstance(result, dict):
                raise _fail(f"{at}.functionResponse.response", "an object")
            call_id = history.answer(name, response.get("id"), f"{at}.functionResponse")
            history.messages.append(Message("tool", orjson.dumps(result or {}).decode(), tool_call_id=call_id))
        elif kind == "functionCall":
            raise _fail(at, "no functionCall in a 'user' turn (function calls come from the model)")
        else:
            content.append(_media(part, kind, at))
    if content:
        history.messages.append(Message("user", tuple(content)))


def _text_of(part: Mapping[str, Any], where: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise _fail(f"{where}.text", "a string")
    return text


def _media(part: Mapping[str, Any], kind: str, where: str) -> ImagePart:
    blob = get(part, kind)
    if not isinstance(blob, dict):
        raise _fail(f"{where}.{kind}", "an object")
    mime = get(blob, "mimeType")
    if kind == "inlineData":
        data = blob.get("data")
        if not isinstance(mime, str) or not mime:
            raise _fail(f"{where}.inlineData.mimeType", "a MIME type such as 'image/png'")
        if not isinstance(data, str):
            raise _fail(f"{where}.inlineData.data", "base64-encoded bytes")
        return ImagePart(f"data:{mime};base64,{data}")
    uri = get(blob, "fileUri")
    if not isinstance(uri, str) or not uri:
        raise _fail(f"{where}.fileData.fileUri", "a URI")
    return ImagePart(uri)


def _parse_tools(raw: Any) -> tuple[tuple[Tool, ...], list[Any]]:
    """Function declarations as canonical tools; other tools (googleSearch, codeExecution, ...) kept aside."""
    if raw is None:
        return (), []
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise _fail("tools", "an array of Tool objects")
    tools: list[Tool] = []
    others: list[Any] = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict):
            raise _fail(f"tools[{i}]", "a Tool object")
        declarations = get(tool, "functionDeclarations")
        rest = {k: v for k, v in tool.items() if k not in ("functionDeclarations", "function_declarations")}
        if rest:
            others.append(rest)
        if declarations is None:
            continue
        if not isinstance(declarations, list):
            raise _fail(f"tools[{i}].functionDeclarations", "an array of FunctionDeclaration objects")
        for j, fn in enumerate(declarations):
            where = f"tools[{i}].functionDeclarations[{j}]"
            name = fn.get("name") if isinstance(fn, dict) else None
            if not isinstance(name, str) or not name:
                raise _fail(f"{where}.name", "the function's name")
            description = fn.get("description")
            if description is not None and not isinstance(description, str):
                raise _fail(f"{where}.description", "a string")
            schema = get(fn, "parametersJsonSchema")
            if schema is None:
                openapi = fn.get("parameters")
                if openapi is not None and not isinstance(openapi, dict):
                    raise _fail(f"{where}.parameters", "a Schema object")
                schema = schema_to_json(openapi) if openapi is not None else None
            elif not isinstance(schema, dict):
                raise _fail(f"{where}.parametersJsonSchema", "a JSON schema object")
            tools.append(Tool(name=name, description=description, parameters=schema))
    return tuple(tools), others


def schema_to_json(schema: Any) -> Any:
    """Gemini's OpenAPI Schema (``"type": "OBJECT"``, ``nullable``) as JSON Schema; other keys kept."""
    if isinstance(schema, list):
        return [schema_to_json(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key == "nullable":
            continue
        elif key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: schema_to_json(s) for name, s in value.items()}
        elif key in ("items", "anyOf", "oneOf", "allOf", "not", "additionalProperties", "prefixItems"):
            out[key] = schema_to_json(value)
        else:
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _parse_tool_config(raw: Any) -> tuple[ToolChoice | None, dict[str, Any]]:
    """functionCallingConfig as a ToolChoice; the whole toolConfig is kept when it says more than that."""
    if raw is None:
        return None, {}
    if not isinstance(raw, dict):
        raise _fail("toolConfig", "a ToolConfig object")
    config = get(raw, "functionCallingConfig")
    extra = {k: v for k, v in raw.items() if k not in ("functionCallingConfig", "function_calling_config")}
    if config is None:
        return None, extra
    if not isinstance(config, dict):
        raise _fail("toolConfig.functionCallingConfig", "an object")
    mode = config.get("mode", "AUTO")
    names = get(config, "allowedFunctionNames")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise _fail("toolConfig.functionCallingConfig.allowedFunctionNames", "an array of function names")
    mode = mode.upper() if isinstance(mode, str) else mode
    if mode in ("AUTO", "MODE_UNSPECIFIED"):
        choice = ToolChoice("auto")
    elif mode == "NONE":
        choice = ToolChoice("none")
    elif mode == "ANY":
        choice = ToolChoice("tool", names[0]) if names and len(names) == 1 else ToolChoice("required")
    elif mode == "VALIDATED":
        choice = ToolChoice("auto")
    else:
        raise _fail("toolConfig.functionCallingConfig.mode", "AUTO, ANY, NONE or VALIDATED")
    lossy = mode == "VALIDATED" or (names and (mode != "ANY" or len(names) > 1))
    return choice, (_camel_keys(raw) if lossy else extra)


def _parse_generation(raw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(canonical parameters, generationConfig keys kept for a Gemini upstream)."""
    if raw is None:
        return {}, {}
    if not isinstance(raw, dict):
        raise _fail("generationConfig", "a GenerationConfig object")
    config = _camel_keys(raw)
    params: dict[str, Any] = {}
    kept: dict[str, Any] = {}
    for key, value in config.items():
        if value is None:
            continue
        where = f"generationConfig.{key}"
        if key in _GENERATION_PARAMS:
            params[_GENERATION_PARAMS[key]] = _check_generation(key, value, where)
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
        raise _fail(where, "a number between 0 and 2")
    if key == "topP" and not (number and 0 <= value <= 1):
        raise _fail(where, "a number between 0 and 1")
    if key in ("presencePenalty", "frequencyPenalty") and not number:
        raise _fail(where, "a number")
    if key in ("topK", "maxOutputTokens") and not (integer and value >= 1):
        raise _fail(where, "a positive integer")
    if key == "seed" and not integer:
        raise _fail(where, "an integer")
    if key == "stopSequences":
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise _fail(where, "an array of strings")
    return value


# ---- tool call ids -----------------------------------------------------------------------------


def join_call_id(call_id: str, signature: str | None) -> str:
    if not signature:
        return call_id
    return call_id + SIGNATURE_MARK + signature.replace("+", "-").replace("/", "_").rstrip("=")


def split_call_id(call_id: str) -> tuple[str, str | None]:
    """(the id, Gemini's thoughtSignature) of a canonical tool call id."""
    base, mark, encoded = call_id.partition(SIGNATURE_MARK)
    if not mark or not encoded:
        return call_id, None
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        return call_id, None
    return base, padded.replace("-", "+").replace("_", "/")


def arguments_object(arguments: str) -> dict[str, Any]:
    """Tool call arguments (JSON text) as the object Gemini's functionCall.args must be."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


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
    if request.tools:
        tools.append({"functionDeclarations": [tool_to_wire(t) for t in request.tools]})
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
    if isinstance(p, ReasoningPart):
        return None  # thoughts are not replayed to Gemini (signatures of other vendors would be rejected)
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


def _assistant_parts(m: Message) -> list[dict[str, Any]]:
    parts = _content_parts(m)
    for call in m.tool_calls:
        _, signature = split_call_id(call.id)  # the id itself is not sent: Gemini pairs calls by name and order
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


def tool_to_wire(t: Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name}
    if t.description is not None:
        fn["description"] = t.description
    if t.parameters is not None:
        fn["parametersJsonSchema"] = t.parameters
    return fn


def tool_choice_to_wire(choice: ToolChoice) -> dict[str, Any]:
    if choice.mode == "tool" and choice.name:
        return {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    return {"mode": {"none": "NONE", "required": "ANY"}.get(choice.mode, "AUTO")}


def generation_to_wire(request: ChatRequest) -> dict[str, Any]:
    """Canonical parameters as generationConfig; parameters Gemini has no field for are left out."""
    p = request.parameters
    out: dict[str, Any] = {}
    for wire_key, name in _GENERATION_PARAMS.items():
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
    effort = p.get("reasoning_effort")
    if isinstance(effort, str) and effort in THINKING_BUDGETS:
        out["thinkingConfig"] = {"thinkingBudget": THINKING_BUDGETS[effort]}
    if p.get("logprobs") is True:
        out["responseLogprobs"] = True
        if isinstance(p.get("top_logprobs"), int):
            out["logprobs"] = p["top_logprobs"]
    return out


# ---- wire → canonical (responses) --------------------------------------------------------------


def usage_from_wire(raw: Any) -> Usage | None:
    """usageMetadata; thoughts count as output (they are billed as output, like OpenAI's reasoning tokens)."""
    if not isinstance(raw, dict):
        return None

    def n(key: str) -> int:
        value = raw.get(key)
        return value if isinstance(value, int) else 0

    return Usage(
        input_tokens=n("promptTokenCount") + n("toolUsePromptTokenCount"),
        output_tokens=n("candidatesTokenCount") + n("thoughtsTokenCount"),
        cached_tokens=n("cachedContentTokenCount"),
    )


def finish_from_wire(reason: str, called: bool) -> str:
    if reason == "STOP" and called:
        return "tool_calls"
    return FINISH_FROM_WIRE.get(reason, "stop")


def error_from_wire(raw: Any) -> UpstreamStatus:
    """An ``{"error": {...}}`` object (in a stream, or a whole body) as a ProxyError."""
    error = raw if isinstance(raw, dict) else {"message": str(raw)}
    status_name = error.get("status")
    code = error.get("code")
    status = code if isinstance(code, int) and code >= 400 else STATUS_CODES.get(str(status_name), 502)
    return UpstreamStatus(str(error.get("message") or "upstream error"), status=status,
                          code=str(status_name or "upstream_error"))


class ResponseReader:
    """Folds GenerateContentResponse objects (a whole answer, or stream chunks) into canonical events."""

    __slots__ = ("_calls", "_first", "_model", "finished")

    def __init__(self, fallback_model: str) -> None:
        self._model = fallback_model
        self._first = True
        self._calls = 0
        self.finished = False

    def feed(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if self._first:
            self._first = False
            response_id = get(chunk, "responseId")
            version = get(chunk, "modelVersion")
            events.append(ResponseStart(id=str(response_id or f"gemini-{uuid.uuid4().hex}"),
                                        model=str(version or self._model), created=int(time.time())))
        candidates = chunk.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        if isinstance(candidate, dict):
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            for part in parts if isinstance(parts, list) else ():
                if isinstance(part, dict):
                    events.extend(self._part(part))
        usage = usage_from_wire(get(chunk, "usageMetadata"))
        reason = get(candidate, "finishReason") if isinstance(candidate, dict) else None
        if not reason:
            feedback = get(chunk, "promptFeedback")
            if isinstance(feedback, dict) and get(feedback, "blockReason"):
                reason = "SAFETY"  # the prompt was blocked: no candidates at all
        if reason and not self.finished:
            self.finished = True
            events.append(Finish(finish_from_wire(str(reason), self._calls > 0)))
        if usage is not None and self.finished:
            events.append(UsageReport(usage))
        return events

    def _part(self, part: Mapping[str, Any]) -> list[StreamEvent]:
        raw_signature = get(part, "thoughtSignature")
        signature = raw_signature if isinstance(raw_signature, str) else None
        text = part.get("text")
        if isinstance(text, str):
            if part.get("thought") is True:
                return [ReasoningDelta(text, signature)] if text or signature else []
            return [TextDelta(text)] if text else []
        call = get(part, "functionCall")
        if isinstance(call, dict):
            given = call.get("id")
            call_id = given if isinstance(given, str) and given else f"call_{uuid.uuid4().hex[:24]}"
            args = call.get("args")
            index = self._calls
            self._calls += 1
            return [ToolCallDelta(index=index, id=join_call_id(call_id, signature), name=str(call.get("name") or ""),
                                  arguments=orjson.dumps(args if isinstance(args, dict) else {}).decode())]
        return []  # inlineData (generated images), executableCode, ...: nothing canonical to carry them


def response_events(body: Mapping[str, Any], fallback_model: str) -> list[StreamEvent]:
    """A whole GenerateContentResponse as the events that would have streamed it."""
    reader = ResponseReader(fallback_model)
    events = reader.feed(body)
    if not reader.finished:
        events.append(Finish("stop"))
    return events


# ---- canonical → wire (responses) --------------------------------------------------------------


def usage_to_wire(u: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {"promptTokenCount": u.input_tokens, "candidatesTokenCount": u.output_tokens,
                           "totalTokenCount": u.total_tokens}
    if u.cached_tokens:
        out["cachedContentTokenCount"] = u.cached_tokens
    return out


def function_call_part(call: ToolCall) -> dict[str, Any]:
    call_id, signature = split_call_id(call.id)
    part: dict[str, Any] = {"functionCall": {"id": call_id, "name": call.name,
                                             "args": arguments_object(call.arguments)}}
    if signature:
        part["thoughtSignature"] = signature
    return part


def response_body(parts: list[dict[str, Any]], response_id: str, model: str, finish: str | None,
                  usage: Usage | None) -> dict[str, Any]:
    """One GenerateContentResponse (a whole answer, or one stream chunk when ``finish`` is None)."""
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts or [{"text": ""}]}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = FINISH_TO_WIRE.get(finish, "STOP")
    body: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        body["usageMetadata"] = usage_to_wire(usage)
    body["modelVersion"] = model
    body["responseId"] = response_id
    return body


def render_response(response: ChatResponse) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if response.reasoning:
        thought: dict[str, Any] = {"text": response.reasoning, "thought": True}
        if response.reasoning_signature:
            thought["thoughtSignature"] = response.reasoning_signature
        parts.append(thought)
    if response.text:
        parts.append({"text": response.text})
    parts.extend(function_call_part(c) for c in response.tool_calls)
    return response_body(parts, response.id, response.model, response.finish_reason or "stop", response.usage)


def error_body(error: ProxyError) -> dict[str, Any]:
    """Google's error envelope: code (HTTP status), message, status (google.rpc.Code name), details.

    details carries a google.rpc.ErrorInfo whose ``reason`` is the proxy's error code and whose
    ``metadata`` (string values) holds a limit error's model/limit/measured; a google.rpc.RetryInfo
    when a retry delay is known; a google.rpc.BadRequest naming the field when one is known.
    """
    status = error.status
    name = STATUS_NAMES.get(status) or ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    info: dict[str, Any] = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": error.code,
                            "domain": "lip"}
    if error.details:
        info["metadata"] = {str(k): v if isinstance(v, str) else orjson.dumps(v).decode()
                            for k, v in error.details.items()}
    details: list[dict[str, Any]] = [info]
    if error.param and not isinstance(error, LimitExceeded):
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": error.param, "description": error.message}]})
    if error.retry_after is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": f"{max(0.0, error.retry_after):.3f}".rstrip("0").rstrip(".") + "s"})
    return {"error": {"code": status, "message": error.message, "status": name, "details": details}}
