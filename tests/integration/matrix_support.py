"""Drivers and scripts for the cross-protocol matrix (tests/integration/test_protocol_matrix.py).

- A *driver* speaks one client surface of the proxy through its official SDK (openai Chat
  Completions, openai Responses, anthropic Messages, google-genai) and returns what the client saw in a
  normalized :class:`Result` (text, streamed pieces, tool calls, usage, finish) or :class:`Failure`.
- A *script* drives one upstream fake (OpenAI, Anthropic, Gemini): it makes the fake answer with
  text, a tool call streamed in pieces, or an error, and reads what the fake recorded back into
  protocol-neutral :class:`Part` values (text, image, call, result), parsing each protocol's own
  shapes strictly, so a request in the wrong shape fails the test rather than being overlooked.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anthropic
import openai
from google import genai
from google.genai import errors, types

from fakes import anthropic_upstream, gemini_upstream, openai_upstream, responses_upstream
from fakes.anthropic_upstream import FakeAnthropic, ToolUseSpec
from fakes.gemini_upstream import FakeGemini, FunctionCallSpec, GeminiBehaviour
from fakes.openai_upstream import FakeOpenAI, ToolCallSpec
from fakes.responses_upstream import CallSpec, FakeResponses, ResponsesBehaviour
from integration.conftest import ProxyServer

# ---- the conversation every cell uses ----------------------------------------------------------

TOOL_NAME = "get_weather"
TOOL_DESCRIPTION = "Weather forecast of a city"
TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "array", "items": {"type": "integer"}},
                   "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city"],
}
CALL_ARGS = {"city": "Paris"}  # the earlier call in the tool-result turn
RESULT = {"temp_c": 18, "sky": "sunny"}  # what the tool answered
RESULT_TEXT = json.dumps(RESULT)
TOOL_QUESTION = "What is the weather in Paris?"
IMAGE_QUESTION = "What colour is this picture?"


def tiny_png() -> bytes:
    """A valid 2x2 RGB PNG (red, green / green, red)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"\x00\xff\x00\x00\x00\xff\x00" + b"\x00\x00\xff\x00\xff\x00\x00"
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = tiny_png()
PNG_B64 = base64.b64encode(PNG).decode()
PNG_DATA_URL = f"data:image/png;base64,{PNG_B64}"


# ---- what a client saw -------------------------------------------------------------------------


@dataclass
class Call:
    id: str | None
    name: str
    arguments: str | None  # the JSON text as assembled from the streamed deltas (None: the protocol carries objects)
    args: Any  # the arguments as an object
    deltas: int = 1  # how many non-empty argument pieces arrived
    final: str | None = None  # the arguments as the SDK's own "done"/final object reports them, where it has one


@dataclass
class Result:
    text: str = ""
    pieces: list[str] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    usage: tuple[int, int] | None = None
    finish: str | None = None  # normalized: "stop" or "tool"


@dataclass
class Failure:
    error: BaseException
    status: int | None
    message: str
    kind: str | None  # the error's type (OpenAI, Anthropic) or google.rpc status name (Gemini)


# ---- what an upstream saw ----------------------------------------------------------------------


@dataclass
class Part:
    role: str  # system, user, assistant, tool
    kind: str  # text, image, call, result
    text: str = ""
    mime: str = ""
    data: bytes = b""
    id: str | None = None
    name: str | None = None
    value: Any = None  # call: the arguments object; result: the content, parsed when it is JSON text
    raw: Any = None  # call: the arguments as sent (text or object); result: the content as sent


@dataclass
class Seen:
    body: dict[str, Any]
    streamed: bool


def parse_json_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def joined_text(content: Any, where: str) -> str:
    """A tool result's content: a string, or a list of text blocks."""
    if isinstance(content, str):
        return content
    assert isinstance(content, list), f"{where}: content {content!r}"
    assert all(isinstance(b, dict) and b.get("type") == "text" for b in content), f"{where}: {content!r}"
    return "".join(b["text"] for b in content)


def data_url(url: str) -> tuple[str, bytes]:
    match = re.fullmatch(r"data:([^;,]+);base64,(.*)", url, re.S)
    assert match, f"not a base64 data URL: {url[:60]!r}"
    return match.group(1), base64.b64decode(match.group(2), validate=True)


def snake_to_camel(key: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)


class Script:
    """One upstream fake, scripted; a subclass per protocol."""

    protocol: ClassVar[str]
    backend: ClassVar[str]
    model: ClassVar[str]
    args_text: ClassVar[bool]  # whether tool arguments travel as JSON text (OpenAI, Anthropic) or objects (Gemini)
    has_ids: ClassVar[bool]  # whether tool calls and results are linked by ids in this protocol
    key_env: ClassVar[str] = "MATRIX_UPSTREAM_KEY"

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.proxy: ProxyServer | None = None
        self.drivers: dict[str, Driver] = {}
        self._mark = 0

    @property
    def client_model(self) -> str:
        return f"{self.backend}:{self.model}"

    def begin(self) -> None:
        """Start a cell: forget earlier requests, answer the default text."""
        self._mark = len(self._generate_requests())
        self.text("Hello from the matrix.", 3)

    def seen(self) -> list[Seen]:
        return [Seen(r.body, self.streamed(r)) for r in self._generate_requests()[self._mark:]]

    def only(self) -> Seen:
        seen = self.seen()
        assert len(seen) == 1, f"expected one upstream request, got {len(seen)}"
        return seen[0]

    # per protocol
    protocol_yaml: ClassVar[str] = ""  # backend.yaml lines this protocol needs besides the common ones

    def backend_yaml(self) -> str:
        return (
            f"backend_type: custom\nprotocol: {self.protocol}\napi_base_url: {self.fake.base_url}\n"
            f"api_key_env_var: {self.key_env}\n{self.protocol_yaml}max_retries: 0\nmodels:\n  {self.model}: {{}}\n"
        )

    def _generate_requests(self) -> list[Any]:
        raise NotImplementedError

    def streamed(self, request: Any) -> bool:
        raise NotImplementedError

    def text(self, reply: str, chunks: int) -> None:
        raise NotImplementedError

    def tool_call(self, arguments: str, call_id: str, pieces: int) -> None:
        raise NotImplementedError

    def error(self, status: int, message: str) -> None:
        raise NotImplementedError

    def usage(self, seen: Seen) -> tuple[int, int]:
        """The (input, output) tokens the fake reported for this request."""
        raise NotImplementedError

    def parts(self, body: dict[str, Any]) -> list[Part]:
        raise NotImplementedError

    def tool_names(self, body: dict[str, Any]) -> list[str]:
        raise NotImplementedError


class OpenAIScript(Script):
    protocol = "openai"
    backend = "oa"
    model = "gpt-matrix"
    args_text = True
    has_ids = True
    fake: FakeOpenAI

    def _generate_requests(self) -> list[Any]:
        return self.fake.chat_requests()

    def streamed(self, request: Any) -> bool:
        return request.body.get("stream") is True

    def text(self, reply: str, chunks: int) -> None:
        self.fake.default = openai_upstream.Behaviour(reply=reply, chunks=chunks)

    def tool_call(self, arguments: str, call_id: str, pieces: int) -> None:
        self.fake.default = openai_upstream.Behaviour(
            tool_call=ToolCallSpec(name=TOOL_NAME, arguments=arguments, id=call_id, pieces=pieces))

    def error(self, status: int, message: str) -> None:
        self.fake.default = openai_upstream.Behaviour(status=status, error_message=message)

    def usage(self, seen: Seen) -> tuple[int, int]:
        beh = self.fake.default
        text = beh.reply if beh.tool_call is None else f"{beh.tool_call.name} {beh.tool_call.arguments}"
        return openai_upstream.prompt_tokens(seen.body), max(1, len(text.split()))

    def parts(self, body: dict[str, Any]) -> list[Part]:
        out: list[Part] = []
        for i, message in enumerate(body["messages"]):
            role, content = message["role"], message.get("content")
            if role == "tool":
                text = joined_text(content, f"messages[{i}]")
                out.append(Part("tool", "result", id=message["tool_call_id"], name=message.get("name"),
                                value=parse_json_text(text), raw=text))
                continue
            if isinstance(content, str):
                out.append(Part(role, "text", text=content))
            elif content is not None:
                for j, block in enumerate(content):
                    if block["type"] == "text":
                        out.append(Part(role, "text", text=block["text"]))
                    elif block["type"] == "image_url":
                        mime, data = data_url(block["image_url"]["url"])
                        out.append(Part(role, "image", mime=mime, data=data))
                    else:
                        raise AssertionError(f"messages[{i}].content[{j}]: unexpected {block!r}")
            for call in message.get("tool_calls") or []:
                assert call["type"] == "function", call
                arguments = call["function"]["arguments"]
                assert isinstance(arguments, str), "OpenAI carries arguments as JSON text"
                out.append(Part(role, "call", id=call["id"], name=call["function"]["name"],
                                value=json.loads(arguments), raw=arguments))
        return out

    def tool_names(self, body: dict[str, Any]) -> list[str]:
        return [t["function"]["name"] for t in body.get("tools") or [] if t.get("type") == "function"]


class AnthropicScript(Script):
    protocol = "anthropic"
    backend = "an"
    model = "claude-matrix"
    args_text = True
    has_ids = True
    fake: FakeAnthropic

    protocol_yaml = f'headers:\n  anthropic-version: "{anthropic_upstream.VERSION}"\n'

    def _generate_requests(self) -> list[Any]:
        return self.fake.message_requests()

    def streamed(self, request: Any) -> bool:
        return request.body.get("stream") is True

    def text(self, reply: str, chunks: int) -> None:
        self.fake.default = anthropic_upstream.Behaviour(reply=reply, chunks=chunks)

    def tool_call(self, arguments: str, call_id: str, pieces: int) -> None:
        self.fake.default = anthropic_upstream.Behaviour(
            tool_use=ToolUseSpec(TOOL_NAME, arguments, id=call_id, pieces=pieces))

    def error(self, status: int, message: str) -> None:
        self.fake.default = anthropic_upstream.Behaviour(status=status, error_message=message)

    def usage(self, seen: Seen) -> tuple[int, int]:
        beh = self.fake.default
        return anthropic_upstream.input_tokens(seen.body), FakeAnthropic._output_tokens(beh)

    def parts(self, body: dict[str, Any]) -> list[Part]:
        out: list[Part] = []
        system = body.get("system")
        if system is not None:
            out.append(Part("system", "text", text=joined_text(system, "system")))
        for i, message in enumerate(body["messages"]):
            role, content = message["role"], message["content"]
            if isinstance(content, str):
                out.append(Part(role, "text", text=content))
                continue
            for j, block in enumerate(content):
                kind = block["type"]
                if kind == "text":
                    out.append(Part(role, "text", text=block["text"]))
                elif kind == "image":
                    source = block["source"]
                    assert source["type"] == "base64", source
                    out.append(Part(role, "image", mime=source["media_type"],
                                    data=base64.b64decode(source["data"], validate=True)))
                elif kind == "tool_use":
                    assert role == "assistant", f"messages[{i}]: tool_use in a {role} turn"
                    assert isinstance(block["input"], dict), "Anthropic carries input as an object"
                    out.append(Part(role, "call", id=block["id"], name=block["name"], value=block["input"],
                                    raw=block["input"]))
                elif kind == "tool_result":
                    assert role == "user", f"messages[{i}]: tool_result in a {role} turn"
                    text = joined_text(block.get("content", ""), f"messages[{i}].content[{j}]")
                    out.append(Part("tool", "result", id=block["tool_use_id"], value=parse_json_text(text),
                                    raw=text))
                else:
                    raise AssertionError(f"messages[{i}].content[{j}]: unexpected {block!r}")
        return out

    def tool_names(self, body: dict[str, Any]) -> list[str]:
        return [t["name"] for t in body.get("tools") or []]


class GeminiScript(Script):
    protocol = "gemini"
    backend = "gm"
    model = "gemini-matrix"
    args_text = False
    has_ids = False
    fake: FakeGemini

    def _generate_requests(self) -> list[Any]:
        return self.fake.generate_requests()

    def streamed(self, request: Any) -> bool:
        return request.rpc == "streamGenerateContent"

    def text(self, reply: str, chunks: int) -> None:
        self.fake.default = GeminiBehaviour(reply=reply, chunks=chunks)

    def tool_call(self, arguments: str, call_id: str, pieces: int) -> None:
        # Gemini carries a call's arguments as one object, in one chunk: there are no pieces to split.
        self.fake.default = GeminiBehaviour(function_calls=[FunctionCallSpec(TOOL_NAME, json.loads(arguments))])

    def error(self, status: int, message: str) -> None:
        self.fake.default = GeminiBehaviour(status=status, error_message=message)

    def usage(self, seen: Seen) -> tuple[int, int]:
        beh = self.fake.default
        if beh.function_calls:
            output = sum(len(fc.name.split()) + len(json.dumps(fc.args).split()) for fc in beh.function_calls)
        else:
            output = len(beh.reply.split())
        return gemini_upstream.prompt_tokens(seen.body), output

    def parts(self, body: dict[str, Any]) -> list[Part]:
        out: list[Part] = []
        system = body.get("systemInstruction") or body.get("system_instruction")
        contents = [("system", system)] if system else []
        contents += [({"user": "user", "model": "assistant"}[c["role"]], c) for c in body["contents"]]
        for role, content in contents:
            for raw_part in content["parts"]:
                part = {snake_to_camel(k): v for k, v in raw_part.items()}
                if "text" in part:
                    out.append(Part(role, "text", text=part["text"]))
                elif "inlineData" in part:
                    blob = {snake_to_camel(k): v for k, v in part["inlineData"].items()}
                    out.append(Part(role, "image", mime=blob["mimeType"],
                                    data=base64.b64decode(blob["data"], validate=True)))
                elif "functionCall" in part:
                    assert role == "assistant", f"functionCall in a {role} turn"
                    call = part["functionCall"]
                    assert isinstance(call.get("args", {}), dict), "Gemini carries args as an object"
                    out.append(Part(role, "call", id=call.get("id"), name=call["name"], value=call.get("args", {}),
                                    raw=call.get("args")))
                elif "functionResponse" in part:
                    assert role == "user", f"functionResponse in a {role} turn"
                    answer = part["functionResponse"]
                    response = answer["response"]
                    assert isinstance(response, dict), "Gemini carries a function's response as an object"
                    value: Any = response
                    if len(response) == 1 and next(iter(response)) in ("result", "output", "content") \
                            and isinstance(next(iter(response.values())), str):
                        value = parse_json_text(next(iter(response.values())))
                    out.append(Part("tool", "result", id=answer.get("id"), name=answer["name"], value=value,
                                    raw=response))
                else:
                    raise AssertionError(f"unexpected Gemini part {raw_part!r}")
        return out

    def tool_names(self, body: dict[str, Any]) -> list[str]:
        names = []
        for tool in body.get("tools") or []:
            declarations = tool.get("functionDeclarations") or tool.get("function_declarations") or []
            names += [d["name"] for d in declarations]
        return names


class ResponsesScript(Script):
    protocol = "openai-responses"
    backend = "rs"
    model = "gpt-matrix-responses"
    args_text = True
    has_ids = True
    fake: FakeResponses

    def _generate_requests(self) -> list[Any]:
        return self.fake.response_requests()

    def streamed(self, request: Any) -> bool:
        return request.body.get("stream") is True

    def text(self, reply: str, chunks: int) -> None:
        self.fake.default = ResponsesBehaviour(reply=reply, chunks=chunks)

    def tool_call(self, arguments: str, call_id: str, pieces: int) -> None:
        self.fake.default = ResponsesBehaviour(call=CallSpec(TOOL_NAME, arguments, call_id=call_id, pieces=pieces))

    def error(self, status: int, message: str) -> None:
        self.fake.default = ResponsesBehaviour(status=status, error_message=message)

    def usage(self, seen: Seen) -> tuple[int, int]:
        items, _ = self.fake._items(self.fake.default)
        return responses_upstream.input_tokens(seen.body), max(1, sum(
            len(t.split()) for t in responses_upstream._texts(items)))

    def parts(self, body: dict[str, Any]) -> list[Part]:
        out: list[Part] = []
        if isinstance(body.get("instructions"), str):
            out.append(Part("system", "text", text=body["instructions"]))
        for i, item in enumerate(body["input"]):
            kind = item.get("type", "message")
            if kind == "message":
                role = "system" if item["role"] in ("system", "developer") else item["role"]
                content = item["content"]
                if isinstance(content, str):
                    out.append(Part(role, "text", text=content))
                    continue
                for j, block in enumerate(content):
                    if block["type"] in ("input_text", "output_text"):
                        out.append(Part(role, "text", text=block["text"]))
                    elif block["type"] == "input_image":
                        mime, data = data_url(block["image_url"])
                        out.append(Part(role, "image", mime=mime, data=data))
                    else:
                        raise AssertionError(f"input[{i}].content[{j}]: unexpected {block!r}")
            elif kind == "function_call":
                arguments = item["arguments"]
                assert isinstance(arguments, str), "Responses carries arguments as JSON text"
                out.append(Part("assistant", "call", id=item["call_id"], name=item["name"],
                                value=json.loads(arguments), raw=arguments))
            elif kind == "function_call_output":
                text = joined_text(item["output"], f"input[{i}].output") if not isinstance(
                    item["output"], str) else item["output"]
                out.append(Part("tool", "result", id=item["call_id"], value=parse_json_text(text), raw=text))
            else:
                raise AssertionError(f"input[{i}]: unexpected item {item!r}")
        return out

    def tool_names(self, body: dict[str, Any]) -> list[str]:
        return [t["name"] for t in body.get("tools") or [] if t.get("type") == "function"]


SCRIPTS: dict[str, type[Script]] = {"openai": OpenAIScript, "anthropic": AnthropicScript, "gemini": GeminiScript,
                                    "openai-responses": ResponsesScript}
FAKES: dict[str, type[Any]] = {"openai": FakeOpenAI, "anthropic": FakeAnthropic, "gemini": FakeGemini,
                               "openai-responses": FakeResponses}


# ---- the client surfaces -----------------------------------------------------------------------


class Driver:
    """One client surface of the proxy, through its official SDK."""

    surface: ClassVar[str]
    args_text: ClassVar[bool]  # whether this surface carries tool arguments as text
    call_id: ClassVar[str | None]  # the id the client gives its earlier tool call (None: the surface has none)
    bad_request: ClassVar[type[BaseException]]

    def __init__(self, proxy: ProxyServer) -> None:
        self.proxy = proxy

    def text(self, model: str, prompt: str) -> Result:
        raise NotImplementedError

    def stream(self, model: str, prompt: str) -> Result:
        raise NotImplementedError

    def tool_stream(self, model: str, prompt: str) -> Result:
        raise NotImplementedError

    def tool_result(self, model: str) -> Result:
        raise NotImplementedError

    def image(self, model: str) -> Result:
        raise NotImplementedError

    def error(self, model: str, stream: bool) -> Failure:
        raise NotImplementedError


def _openai_failure(exc: openai.APIStatusError) -> Failure:
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    kind = body.get("type") if isinstance(body, dict) else None
    return Failure(exc, exc.status_code, str(message if message is not None else exc.message), kind)


class ChatDriver(Driver):
    surface = "chat"
    args_text = True
    call_id = "call_w1"
    bad_request = openai.BadRequestError
    FINISH: ClassVar[dict[str | None, str]] = {"stop": "stop", "tool_calls": "tool"}
    TOOLS: ClassVar[Any] = [{"type": "function", "function": {"name": TOOL_NAME, "description": TOOL_DESCRIPTION,
                                                              "parameters": TOOL_SCHEMA}}]

    def __init__(self, proxy: ProxyServer) -> None:
        super().__init__(proxy)
        self.client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="client-key", max_retries=0, timeout=15)

    def _whole(self, model: str, messages: Any, **kwargs: Any) -> Result:
        answer = self.client.chat.completions.create(model=model, messages=messages, **kwargs)
        choice = answer.choices[0]
        usage = (answer.usage.prompt_tokens, answer.usage.completion_tokens) if answer.usage else None
        calls = [Call(c.id, c.function.name, c.function.arguments, json.loads(c.function.arguments))  # type: ignore[union-attr]
                 for c in choice.message.tool_calls or []]
        return Result(text=choice.message.content or "", calls=calls, usage=usage,
                      finish=self.FINISH.get(choice.finish_reason, choice.finish_reason))

    def _streamed(self, model: str, messages: Any, **kwargs: Any) -> Result:
        result = Result()
        calls: dict[int, Call] = {}
        for chunk in self.client.chat.completions.create(model=model, messages=messages, stream=True,
                                                         stream_options={"include_usage": True}, **kwargs):
            if chunk.usage is not None:
                result.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            for choice in chunk.choices:
                if choice.delta.content:
                    result.pieces.append(choice.delta.content)
                for delta in choice.delta.tool_calls or []:
                    call = calls.setdefault(delta.index, Call(None, "", "", None, deltas=0))
                    call.id = delta.id or call.id
                    if delta.function is not None:
                        call.name += delta.function.name or ""
                        if delta.function.arguments:
                            call.arguments = (call.arguments or "") + delta.function.arguments
                            call.deltas += 1
                if choice.finish_reason:
                    result.finish = self.FINISH.get(choice.finish_reason, choice.finish_reason)
        for call in calls.values():
            call.args = json.loads(call.arguments or "null")
        result.calls = [calls[i] for i in sorted(calls)]
        result.text = "".join(result.pieces)
        return result

    def text(self, model: str, prompt: str) -> Result:
        return self._whole(model, [{"role": "user", "content": prompt}])

    def stream(self, model: str, prompt: str) -> Result:
        return self._streamed(model, [{"role": "user", "content": prompt}])

    def tool_stream(self, model: str, prompt: str) -> Result:
        return self._streamed(model, [{"role": "user", "content": prompt}], tools=self.TOOLS)

    def tool_result(self, model: str) -> Result:
        return self._whole(model, [
            {"role": "user", "content": TOOL_QUESTION},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": self.call_id, "type": "function",
                 "function": {"name": TOOL_NAME, "arguments": json.dumps(CALL_ARGS)}}]},
            {"role": "tool", "tool_call_id": self.call_id, "content": RESULT_TEXT},
        ], tools=self.TOOLS)

    def image(self, model: str) -> Result:
        return self._whole(model, [{"role": "user", "content": [
            {"type": "text", "text": IMAGE_QUESTION},
            {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]}])

    def error(self, model: str, stream: bool) -> Failure:
        try:
            (self._streamed if stream else self._whole)(model, [{"role": "user", "content": "fail please"}])
        except openai.APIStatusError as exc:
            return _openai_failure(exc)
        raise AssertionError("the upstream error did not reach the client")


class ResponsesDriver(Driver):
    surface = "responses"
    args_text = True
    call_id = "call_w1"
    bad_request = openai.BadRequestError
    TOOLS: ClassVar[Any] = [{"type": "function", "name": TOOL_NAME, "description": TOOL_DESCRIPTION,
                             "parameters": TOOL_SCHEMA, "strict": False}]

    def __init__(self, proxy: ProxyServer) -> None:
        super().__init__(proxy)
        self.client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="client-key", max_retries=0, timeout=15)

    @staticmethod
    def _of(response: Any) -> Result:
        calls = [Call(item.call_id, item.name, item.arguments, json.loads(item.arguments), final=item.arguments)
                 for item in response.output if item.type == "function_call"]
        usage = (response.usage.input_tokens, response.usage.output_tokens) if response.usage else None
        finish = "tool" if calls else ("stop" if response.status == "completed" else response.status)
        return Result(text=response.output_text, calls=calls, usage=usage, finish=finish)

    def _whole(self, model: str, input: Any, **kwargs: Any) -> Result:
        return self._of(self.client.responses.create(model=model, input=input, **kwargs))

    def _streamed(self, model: str, input: Any, **kwargs: Any) -> Result:
        pieces: list[str] = []
        deltas: dict[str, list[str]] = {}
        done: dict[str, str] = {}
        completed = None
        for event in self.client.responses.create(model=model, input=input, stream=True, **kwargs):
            if event.type == "response.output_text.delta":
                pieces.append(event.delta)
            elif event.type == "response.function_call_arguments.delta":
                deltas.setdefault(event.item_id, []).append(event.delta)
            elif event.type == "response.function_call_arguments.done":
                done[event.item_id] = event.arguments
            elif event.type == "response.completed":
                completed = event.response
        assert completed is not None, "no response.completed event"
        result = self._of(completed)
        result.pieces = pieces
        items = [item for item in completed.output if item.type == "function_call"]
        for call, item in zip(result.calls, items, strict=True):
            got = [d for d in deltas.get(item.id or "", []) if d]
            call.arguments = "".join(got)
            call.deltas = len(got)
            call.final = done.get(item.id or "")
            call.args = json.loads(call.arguments or "null")
        assert "".join(pieces) == result.text, "the streamed deltas make the completed response's text"
        return result

    def text(self, model: str, prompt: str) -> Result:
        return self._whole(model, prompt)

    def stream(self, model: str, prompt: str) -> Result:
        return self._streamed(model, prompt)

    def tool_stream(self, model: str, prompt: str) -> Result:
        return self._streamed(model, prompt, tools=self.TOOLS)

    def tool_result(self, model: str) -> Result:
        return self._whole(model, [
            {"role": "user", "content": TOOL_QUESTION},
            {"type": "function_call", "call_id": self.call_id, "name": TOOL_NAME, "arguments": json.dumps(CALL_ARGS)},
            {"type": "function_call_output", "call_id": self.call_id, "output": RESULT_TEXT},
        ], tools=self.TOOLS)

    def image(self, model: str) -> Result:
        return self._whole(model, [{"role": "user", "content": [
            {"type": "input_text", "text": IMAGE_QUESTION},
            {"type": "input_image", "image_url": PNG_DATA_URL, "detail": "auto"}]}])

    def error(self, model: str, stream: bool) -> Failure:
        try:
            (self._streamed if stream else self._whole)(model, "fail please")
        except openai.APIStatusError as exc:
            return _openai_failure(exc)
        raise AssertionError("the upstream error did not reach the client")


class AnthropicDriver(Driver):
    surface = "anthropic"
    args_text = True
    call_id = "toolu_w1"
    bad_request = anthropic.BadRequestError
    FINISH: ClassVar[dict[str | None, str]] = {"end_turn": "stop", "tool_use": "tool"}
    TOOLS: ClassVar[Any] = [{"name": TOOL_NAME, "description": TOOL_DESCRIPTION, "input_schema": TOOL_SCHEMA}]

    def __init__(self, proxy: ProxyServer) -> None:
        super().__init__(proxy)
        self.client = anthropic.Anthropic(base_url=proxy.url, api_key="client-key", max_retries=0, timeout=15)

    def _whole(self, model: str, messages: Any, **kwargs: Any) -> Result:
        message = self.client.messages.create(model=model, max_tokens=256, messages=messages, **kwargs)
        text = "".join(b.text for b in message.content if b.type == "text")
        calls = [Call(b.id, b.name, None, b.input) for b in message.content if b.type == "tool_use"]
        return Result(text=text, calls=calls, usage=(message.usage.input_tokens, message.usage.output_tokens),
                      finish=self.FINISH.get(message.stop_reason, message.stop_reason))

    def _streamed(self, model: str, messages: Any, **kwargs: Any) -> Result:
        result = Result()
        calls: dict[int, Call] = {}
        input_tokens = output_tokens = None
        for event in self.client.messages.create(model=model, max_tokens=256, messages=messages, stream=True,
                                                 **kwargs):
            if event.type == "message_start":
                input_tokens = event.message.usage.input_tokens
            elif event.type == "content_block_start" and event.content_block.type == "tool_use":
                calls[event.index] = Call(event.content_block.id, event.content_block.name, "", None, deltas=0)
            elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                result.pieces.append(event.delta.text)
            elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                call = calls[event.index]
                call.arguments = (call.arguments or "") + event.delta.partial_json
                call.deltas += bool(event.delta.partial_json)
            elif event.type == "message_delta":
                result.finish = self.FINISH.get(event.delta.stop_reason, event.delta.stop_reason)
                output_tokens = event.usage.output_tokens
                if event.usage.input_tokens is not None:
                    input_tokens = event.usage.input_tokens
        for call in calls.values():
            call.args = json.loads(call.arguments or "null")
        result.calls = [calls[i] for i in sorted(calls)]
        result.text = "".join(result.pieces)
        if input_tokens is not None and output_tokens is not None:
            result.usage = (input_tokens, output_tokens)
        return result

    def text(self, model: str, prompt: str) -> Result:
        return self._whole(model, [{"role": "user", "content": prompt}])

    def stream(self, model: str, prompt: str) -> Result:
        return self._streamed(model, [{"role": "user", "content": prompt}])

    def tool_stream(self, model: str, prompt: str) -> Result:
        return self._streamed(model, [{"role": "user", "content": prompt}], tools=self.TOOLS)

    def tool_result(self, model: str) -> Result:
        return self._whole(model, [
            {"role": "user", "content": TOOL_QUESTION},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": self.call_id, "name": TOOL_NAME, "input": CALL_ARGS}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": self.call_id, "content": RESULT_TEXT}]},
        ], tools=self.TOOLS)

    def image(self, model: str) -> Result:
        return self._whole(model, [{"role": "user", "content": [
            {"type": "text", "text": IMAGE_QUESTION},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}]}])

    def error(self, model: str, stream: bool) -> Failure:
        try:
            (self._streamed if stream else self._whole)(model, [{"role": "user", "content": "fail please"}])
        except anthropic.APIStatusError as exc:
            body = exc.body
            error = body.get("error") if isinstance(body, dict) else None
            message = error.get("message") if isinstance(error, dict) else exc.message
            kind = error.get("type") if isinstance(error, dict) else None
            return Failure(exc, exc.status_code, str(message), kind)
        raise AssertionError("the upstream error did not reach the client")


class GeminiDriver(Driver):
    surface = "gemini"
    args_text = False
    call_id = None  # Gemini clients link a result to its call by the function's name
    bad_request = errors.ClientError
    CONFIG = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(
            name=TOOL_NAME, description=TOOL_DESCRIPTION, parameters_json_schema=TOOL_SCHEMA)])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))

    def __init__(self, proxy: ProxyServer) -> None:
        super().__init__(proxy)
        # Kept on the driver for the module's lifetime: a collected Client closes the HTTP client it shares.
        self.client = genai.Client(api_key="client-key", http_options=types.HttpOptions(
            base_url=proxy.url, api_version="v1beta", timeout=15_000))

    @staticmethod
    def _usage(metadata: types.GenerateContentResponseUsageMetadata | None) -> tuple[int, int] | None:
        if metadata is None:
            return None
        return metadata.prompt_token_count or 0, metadata.candidates_token_count or 0

    @staticmethod
    def _finish(answer: types.GenerateContentResponse, calls: list[Call]) -> str | None:
        reason = (answer.candidates or [types.Candidate()])[0].finish_reason
        if reason == types.FinishReason.STOP:
            return "tool" if calls else "stop"
        return None if reason is None else str(reason)

    @staticmethod
    def _calls(answer: types.GenerateContentResponse) -> list[Call]:
        return [Call(c.id, c.name or "", None, c.args) for c in answer.function_calls or []]

    def _whole(self, model: str, contents: Any, config: types.GenerateContentConfig | None = None) -> Result:
        answer = self.client.models.generate_content(model=model, contents=contents, config=config)
        calls = self._calls(answer)
        return Result(text=answer.text or "", calls=calls, usage=self._usage(answer.usage_metadata),
                      finish=self._finish(answer, calls))

    def _streamed(self, model: str, contents: Any, config: types.GenerateContentConfig | None = None) -> Result:
        result = Result()
        for chunk in self.client.models.generate_content_stream(model=model, contents=contents, config=config):
            texts = [p.text for c in chunk.candidates or [] for p in (c.content.parts if c.content else None) or []
                     if p.text and not p.thought]
            result.pieces += texts
            result.calls += self._calls(chunk)
            result.usage = self._usage(chunk.usage_metadata) or result.usage
            result.finish = self._finish(chunk, result.calls) or result.finish
        result.text = "".join(result.pieces)
        return result

    def text(self, model: str, prompt: str) -> Result:
        return self._whole(model, prompt)

    def stream(self, model: str, prompt: str) -> Result:
        return self._streamed(model, prompt)

    def tool_stream(self, model: str, prompt: str) -> Result:
        return self._streamed(model, prompt, self.CONFIG)

    def tool_result(self, model: str) -> Result:
        return self._whole(model, [
            types.Content(role="user", parts=[types.Part(text=TOOL_QUESTION)]),
            types.Content(role="model", parts=[types.Part(function_call=types.FunctionCall(
                name=TOOL_NAME, args=CALL_ARGS))]),
            types.Content(role="user", parts=[types.Part.from_function_response(name=TOOL_NAME, response=RESULT)]),
        ], self.CONFIG)

    def image(self, model: str) -> Result:
        return self._whole(model, [types.Content(role="user", parts=[
            types.Part(text=IMAGE_QUESTION), types.Part.from_bytes(data=PNG, mime_type="image/png")])])

    def error(self, model: str, stream: bool) -> Failure:
        try:
            (self._streamed if stream else self._whole)(model, "fail please")
        except errors.APIError as exc:
            return Failure(exc, exc.code, exc.message or "", exc.status)
        raise AssertionError("the upstream error did not reach the client")


DRIVERS: dict[str, type[Driver]] = {d.surface: d for d in (ChatDriver, ResponsesDriver, AnthropicDriver, GeminiDriver)}
