"""The Gemini protocol over real sockets, both ways, with the official SDKs.

- the ``google-genai`` SDK as a client of the proxy (on the mock backend, on a fake OpenAI upstream,
  on a fake Gemini upstream);
- the ``openai`` SDK as a client of the proxy routed to a fake Gemini upstream (``protocol: gemini``
  through the ``gemini`` preset).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types

from fakes.gemini_upstream import FakeGemini, FunctionCallSpec, GeminiBehaviour
from fakes.openai_upstream import Behaviour, FakeOpenAI, ToolCallSpec, split_even
from integration.conftest import ProxyServer, serve_proxy, write_backend

KEY = "gm-canary-key-0123456789"
ENV = {"FAKE_GEMINI_KEY": KEY, "UP_KEY": "sk-up"}
MOCK_TEXT = "This is the mock backend of the LLM Interactive Proxy, answering as mock-model. You said: "

WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="The weather of a city",
    parameters=types.Schema(type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)},
                            required=["city"]),
)
NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)


_CLIENTS: list[genai.Client] = []


def gclient(proxy: ProxyServer) -> genai.Client:
    """A genai client of the proxy; kept alive, as a collected Client closes the HTTP client its modules use."""
    client = genai.Client(api_key="client-key", http_options=types.HttpOptions(
        base_url=proxy.url, api_version="v1beta", timeout=20_000))
    _CLIENTS.append(client)
    return client


def oclient(proxy: ProxyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="client-key", max_retries=0, timeout=20)


@pytest.fixture(scope="module")
def mock_proxy() -> Iterator[ProxyServer]:
    with serve_proxy() as server:
        yield server


@pytest.fixture
def gemini_fake() -> Iterator[FakeGemini]:
    with FakeGemini() as upstream:
        upstream.api_key = KEY
        yield upstream


def camel(value: Any) -> Any:
    """Keys in Gemini's JSON spelling, at every level (the API accepts either spelling)."""
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): camel(v) for k, v in value.items()}
    return [camel(v) for v in value] if isinstance(value, list) else value


def gemini_backend(tmp_path: Path, fake: FakeGemini, extra: str = "") -> Path:
    """Backend ``g``: the built-in gemini preset pointed at the fake."""
    write_backend(tmp_path, "g", f"""\
        backend_type: gemini
        api_base_url: {fake.base_url}
        api_key_env_var: FAKE_GEMINI_KEY
        max_retries: 0
        retry_delay: 0.1
        {extra}""")
    return tmp_path


def openai_backend(tmp_path: Path, fake: FakeOpenAI) -> Path:
    write_backend(tmp_path, "up", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        api_key_env_var: UP_KEY
        max_retries: 0
        models:
          m: {{}}
        """)
    return tmp_path


# ---- google-genai SDK → proxy → mock backend -----------------------------------------------------


def test_generate_content_on_the_mock(mock_proxy: ProxyServer) -> None:
    answer = gclient(mock_proxy).models.generate_content(
        model="mock:mock-model", contents="What is the capital of France?",
        config=types.GenerateContentConfig(system_instruction="be brief", temperature=0.1))
    assert answer.text == MOCK_TEXT + "What is the capital of France?"
    candidate = (answer.candidates or [])[0]
    assert candidate.finish_reason == types.FinishReason.STOP
    usage = answer.usage_metadata
    assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert answer.model_version == "mock-model"
    assert answer.response_id


def test_generate_content_stream_on_the_mock(mock_proxy: ProxyServer) -> None:
    chunks = list(gclient(mock_proxy).models.generate_content_stream(model="mock-model", contents="Tell me a story"))
    assert len(chunks) > 5
    assert "".join(c.text or "" for c in chunks) == MOCK_TEXT + "Tell me a story"
    last = chunks[-1]
    assert (last.candidates or [])[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None and (last.usage_metadata.candidates_token_count or 0) > 10
    assert all((c.candidates or [])[0].finish_reason is None for c in chunks[:-1])


def test_chat_session_keeps_a_valid_history(mock_proxy: ProxyServer) -> None:
    chat = gclient(mock_proxy).chats.create(model="mock-model")
    streamed = "".join(c.text or "" for c in chat.send_message_stream("first question"))
    second = chat.send_message("second question")
    assert streamed == MOCK_TEXT + "first question"
    assert second.text == MOCK_TEXT + "second question"
    turns = [role for role, _ in itertools.groupby(c.role for c in chat.get_history(curated=True))]
    assert turns == ["user", "model", "user", "model"], "every streamed chunk was valid, so the turn was kept"


def test_models_list_and_count_tokens(mock_proxy: ProxyServer) -> None:
    client = gclient(mock_proxy)
    models = {m.name: m for m in client.models.list()}
    mock = models["models/mock:mock-model"]
    assert (mock.input_token_limit, mock.output_token_limit) == (128000, 16384)
    assert mock.supported_actions == ["generateContent", "streamGenerateContent", "countTokens"]
    short = client.models.count_tokens(model="mock-model", contents="count me")
    long = client.models.count_tokens(model="mock:mock-model", contents="count me " * 50)
    assert short.total_tokens is not None and long.total_tokens is not None
    assert 0 < short.total_tokens < long.total_tokens


def test_function_call_with_tool_config_any(mock_proxy: ProxyServer) -> None:
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])], automatic_function_calling=NO_AFC,
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY")))
    client = gclient(mock_proxy)
    answer = client.models.generate_content(model="mock-model", contents="weather in Paris?", config=config)
    (call,) = answer.function_calls or []
    assert (call.name, call.args) == ("get_weather", {"mock": True})
    streamed = [c for chunk in client.models.generate_content_stream(
        model="mock-model", contents="weather in Paris?", config=config) for c in chunk.function_calls or []]
    assert [(c.name, c.args) for c in streamed] == [("get_weather", {"mock": True})]
    # The function's result goes back; with AUTO the mock answers in text.
    contents = [
        types.Content(role="user", parts=[types.Part(text="weather in Paris?")]),
        types.Content(role="model", parts=[types.Part(function_call=call)]),
        types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather",
                                                                             response={"sky": "sunny"})]),
    ]
    final = client.models.generate_content(model="mock-model", contents=contents, config=types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])], automatic_function_calling=NO_AFC))
    assert final.text is not None and final.text.startswith(MOCK_TEXT)


def test_invalid_request_is_a_400_in_googles_envelope(mock_proxy: ProxyServer) -> None:
    response = httpx.post(mock_proxy.url + "/v1beta/models/mock-model:generateContent",
                          json={"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, timeout=10)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert "contents[0].role" in error["message"]
    with pytest.raises(errors.ClientError) as raised:
        gclient(mock_proxy).models.generate_content(model="nope:x", contents="hi")
    assert (raised.value.code, raised.value.status) == (404, "NOT_FOUND")


def test_limit_error_through_the_genai_sdk(tmp_path: Path) -> None:
    write_backend(tmp_path, "tiny", """\
        backend_type: mock
        models:
          tiny-model:
            tokenizer: o200k_base
            limits: {max_input_tokens: 20, max_output_tokens: 100}
        """)
    with serve_proxy(tmp_path) as proxy:
        with pytest.raises(errors.ClientError) as raised:
            gclient(proxy).models.generate_content(model="tiny:tiny-model", contents="word " * 100)
        raw = httpx.post(proxy.url + "/v1beta/models/tiny:tiny-model:generateContent",
                         json={"contents": [{"role": "user", "parts": [{"text": "word " * 100}]}]}, timeout=10)
    assert (raised.value.code, raised.value.status) == (400, "INVALID_ARGUMENT")
    assert raised.value.message == "Input token limit exceeded"
    error = raw.json()["error"]
    (info,) = error["details"]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert info["reason"] == "input_limit_exceeded"
    assert info["metadata"]["model"] == "tiny-model"
    assert info["metadata"]["limit"] == "20"
    assert int(info["metadata"]["measured"]) > 100


# ---- google-genai SDK → proxy → fake OpenAI upstream ---------------------------------------------


def test_genai_streamed_tool_call_from_an_openai_upstream_is_exact(tmp_path: Path, fake: FakeOpenAI) -> None:
    arguments = '{"city": "Paris, \\"la Ville Lumière\\"", "days": [1, 2, 3], "unit": "celsius"}'
    fake.default = Behaviour(tool_call=ToolCallSpec(name="get_weather", arguments=arguments, pieces=6))
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])], automatic_function_calling=NO_AFC,
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
            mode="ANY", allowed_function_names=["get_weather"])))
    with serve_proxy(openai_backend(tmp_path, fake), environ=ENV) as proxy:
        chunks = list(gclient(proxy).models.generate_content_stream(model="up:m", contents="weather?", config=config))
    calls = [c for chunk in chunks for c in chunk.function_calls or []]
    assert [(c.name, c.args, c.id) for c in calls] == [("get_weather", json.loads(arguments), "call_fake_1")]
    last = chunks[-1]
    assert (last.candidates or [])[0].finish_reason == types.FinishReason.STOP
    usage = last.usage_metadata
    assert usage is not None
    (seen,) = fake.chat_requests()
    assert usage.prompt_token_count == 4 + 1, "the upstream's usage: one message of one word"
    assert usage.candidates_token_count == len(f"get_weather {arguments}".split())
    assert seen.body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    assert seen.body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert seen.body["stream"] is True


def test_genai_text_and_usage_from_an_openai_upstream(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.default = Behaviour(reply="one two three four five", chunks=5)
    with serve_proxy(openai_backend(tmp_path, fake), environ=ENV) as proxy:
        client = gclient(proxy)
        whole = client.models.generate_content(
            model="up:m", contents="hello world",
            config=types.GenerateContentConfig(system_instruction="be brief", max_output_tokens=30, seed=3,
                                               stop_sequences=["END"], temperature=0.5))
        chunks = list(client.models.generate_content_stream(model="up:m", contents="hello world"))
    assert whole.text == "one two three four five"
    assert whole.usage_metadata is not None
    assert (whole.usage_metadata.prompt_token_count, whole.usage_metadata.candidates_token_count) == (4 + 2 + 4 + 2, 5)
    assert [c.text for c in chunks[:5]] == split_even("one two three four five", 5)
    body = fake.chat_requests()[0].body
    assert body["messages"] == [{"role": "system", "content": "be brief"},
                                {"role": "user", "content": [{"type": "text", "text": "hello world"}]}]
    assert (body["max_tokens"], body["seed"], body["stop"], body["temperature"]) == (30, 3, ["END"], 0.5)


def test_genai_sees_upstream_errors_with_googles_status(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(status=429, headers={"Retry-After": "7"}, error_message="slow down"))
    with serve_proxy(openai_backend(tmp_path, fake), environ=ENV) as proxy:
        with pytest.raises(errors.ClientError) as raised:
            gclient(proxy).models.generate_content(model="up:m", contents="hi")
    assert (raised.value.code, raised.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert "slow down" in (raised.value.message or "")
    assert raised.value.response is not None
    assert raised.value.response.headers["retry-after"] == "7"


# ---- openai SDK → proxy → fake Gemini upstream ---------------------------------------------------


def test_openai_sdk_on_a_gemini_upstream(tmp_path: Path, gemini_fake: FakeGemini) -> None:
    gemini_fake.default = GeminiBehaviour(reply="Paris is the capital.", thoughts="easy", thoughts_tokens=9,
                                          cached_tokens=2)
    with serve_proxy(gemini_backend(tmp_path, gemini_fake), environ=ENV) as proxy:
        answer = oclient(proxy).chat.completions.create(
            model="g:gemini-2.5-flash", temperature=0.2, max_tokens=64, stop=["END"], seed=5, user="u-1",
            messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "capital of France?"}])
    assert answer.choices[0].message.content == "Paris is the capital."
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == "gemini-2.5-flash"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (5, 4 + 9), "thoughts count as output"
    assert answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 2
    (seen,) = gemini_fake.generate_requests()
    assert seen.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert seen.headers["x-goog-api-key"] == KEY
    assert "authorization" not in seen.headers
    assert seen.body == {
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [{"role": "user", "parts": [{"text": "capital of France?"}]}],
        "generationConfig": {"temperature": 0.2, "stopSequences": ["END"], "seed": 5, "maxOutputTokens": 64},
    }


def test_openai_sdk_streams_from_a_gemini_upstream(tmp_path: Path, gemini_fake: FakeGemini) -> None:
    gemini_fake.default = GeminiBehaviour(reply="one two three four five six", chunks=3)
    with serve_proxy(gemini_backend(tmp_path, gemini_fake), environ=ENV) as proxy:
        chunks = list(oclient(proxy).chat.completions.create(
            model="g:gemini-2.5-flash", messages=[{"role": "user", "content": "count"}], stream=True,
            stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert pieces == split_even("one two three four five six", 3)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (1, 6)
    (seen,) = gemini_fake.generate_requests()
    assert seen.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert seen.query == {"alt": "sse"}


@pytest.mark.parametrize("stream", [False, True])
def test_openai_sdk_tool_calls_through_a_gemini_upstream(tmp_path: Path, gemini_fake: FakeGemini,
                                                         stream: bool) -> None:
    args = {"city": "Paris", "days": [1, 2], "nested": {"unit": "C"}}
    gemini_fake.enqueue(
        GeminiBehaviour(function_calls=[FunctionCallSpec("get_weather", args, thought_signature="c2lnbmF0dXJl+/=="),
                                        FunctionCallSpec("get_time", {})]),
        GeminiBehaviour(reply="Sunny at noon."),
    )
    tools: Any = [{"type": "function", "function": {
        "name": "get_weather", "description": "d",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
    messages: list[Any] = [{"role": "user", "content": "weather and time?"}]
    with serve_proxy(gemini_backend(tmp_path, gemini_fake), environ=ENV) as proxy:
        client = oclient(proxy)
        if stream:
            calls: dict[int, dict[str, str]] = {}
            finish = None
            for chunk in client.chat.completions.create(model="g:gemini-2.5-flash", messages=messages, tools=tools,
                                                        tool_choice="required", stream=True):
                for choice in chunk.choices:
                    for delta in choice.delta.tool_calls or []:
                        entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                        entry["id"] = delta.id or entry["id"]
                        if delta.function:
                            entry["name"] += delta.function.name or ""
                            entry["arguments"] += delta.function.arguments or ""
                    finish = choice.finish_reason or finish
            got = [calls[i] for i in sorted(calls)]
        else:
            answer = client.chat.completions.create(model="g:gemini-2.5-flash", messages=messages, tools=tools,
                                                    tool_choice="required")
            finish = answer.choices[0].finish_reason
            got = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}  # type: ignore[union-attr]
                   for c in answer.choices[0].message.tool_calls or []]
        assert finish == "tool_calls"
        assert [(c["name"], json.loads(c["arguments"])) for c in got] == [("get_weather", args), ("get_time", {})]
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in got]})
        messages.append({"role": "tool", "tool_call_id": got[1]["id"], "content": "noon"})
        messages.append({"role": "tool", "tool_call_id": got[0]["id"], "content": '{"sky": "sunny"}'})
        final = client.chat.completions.create(model="g:gemini-2.5-flash", messages=messages, tools=tools)
    assert final.choices[0].message.content == "Sunny at noon."
    first, second = gemini_fake.generate_requests()
    assert first.body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert first.body["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "d",
         "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}}},
        {"name": "get_time", "parametersJsonSchema": {"type": "object"}}]}]
    assert second.body["contents"][1:] == [
        {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": args}, "thoughtSignature": "c2lnbmF0dXJl+/=="},
            {"functionCall": {"name": "get_time", "args": {}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}},
            {"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}}]},
    ], "results are named after their calls, and Gemini's thought signature goes back with its call"


def test_openai_sdk_sees_gemini_upstream_errors(tmp_path: Path, gemini_fake: FakeGemini) -> None:
    gemini_fake.enqueue(GeminiBehaviour(status=400, error_message="* GenerationConfig.temperature: out of range"))
    with serve_proxy(gemini_backend(tmp_path, gemini_fake), environ=ENV) as proxy:
        with pytest.raises(openai.BadRequestError) as raised:
            oclient(proxy).chat.completions.create(model="g:gemini-2.5-flash",
                                                   messages=[{"role": "user", "content": "hi"}])
    assert "temperature: out of range" in str(raised.value)
    body: Any = raised.value.body
    assert body["code"] == "INVALID_ARGUMENT"


def test_gemini_429_with_retry_after_is_retried(tmp_path: Path, gemini_fake: FakeGemini) -> None:
    gemini_fake.enqueue(GeminiBehaviour(status=429, retry_after="1", error_message="Resource has been exhausted"))
    with serve_proxy(gemini_backend(tmp_path, gemini_fake, "max_retries: 1\n"), environ=ENV) as proxy:
        answer = oclient(proxy).chat.completions.create(model="g:gemini-2.5-flash",
                                                        messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Hello from the fake Gemini."
    first, second = gemini_fake.generate_requests()
    assert second.at - first.at >= 0.9, "the upstream's Retry-After was waited"


def test_wrong_key_is_googles_400_passed_through(tmp_path: Path, gemini_fake: FakeGemini) -> None:
    gemini_fake.api_key = "another-key"
    with serve_proxy(gemini_backend(tmp_path, gemini_fake), environ=ENV) as proxy:
        with pytest.raises(openai.BadRequestError) as raised:
            oclient(proxy).chat.completions.create(model="g:gemini-2.5-flash",
                                                   messages=[{"role": "user", "content": "hi"}])
    assert "API key not valid" in str(raised.value)
    assert KEY not in str(raised.value)


def test_cut_gemini_stream_makes_the_openai_sdk_raise(tmp_path: Path, gemini_fake: FakeGemini) -> None:
    gemini_fake.default = GeminiBehaviour(reply="one two three four five six", chunks=6, cut_after_chunks=2)
    with serve_proxy(gemini_backend(tmp_path, gemini_fake), environ=ENV) as proxy:
        received = []
        with pytest.raises(openai.APIError):
            for chunk in oclient(proxy).chat.completions.create(
                    model="g:gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}], stream=True):
                received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received) == "".join(split_even("one two three four five six", 6)[:2])


# ---- google-genai SDK → proxy → fake Gemini upstream ---------------------------------------------


def test_gemini_to_gemini_keeps_gemini_only_fields(tmp_path: Path, gemini_fake: FakeGemini) -> None:
    gemini_fake.default = GeminiBehaviour(reply="fine", thoughts="let me think", thought_signature="dGhvdWdodA==")
    config = types.GenerateContentConfig(
        safety_settings=[types.SafetySetting(category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
                                             threshold=types.HarmBlockThreshold.BLOCK_NONE)],
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=512),
        tools=[types.Tool(google_search=types.GoogleSearch())], max_output_tokens=100)
    with serve_proxy(gemini_backend(tmp_path, gemini_fake), environ=ENV) as proxy:
        answer = gclient(proxy).models.generate_content(model="g:gemini-2.5-flash", contents="hi", config=config)
    parts = (answer.candidates or [])[0].content.parts or []  # type: ignore[union-attr]
    assert [(p.thought, p.text) for p in parts] == [(True, "let me think"), (None, "fine")]
    assert parts[0].thought_signature == b"thought"
    (seen,) = gemini_fake.generate_requests()
    assert seen.body["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    assert camel(seen.body["generationConfig"]) == {
        "maxOutputTokens": 100, "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 512}}, \
        "forwarded as the SDK sent it (it writes thinkingConfig's keys in the proto spelling)"
    assert seen.body["tools"] == [{"googleSearch": {}}]


@pytest.mark.parametrize("failure", ["cut", "error"])
def test_mid_stream_upstream_failure_makes_the_genai_sdk_raise(tmp_path: Path, gemini_fake: FakeGemini,
                                                                failure: str) -> None:
    behaviour = GeminiBehaviour(reply="one two three four five six", chunks=6)
    if failure == "cut":
        behaviour.cut_after_chunks = 2
    else:
        behaviour.error_after_chunks = 2
    gemini_fake.default = behaviour
    with serve_proxy(gemini_backend(tmp_path, gemini_fake), environ=ENV) as proxy:
        received = []
        with pytest.raises(errors.APIError) as raised:
            for chunk in gclient(proxy).models.generate_content_stream(model="g:gemini-2.5-flash", contents="hi"):
                received.append(chunk.text or "")
        assert gclient(proxy).models.generate_content(model="mock:mock-model", contents="still").text, \
            "the proxy stays healthy afterwards"
    assert "".join(received) == "".join(split_even("one two three four five six", 6)[:2])
    if failure == "cut":
        assert (raised.value.code, raised.value.status) == (502, "UNAVAILABLE")
        assert "before finishing" in (raised.value.message or "") or "mid-stream" in (raised.value.message or "")
    else:
        assert (raised.value.code, raised.value.status) == (503, "UNAVAILABLE")
        assert "overloaded" in (raised.value.message or "")


# ---- the fake itself -----------------------------------------------------------------------------


def test_the_fake_speaks_what_the_genai_sdk_reads(gemini_fake: FakeGemini) -> None:
    """The fake Gemini upstream, read directly by the official SDK (no proxy), so its format is real."""
    base = gemini_fake.base_url.removesuffix("/v1beta")
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=base, api_version="v1beta"))
    gemini_fake.enqueue(GeminiBehaviour(reply="a b c d", chunks=2, thoughts="hm", thoughts_tokens=3),
                        GeminiBehaviour(function_calls=[FunctionCallSpec("f", {"x": 1}, id="fc-1")]),
                        GeminiBehaviour(status=429, retry_after="3", error_message="quota"))
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi there"))
    assert "".join(c.text or "" for c in chunks) == "a b c d"
    usage = chunks[-1].usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.thoughts_token_count) == (2, 4, 3)
    answer = client.models.generate_content(model="gemini-2.5-flash", contents="call f")
    assert [(c.id, c.name, c.args) for c in answer.function_calls or []] == [("fc-1", "f", {"x": 1})]
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert (raised.value.code, raised.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert client.models.count_tokens(model="gemini-2.5-flash", contents="one two three").total_tokens == 3
    assert [m.name for m in client.models.list()][:1] == ["models/gemini-2.5-flash"]
    array = httpx.post(gemini_fake.base_url + "/models/gemini-2.5-flash:streamGenerateContent",
                       json={"contents": [{"role": "user", "parts": [{"text": "x"}]}]},
                       headers={"x-goog-api-key": KEY}, timeout=10)
    elements = array.json()
    assert isinstance(elements, list) and elements[-1]["candidates"][0]["finishReason"] == "STOP"


def test_stream_without_alt_sse_is_gemini_json_array(mock_proxy: ProxyServer) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "array please"}]}]}
    with httpx.stream("POST", mock_proxy.url + "/v1beta/models/mock-model:streamGenerateContent", json=body,
                      timeout=10) as response:
        pieces = list(response.iter_raw())
    elements = json.loads(b"".join(pieces))
    assert len(elements) > 5, "written element by element"
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in elements) == MOCK_TEXT + "array please"
    assert elements[-1]["candidates"][0]["finishReason"] == "STOP"
    assert elements[-1]["usageMetadata"]["totalTokenCount"] > 0
    sse = httpx.post(mock_proxy.url + "/v1beta/models/mock-model:generateContent?alt=sse", json=body, timeout=10)
    assert sse.json()["candidates"][0]["finishReason"] == "STOP", "alt=sse does not make generateContent stream"


def test_streamed_json_array_has_a_json_media_type() -> None:
    with serve_proxy() as proxy:
        response = httpx.post(proxy.url + "/v1beta/models/mock:mock-model:streamGenerateContent",
                              json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        sse = httpx.post(proxy.url + "/v1beta/models/mock:mock-model:streamGenerateContent?alt=sse",
                         json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json(), list) and response.json()[-1]["candidates"][0]["finishReason"] == "STOP"
    assert sse.headers["content-type"].startswith("text/event-stream")
