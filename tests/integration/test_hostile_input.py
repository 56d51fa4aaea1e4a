"""Hostile input: generated bodies on every surface, over a real socket, never a 5xx, a drop or a hang.

Hypothesis builds bodies that look like each protocol's request (known keys with values of any JSON
type, roles and parts of every kind, in-chat commands, selectors of every shape) and some that do
not (any JSON, bytes that are not JSON). Each is POSTed to the running proxy, whose routes go to the
mock backend and to a fake Anthropic upstream (another protocol than most surfaces). Every answer
must be below 500, complete (a dropped connection or a read time-out fails the test) and in the
path's own envelope. The profile is fixed (derandomized, bounded examples, no deadline), so CI runs
the same bodies every time; the count of bodies sent is printed at the end of the module.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes.anthropic_upstream import FakeAnthropic
from integration.conftest import ProxyServer, serve_proxy, write_backend

EXAMPLES = 40  # per surface and stream mode
PROFILE = settings(derandomize=True, max_examples=EXAMPLES, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.filter_too_much])
CLIENT_TIMEOUT = 20.0

# ---- values -----------------------------------------------------------------------------------------

chars = st.characters(exclude_categories=("Cs",))  # any character a JSON string can carry (CR, LF, NUL too)
leaf = (st.none() | st.booleans() | st.integers(min_value=-(2**40), max_value=2**40)
        | st.floats(allow_nan=False, allow_infinity=False) | st.text(chars, max_size=12))
json_value = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(chars, max_size=8), inner, max_size=3), max_leaves=8)
# What replaces a value: mostly a value of another type (a list or an object where a string belongs).
junk = st.one_of(st.lists(leaf, min_size=1, max_size=2), st.dictionaries(st.text(chars, max_size=4), leaf, min_size=1,
                                                                         max_size=2), leaf, json_value)
COMMANDS = ["!/help", "!/set(model=claude:c)", "!/set(model=mock)", "!/set(temperature=abc)", "!/set(x=1",
            "!/unset(model)", "!/models", "!/backends", "!/limits", "!/usage", "!/set(model=nope:nope)",
            "!/set(model=" + "a|" * 50 + "mock)"]
text = st.text(chars, max_size=40) | st.sampled_from(COMMANDS)
SELECTORS = ["mock", "mock:fuzz", "claude:c", "claude:nope", "", "nope:x", "mock:a|claude:c", "[weight=3]mock^claude:c",
             "[max_context=5]mock|claude:c", "mock?temperature=9", "mock?temperature=x", "mock:x?top_k=-1",
             "[weight=0]mock", "^", "|", "a" * 300, "mock:../../etc", "mock:é中"]
selector = st.sampled_from(SELECTORS)
model = selector


def paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value (the root too)."""
    found = [at]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += paths(inner, (*at, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += paths(inner, (*at, index))
    return found


def replaced(value: Any, at: tuple[Any, ...], new: Any) -> Any:
    if not at:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[at[0]] = replaced(value[at[0]], at[1:], new)
    return copy


def mutated(valid: Any) -> st.SearchStrategy[Any]:
    """The body as it is, or with one value anywhere in it replaced by any JSON value."""
    where = st.sampled_from(paths(valid)[1:] or [()])
    swap = st.builds(lambda at, new: replaced(valid, at, new), where, junk)
    return st.one_of(swap, swap, swap, st.just(valid))  # hypothesis leans to the first branch


def part(kinds: list[str]) -> st.SearchStrategy[Any]:
    return (st.fixed_dictionaries(
        {"type": (st.sampled_from(kinds))},
        optional={"text": (text), "image_url": json_value, "source": json_value, "id": json_value,
                  "name": json_value, "input": json_value, "content": json_value, "tool_use_id": json_value,
                  "thinking": json_value, "signature": json_value, "cache_control": json_value,
                  "file": json_value, "image": json_value, "data": json_value}))


def message(roles: list[str], kinds: list[str]) -> st.SearchStrategy[Any]:
    return (st.fixed_dictionaries(
        {"role": (st.sampled_from(roles)), "content": (text | st.lists(part(kinds), min_size=1, max_size=3))},
        optional={"name": json_value, "tool_calls": (st.lists((st.fixed_dictionaries(
            {"id": json_value, "type": (st.just("function")),
             "function": (st.fixed_dictionaries({"name": (text), "arguments": (text)}))})),
            max_size=2)), "tool_call_id": json_value, "type": json_value}))


def body(required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]],
         stream: bool) -> st.SearchStrategy[Any]:
    shaped = st.fixed_dictionaries({**required, "stream": st.just(stream)},
                                   optional={k: v for k, v in optional.items() if k not in required}).flatmap(mutated)
    not_json = st.binary(max_size=40) | st.sampled_from([b'{"model": NaN}', b'{"max_tokens": 1e999}',
                                                         b'{"n": 123456789012345678901234567890}', b"[" * 5000,
                                                         b'{"a":' * 3000, b"\xff\xfe", b""])
    return st.one_of(shaped, shaped, shaped, shaped, shaped, shaped, json_value, not_json)


TOOLS = st.lists((st.fixed_dictionaries({"type": (st.just("function")), "name": json_value,
                                              "function": json_value, "description": json_value,
                                              "input_schema": json_value, "parameters": json_value})), max_size=2)
unit = st.floats(min_value=0, max_value=1)
small = st.integers(min_value=1, max_value=64)
COMMON = {"temperature": unit, "top_p": unit, "max_tokens": small, "tools": TOOLS,
          "tool_choice": st.sampled_from(["auto", "none", "required", "any"]) | json_value,
          "stop": st.lists(text, max_size=2), "metadata": json_value, "user": text}
OPENAI_ROLES = ["system", "developer", "user", "assistant", "tool", "function"]
OPENAI_PARTS = ["text", "image_url", "input_audio", "file", "refusal"]
chat_body = lambda stream: body(  # noqa: E731
    {"model": model, "messages": (st.lists(message(OPENAI_ROLES, OPENAI_PARTS), min_size=1, max_size=4))},
    {**COMMON, "n": st.just(1), "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
     "response_format": json_value, "max_completion_tokens": small,
     "reasoning_effort": st.sampled_from(["low", "medium", "high", "x"]), "seed": small}, stream)
RESPONSE_PARTS = ["input_text", "input_image", "input_file", "output_text", "refusal"]
responses_body = lambda stream: body(  # noqa: E731
    {"model": model, "input": (text | st.lists((st.one_of(
        message(["user", "assistant", "system", "developer"], RESPONSE_PARTS),
        st.fixed_dictionaries({"type": (st.sampled_from(["function_call", "function_call_output",
                                                              "reasoning", "message", "item_reference"]))},
                              optional={"call_id": json_value, "output": json_value, "name": json_value,
                                        "arguments": json_value, "id": json_value, "summary": json_value}))),
        min_size=1, max_size=4))},
    {**COMMON, "instructions": text, "previous_response_id": st.sampled_from(["resp_x", ""]),
     "store": st.booleans(), "max_output_tokens": small, "reasoning": json_value, "text": json_value,
     "include": json_value},
    stream)
ANTHROPIC_PARTS = ["text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"]
messages_body = lambda stream: body(  # noqa: E731
    {"model": model, "max_tokens": (st.integers(1, 50)),
     "messages": (st.lists(message(["user", "assistant"], ANTHROPIC_PARTS), min_size=1, max_size=4))},
    {**COMMON, "system": (text | st.lists(part(["text"]), max_size=2)), "thinking": json_value,
     "top_k": small, "stop_sequences": st.lists(text, max_size=2)}, stream)
GEMINI_PART = (st.fixed_dictionaries({}, optional={
    "text": (text), "inlineData": json_value, "functionCall": json_value, "functionResponse": json_value,
    "thought": json_value, "thoughtSignature": json_value, "fileData": json_value}))
GEMINI_CONTENT = st.fixed_dictionaries({"role": st.sampled_from(["user", "model", "function"]),
                                        "parts": st.lists(GEMINI_PART, min_size=1, max_size=3)})
gemini_body = body(
    {"contents": st.lists(GEMINI_CONTENT, min_size=1, max_size=3)},
    {"systemInstruction": json_value, "generationConfig": (st.fixed_dictionaries({}, optional={
        "temperature": unit, "maxOutputTokens": small, "topK": small, "stopSequences": st.lists(text, max_size=2),
        "thinkingConfig": json_value, "responseMimeType": json_value})), "tools": json_value,
     "toolConfig": json_value, "safetySettings": json_value, "generateContentRequest": json_value}, False)
gemini_model = st.sampled_from(["mock", "claude:c", "mock:x", "nope", "mock%3Ax"]) | st.text(max_size=10).map(quote)


# ---- the proxy and what every answer must look like -------------------------------------------------


@dataclass
class Sent:
    counts: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)  # the sweep sends from threads

    def count(self, surface: str, status: int) -> None:
        with self.lock:
            self.counts[surface] = self.counts.get(surface, 0) + 1
            self.statuses[status] = self.statuses.get(status, 0) + 1


def openai_envelope(status: int, data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("error"), dict) and isinstance(
        data["error"].get("message"), str)


def anthropic_envelope(status: int, data: Any) -> bool:
    return (isinstance(data, dict) and data.get("type") == "error" and isinstance(data.get("error"), dict)
            and isinstance(data["error"].get("type"), str) and isinstance(data["error"].get("message"), str))


def gemini_envelope(status: int, data: Any) -> bool:
    error = data.get("error") if isinstance(data, dict) else None
    return isinstance(error, dict) and error.get("code") == status and isinstance(error.get("status"), str)


def is_chat(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("choices"), list)


def is_response(data: Any) -> bool:
    return isinstance(data, dict) and data.get("object") == "response"


def is_message(data: Any) -> bool:
    return isinstance(data, dict) and data.get("type") == "message"


def is_count(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("input_tokens"), int)


def is_generation(data: Any) -> bool:
    return isinstance(data, dict) and ("candidates" in data or "promptFeedback" in data)


def is_gemini_count(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("totalTokens"), int)


@dataclass(frozen=True)
class Spec:
    """A surface: its path, its error envelope and what a success looks like."""

    name: str
    path: str
    envelope: Callable[[int, Any], bool]
    success: Callable[[Any], bool]


@dataclass
class Harness:
    client: httpx.Client
    proxy: ProxyServer
    sent: Sent

    def send(self, spec: Spec, payload: Any) -> None:
        problem = self.check(spec, payload)
        assert problem is None, problem

    def check(self, spec: Spec, payload: Any) -> str | None:
        """What is wrong with the proxy's answer to ``payload`` (None: nothing)."""
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        with self.client.stream("POST", self.proxy.url + spec.path, content=raw,
                                headers={"content-type": "application/json"}) as reply:
            content = reply.read()  # a drop raises, a hang times out: both fail the test
        status = reply.status_code
        self.sent.count(spec.name, status)
        what = f"{spec.path} {raw[:300]!r} -> {status} {content[:300]!r}"
        if status >= 500:
            return what
        if reply.headers.get("content-type", "").startswith("text/event-stream"):
            return None if status == 200 and content.startswith((b"data:", b"event:")) else what
        try:
            data = json.loads(content)
        except ValueError:
            return what
        return None if (spec.envelope(status, data) if status >= 400 else spec.success(data)) else what


@pytest.fixture(scope="module")
def claude() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory, claude: FakeAnthropic) -> Iterator[Harness]:
    config = tmp_path_factory.mktemp("fuzz-config")
    write_backend(config, "claude", f"backend_type: custom\nprotocol: anthropic\napi_base_url: {claude.base_url}\n"
                                    "headers: {anthropic-version: '2023-06-01'}\nmax_retries: 0\n"
                                    "models:\n  c: {limits: {context_window: 100000, max_output_tokens: 1000}}\n")
    (config / "proxy.yaml").write_text("default_backend: mock\n")
    sent = Sent()
    with serve_proxy(config) as proxy, httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        yield Harness(client, proxy, sent)
    total = sum(sent.counts.values())
    print(f"\nhostile input: {total} bodies sent {sent.counts}; statuses {dict(sorted(sent.statuses.items()))}")


CHAT_SPEC = Spec("openai chat", "/v1/chat/completions", openai_envelope, is_chat)
RESPONSES_SPEC = Spec("responses", "/v1/responses", openai_envelope, is_response)
MESSAGES_SPEC = Spec("anthropic messages", "/v1/messages", anthropic_envelope, is_message)
COUNT_SPEC = Spec("anthropic count_tokens", "/v1/messages/count_tokens", anthropic_envelope, is_count)


# ---- the suite -------------------------------------------------------------------------------------

STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


@STREAMS
def test_openai_chat(harness: Harness, stream: bool) -> None:
    PROFILE(given(chat_body(stream))(lambda payload: harness.send(CHAT_SPEC, payload)))()


@STREAMS
def test_openai_responses(harness: Harness, stream: bool) -> None:
    PROFILE(given(responses_body(stream))(lambda payload: harness.send(RESPONSES_SPEC, payload)))()


@STREAMS
def test_anthropic_messages(harness: Harness, stream: bool) -> None:
    PROFILE(given(messages_body(stream))(lambda payload: harness.send(MESSAGES_SPEC, payload)))()


def test_anthropic_count_tokens(harness: Harness) -> None:
    PROFILE(given(messages_body(False))(lambda payload: harness.send(COUNT_SPEC, payload)))()


@pytest.mark.parametrize("method", ["generateContent", "streamGenerateContent?alt=sse", "countTokens"])
def test_gemini(harness: Harness, method: str) -> None:
    success = is_gemini_count if method == "countTokens" else is_generation

    def run(name: str, payload: Any) -> None:
        spec = Spec("gemini " + method.partition("?")[0], f"/v1beta/models/{name}:{method}", gemini_envelope, success)
        harness.send(spec, payload)

    PROFILE(given(gemini_model, gemini_body)(run))()


# ---- every value of a full request, swapped for one of another type ---------------------------------
# Random bodies rarely put a list exactly where a role belongs; this sweep does it for every value of
# one rich request per surface (a list, an object, and a string or a number in its place), in turn.

CHAT = {"model": "mock", "messages": [
    {"role": "system", "content": "s"},
    {"role": "user", "content": [{"type": "text", "text": "hi"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
    {"role": "assistant", "content": None,
     "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    {"role": "user", "content": "!/set(temperature=0.5) hi", "name": "bob"}],
    "tools": [{"type": "function", "function": {"name": "f", "description": "d",
                                                "parameters": {"type": "object", "properties": {}}}}],
    "tool_choice": "auto", "temperature": 0.5, "top_p": 1, "max_tokens": 20, "stop": ["x"],
    "stream_options": {"include_usage": True}, "response_format": {"type": "json_object"},
    "reasoning_effort": "low", "n": 1, "seed": 1, "user": "u", "metadata": {"a": "b"}}
RESPONSES = {"model": "mock", "instructions": "be brief", "input": [
    {"role": "user", "content": [{"type": "input_text", "text": "hi"},
                                 {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]},
    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "c1", "output": "ok"},
    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "x"}]},
    {"role": "user", "content": "go on"}],
    "tools": [{"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}}],
    "tool_choice": "auto", "max_output_tokens": 20, "reasoning": {"effort": "low"},
    "text": {"format": {"type": "text"}}, "store": False, "temperature": 0.5}
MESSAGES = {"model": "mock", "max_tokens": 20,
            "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image", "source": {
                    "type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                                                  {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                              "content": [{"type": "text", "text": "ok"}]}]}],
            "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "auto"}, "thinking": {"type": "enabled", "budget_tokens": 1024},
            "temperature": 0.5, "top_k": 5, "stop_sequences": ["x"], "metadata": {"user_id": "u"}}
GENERATE = {"systemInstruction": {"parts": [{"text": "s"}]}, "contents": [
    {"role": "user", "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]},
    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
    {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"ok": True}}}]}],
    "tools": [{"functionDeclarations": [{"name": "f", "description": "d", "parameters": {"type": "object"}}]}],
    "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    "generationConfig": {"temperature": 0.5, "maxOutputTokens": 20, "topK": 5, "stopSequences": ["x"],
                         "thinkingConfig": {"thinkingBudget": 100}},
    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]}
SWEEPS = [
    (CHAT_SPEC, CHAT), (RESPONSES_SPEC, RESPONSES), (MESSAGES_SPEC, MESSAGES), (COUNT_SPEC, MESSAGES),
    (Spec("gemini generateContent", "/v1beta/models/mock:generateContent", gemini_envelope, is_generation), GENERATE),
    (Spec("gemini countTokens", "/v1beta/models/mock:countTokens", gemini_envelope, is_gemini_count), GENERATE),
    (CHAT_SPEC, {**CHAT, "model": "claude:c"}), (RESPONSES_SPEC, {**RESPONSES, "model": "claude:c"}),
    (Spec("gemini generateContent", "/v1beta/models/claude:c:generateContent", gemini_envelope, is_generation),
     GENERATE),
]


def swaps(value: Any) -> list[Any]:
    other: Any = 7 if isinstance(value, str) else "x"
    return [["x"], {"x": 1}, other]


@pytest.mark.parametrize(("spec", "valid"), SWEEPS, ids=[f"{spec.name} {body.get('model', spec.path)}"
                                                         for spec, body in SWEEPS])
def test_every_value_swapped_for_another_type(harness: Harness, spec: Spec, valid: dict[str, Any]) -> None:
    harness.send(spec, valid)
    cases = []
    for at in paths(valid)[1:]:
        value: Any = valid
        for key in at:
            value = value[key]
        cases += [(at, new) for new in swaps(value)]
    with ThreadPoolExecutor(max_workers=4) as pool:  # the client's work overlaps the proxy's
        found = pool.map(lambda case: harness.check(spec, replaced(valid, case[0], case[1])), cases)
        problems = [f"{'.'.join(map(str, at))} = {new!r}: {problem}"
                    for (at, new), problem in zip(cases, found, strict=True) if problem is not None]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("spec", "body"), [
    (CHAT_SPEC, {"model": "mock", "messages": [{"role": ["user"], "content": "hi"}]}),
    (CHAT_SPEC, {"model": "mock", "messages": [{"role": {"a": 1}, "content": "hi"}]}),
    (RESPONSES_SPEC, {"model": "mock", "input": [{"role": ["user"], "content": "hi"}]}),
    (RESPONSES_SPEC, {"model": "mock", "input": [{"type": ["message"], "role": "user", "content": "hi"}]}),
    (CHAT_SPEC, {"model": "claude:c", "messages": [{"role": "user", "content": "hi"}],
                 "tools": [{"type": "function", "function": {"name": "f", "description": 7}}]}),
], ids=["chat role list", "chat role object", "responses role list", "responses item type list",
        "chat tool description number"])
def test_values_of_the_wrong_type_are_400_naming_the_field(harness: Harness, spec: Spec, body: Any) -> None:
    reply = harness.client.post(harness.proxy.url + spec.path, json=body)
    assert reply.status_code == 400
    assert reply.json()["error"]["param"]
