"""The Anthropic Messages protocol over real sockets, with the official SDKs.

As a client surface: the ``anthropic`` SDK against the proxy (at ``/anthropic`` and at the root) on
the built-in mock backend and on a fake OpenAI upstream. As an upstream protocol: the ``openai``
SDK (and the ``anthropic`` SDK) against the proxy routed to a fake Anthropic upstream that speaks
the real wire format.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from fakes.anthropic_upstream import VERSION, FakeAnthropic, ToolUseSpec
from fakes.anthropic_upstream import Behaviour as ClaudeBehaviour
from fakes.gemini_upstream import FakeGemini, GeminiBehaviour
from fakes.openai_upstream import Behaviour, FakeOpenAI, ToolCallSpec
from fakes.responses_upstream import FakeResponses, ResponsesBehaviour
from integration.conftest import ProxyServer, serve_proxy, write_backend
from lip.core.model import ProviderState
from lip.core.opaque import fold_signature

KEY = "sk-ant-canary-0123456789abcdef"
PREFIXES = ["/anthropic", ""]
WEATHER = {"name": "get_weather", "description": "Current weather of a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"},
                                                             "days": {"type": "array"}},
                            "required": ["city"]}}


def claude(proxy: ProxyServer, prefix: str = "/anthropic") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url + prefix, api_key="client-key", max_retries=0, timeout=15)


def oai(proxy: ProxyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="client-key", max_retries=0, timeout=15)


@pytest.fixture
def claude_fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as upstream:
        yield upstream


def anthropic_backend(tmp_path: Path, fake: FakeAnthropic, retries: int = 0) -> Path:
    write_backend(tmp_path, "claude", f"""\
        backend_type: custom
        protocol: anthropic
        api_base_url: {fake.base_url}
        api_key_env_var: CLAUDE_KEY
        headers:
          anthropic-version: "{VERSION}"
        max_retries: {retries}
        retry_delay: 0.01
        models:
          claude-sonnet-5-5: {{}}
        """)
    return tmp_path


def openai_backend(tmp_path: Path, fake: FakeOpenAI) -> Path:
    write_backend(tmp_path, "vendor", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        api_key_env_var: VENDOR_KEY
        max_retries: 0
        models:
          gpt-4o-mini: {{}}
        """)
    return tmp_path


ENV = {"CLAUDE_KEY": KEY, "VENDOR_KEY": "sk-vendor", "GEMINI_KEY": "sk-gemini", "RESPONSES_KEY": "sk-responses"}


def raw_events(stream: Any) -> list[Any]:
    return list(stream)


# ---- anthropic SDK → proxy → mock backend ------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_plain_message_on_the_mock(prefix: str) -> None:
    with serve_proxy() as proxy:
        message = claude(proxy, prefix).messages.create(
            model="mock-model", max_tokens=256, system="Be brief.",
            messages=[{"role": "user", "content": "Hello there"}],
        )
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == "mock-model"
    assert message.stop_reason == "end_turn"
    (block,) = message.content
    assert block.type == "text" and block.text.endswith("You said: Hello there")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


@pytest.mark.parametrize("prefix", PREFIXES)
def test_streaming_on_the_mock(prefix: str) -> None:
    with serve_proxy() as proxy:
        client = claude(proxy, prefix)
        events = raw_events(client.messages.create(
            model="mock-model", max_tokens=256, stream=True,
            messages=[{"role": "user", "content": "Stream this please"}],
        ))
        with client.messages.stream(model="mock-model", max_tokens=256,
                                    messages=[{"role": "user", "content": "Stream this please"}]) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds[-2] == "message_delta"
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 1
    assert kinds.count("content_block_delta") > 3, "the answer arrives in several pieces"
    assert len(pieces) > 3
    assert "".join(pieces) == final.content[0].text
    assert final.content[0].text.endswith("You said: Stream this please")
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0, "usage of message_delta"


def test_stream_has_a_ping_and_named_events() -> None:
    with serve_proxy() as proxy:
        response = httpx.post(proxy.url + "/v1/messages", timeout=15, json={
            "model": "mock-model", "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in response.text.split("\n\n") if b]
    names = [b.split("\n")[0] for b in blocks]
    assert names[:2] == ["event: message_start", "event: ping"]
    assert all(n.startswith("event: ") for n in names)
    for block in blocks:
        name, data = block.split("\n")
        assert json.loads(data.removeprefix("data: "))["type"] == name.removeprefix("event: ")


@pytest.mark.parametrize("stream", [False, True])
def test_required_tool_call_on_the_mock(stream: bool) -> None:
    kwargs: dict[str, Any] = {"model": "mock-model", "max_tokens": 256, "tools": [WEATHER],
                              "tool_choice": {"type": "any"},
                              "messages": [{"role": "user", "content": "Weather in Paris?"}]}
    with serve_proxy() as proxy:
        client = claude(proxy)
        if stream:
            with client.messages.stream(**kwargs) as events:
                message = events.get_final_message()
        else:
            message = client.messages.create(**kwargs)
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use"
    assert block.name == "get_weather"
    assert block.input == {"mock": True}
    assert block.id.startswith("call_mock_")


def test_validation_error_names_the_field() -> None:
    with serve_proxy() as proxy, pytest.raises(anthropic.BadRequestError) as caught:
        claude(proxy).messages.create(model="mock-model", max_tokens=16, messages=[
            {"role": "user", "content": "x"},
            {"role": "user", "content": [{"type": "text", "text": "ok"}, {"type": "video", "url": "v"}]},
        ])
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("messages.1.content.1.type: ")


def test_unknown_backend_is_a_not_found_error() -> None:
    with serve_proxy() as proxy, pytest.raises(anthropic.NotFoundError) as caught:
        claude(proxy).messages.create(model="nosuch:model", max_tokens=16,
                                      messages=[{"role": "user", "content": "x"}])
    body = caught.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "not_found_error"


# ---- count_tokens and limits --------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_count_tokens(prefix: str) -> None:
    with serve_proxy() as proxy:
        client = claude(proxy, prefix)
        short = client.messages.count_tokens(model="mock-model", messages=[{"role": "user", "content": "Hi"}])
        long = client.messages.count_tokens(model="mock-model", system="You are a careful assistant.",
                                            messages=[{"role": "user", "content": "Hi " * 200}], tools=[WEATHER])
    assert short.input_tokens > 0
    assert long.input_tokens > short.input_tokens + 200


def test_input_limit_exceeded_in_anthropics_envelope(tmp_path: Path) -> None:
    write_backend(tmp_path, "tiny", """\
        backend_type: mock
        models:
          tiny-model:
            limits: {max_input_tokens: 10}
        """)
    with serve_proxy(tmp_path) as proxy, pytest.raises(anthropic.BadRequestError) as caught:
        claude(proxy).messages.create(model="tiny:tiny-model", max_tokens=16,
                                      messages=[{"role": "user", "content": "word " * 50}])
    assert caught.value.status_code == 400
    body = caught.value.body
    assert isinstance(body, dict)
    details = body["error"]["details"]
    assert details["model"] == "tiny-model" and details["limit"] == 10 and details["measured"] > 50
    assert body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "Input token limit exceeded",
                  "code": "input_limit_exceeded", "details": details},
        "detail": {"code": "input_limit_exceeded", "message": "Input token limit exceeded", "details": details},
    }


# ---- anthropic SDK → proxy → OpenAI upstream ----------------------------------------------------


def test_streamed_tool_call_from_an_openai_upstream_is_assembled_exactly(tmp_path: Path, fake: FakeOpenAI) -> None:
    arguments = '{"city": "Paris", "days": [1, 2, 3], "note": "caf\\u00e9 \\"quoted\\""}'
    fake.default = Behaviour(tool_call=ToolCallSpec(name="get_weather", arguments=arguments, id="call_w1", pieces=6))
    kwargs: dict[str, Any] = {"model": "vendor:gpt-4o-mini", "max_tokens": 300, "tools": [WEATHER],
                              "tool_choice": {"type": "tool", "name": "get_weather"},
                              "messages": [{"role": "user", "content": "Weather in Paris for three days?"}]}
    with serve_proxy(openai_backend(tmp_path, fake), environ=ENV) as proxy:
        client = claude(proxy)
        events = raw_events(client.messages.create(stream=True, **kwargs))
        with client.messages.stream(**kwargs) as stream:
            final = stream.get_final_message()
    pieces = [e.delta.partial_json for e in events if e.type == "content_block_delta"]
    assert len(pieces) == 6, "each upstream delta is passed on as it arrives"
    assert "".join(pieces) == arguments, "byte-exact assembly"
    (start,) = [e for e in events if e.type == "content_block_start"]
    assert (start.content_block.type, start.content_block.id, start.content_block.name) == (
        "tool_use", "call_w1", "get_weather")
    (block,) = final.content
    assert block.input == json.loads(arguments)
    assert final.stop_reason == "tool_use"
    seen = fake.chat_requests()[0].body
    assert final.usage.input_tokens > 0 and final.usage.output_tokens == len(f"get_weather {arguments}".split())
    assert seen["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": WEATHER["description"], "parameters": WEATHER["input_schema"]}}]
    assert seen["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert seen["max_tokens"] == 300
    assert seen["stream_options"] == {"include_usage": True}


def test_usage_and_text_from_an_openai_upstream(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.default = Behaviour(reply="one two three four five six", chunks=6)
    with serve_proxy(openai_backend(tmp_path, fake), environ=ENV) as proxy:
        message = claude(proxy).messages.create(
            model="vendor:gpt-4o-mini", max_tokens=50, system="Be brief.",
            messages=[{"role": "user", "content": [{"type": "text", "text": "Count to six"}]}],
        )
    assert message.content[0].type == "text" and message.content[0].text == "one two three four five six"
    assert message.usage.output_tokens == 6
    assert message.usage.input_tokens == 4 + 2 + 4 + 3, "the fake's count: words + 4 a message"
    seen = fake.chat_requests()[0].body
    assert seen["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": [{"type": "text", "text": "Count to six"}]}]


def test_openai_upstream_cut_mid_stream_makes_the_sdk_raise(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.default = Behaviour(reply="a b c d e f g h", chunks=8, cut_after_chunks=3)
    with serve_proxy(openai_backend(tmp_path, fake), environ=ENV) as proxy:
        client = claude(proxy)
        with pytest.raises(anthropic.APIStatusError) as caught:
            with client.messages.stream(model="vendor:gpt-4o-mini", max_tokens=50,
                                        messages=[{"role": "user", "content": "x"}]) as stream:
                for _ in stream.text_stream:
                    pass
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["error"]["code"] == "upstream_incomplete"
    assert "vendor" in body["error"]["message"]


# ---- openai SDK → proxy → Anthropic upstream ----------------------------------------------------


def test_openai_client_on_an_anthropic_upstream(tmp_path: Path, claude_fake: FakeAnthropic) -> None:
    claude_fake.default = ClaudeBehaviour(reply="Bonjour from Claude.", cache_read_input_tokens=100,
                                          cache_creation_input_tokens=20)
    with serve_proxy(anthropic_backend(tmp_path, claude_fake), environ=ENV) as proxy:
        answer = oai(proxy).chat.completions.create(
            model="claude:claude-sonnet-5-5", seed=3, temperature=0.4, stop=["###"],
            messages=[{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello"}],
        )
    assert answer.choices[0].message.content == "Bonjour from Claude."
    assert answer.choices[0].finish_reason == "stop"
    assert answer.id.startswith("msg_fake_")
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == (4 + 1 + 3) + 100 + 20, "input + cache reads + cache writes"
    assert answer.usage.completion_tokens == 3
    assert answer.usage.prompt_tokens_details is not None and answer.usage.prompt_tokens_details.cached_tokens == 100
    (seen,) = claude_fake.message_requests()
    assert seen.headers["x-api-key"] == KEY
    assert seen.headers["anthropic-version"] == VERSION
    assert "authorization" not in seen.headers
    assert seen.body == {
        "model": "claude-sonnet-5-5", "max_tokens": 4096,
        "system": "Answer in French.",
        "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 0.4, "stop_sequences": ["###"],
    }


def test_openai_client_streams_from_an_anthropic_upstream(tmp_path: Path, claude_fake: FakeAnthropic) -> None:
    claude_fake.default = ClaudeBehaviour(reply="one two three four five", chunks=5, thinking="Let me count.")
    with serve_proxy(anthropic_backend(tmp_path, claude_fake), environ=ENV) as proxy:
        chunks = list(oai(proxy).chat.completions.create(
            model="claude:claude-sonnet-5-5", max_tokens=100, stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Count"}],
        ))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) == 5 and "".join(pieces) == "one two three four five"
    reasoning = [getattr(c.choices[0].delta, "reasoning_content", None) for c in chunks if c.choices]
    assert "".join(r for r in reasoning if r) == "Let me count."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens == 4 + 1 and usage.completion_tokens == 5 + 3
    (seen,) = claude_fake.message_requests()
    assert seen.body["stream"] is True and seen.body["max_tokens"] == 100
    assert "stream_options" not in seen.body


@pytest.mark.parametrize("stream", [False, True])
def test_openai_tool_call_through_an_anthropic_upstream(stream: bool, tmp_path: Path,
                                                        claude_fake: FakeAnthropic) -> None:
    input_json = '{"city": "Paris", "days": [1, 2], "unit": "celsius"}'
    claude_fake.default = ClaudeBehaviour(tool_use=ToolUseSpec("get_weather", input_json, id="toolu_01A", pieces=5,
                                                               preamble="Let me check."))
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER["input_schema"]}}]
    messages: Any = [{"role": "user", "content": "Weather?"}]
    with serve_proxy(anthropic_backend(tmp_path, claude_fake), environ=ENV) as proxy:
        client = oai(proxy)
        if stream:
            chunks = list(client.chat.completions.create(model="claude:claude-sonnet-5-5", tools=tools,
                                                         tool_choice="required", messages=messages, stream=True))
            deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
            arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
            assert len([d for d in deltas if d.function and d.function.arguments]) == 5, "pieces pass through"
            assert deltas[0].id == "toolu_01A" and deltas[0].function is not None
            assert deltas[0].function.name == "get_weather"
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
        else:
            answer = client.chat.completions.create(model="claude:claude-sonnet-5-5", tools=tools,
                                                    tool_choice="required", messages=messages)
            (call,) = answer.choices[0].message.tool_calls or []
            assert call.id == "toolu_01A" and call.type == "function" and call.function.name == "get_weather"
            arguments = call.function.arguments
            text = answer.choices[0].message.content or ""
            finish = answer.choices[0].finish_reason
    if stream:
        assert arguments == input_json, "streamed pieces are assembled exactly"
    else:
        assert json.loads(arguments) == json.loads(input_json)
    assert text == "Let me check."
    assert finish == "tool_calls"
    seen = claude_fake.message_requests()[0].body
    assert seen["tools"] == [{"name": "get_weather", "input_schema": WEATHER["input_schema"]}]
    assert seen["tool_choice"] == {"type": "any"}


def test_tool_results_go_back_to_the_anthropic_upstream(tmp_path: Path, claude_fake: FakeAnthropic) -> None:
    with serve_proxy(anthropic_backend(tmp_path, claude_fake), environ=ENV) as proxy:
        oai(proxy).chat.completions.create(model="claude:claude-sonnet-5-5", messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "toolu_01A", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_01A", "content": "18 C"},
        ])
    assert claude_fake.message_requests()[0].body["messages"] == [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01A", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18 C"}]},
    ]


def test_anthropic_upstream_400_passes_through(tmp_path: Path, claude_fake: FakeAnthropic) -> None:
    claude_fake.default = ClaudeBehaviour(status=400, error_message="messages.0.content: too short")
    with serve_proxy(anthropic_backend(tmp_path, claude_fake), environ=ENV) as proxy:
        with pytest.raises(openai.BadRequestError) as caught:
            oai(proxy).chat.completions.create(model="claude:claude-sonnet-5-5",
                                               messages=[{"role": "user", "content": "x"}])
        with pytest.raises(anthropic.BadRequestError) as caught_claude:
            claude(proxy).messages.create(model="claude:claude-sonnet-5-5", max_tokens=10,
                                          messages=[{"role": "user", "content": "x"}])
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["message"] == "messages.0.content: too short"
    assert error["code"] == "invalid_request_error"
    body = caught_claude.value.body
    assert isinstance(body, dict)
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"] == "messages.0.content: too short"


def test_anthropic_upstream_429_with_retry_after(tmp_path: Path, claude_fake: FakeAnthropic) -> None:
    claude_fake.default = ClaudeBehaviour(status=429, error_message="Number of requests has exceeded your rate limit",
                                          headers={"Retry-After": "7"})
    with serve_proxy(anthropic_backend(tmp_path, claude_fake), environ=ENV) as proxy:
        with pytest.raises(openai.RateLimitError) as caught:
            oai(proxy).chat.completions.create(model="claude:claude-sonnet-5-5", stream=True,
                                               messages=[{"role": "user", "content": "x"}])
        with pytest.raises(anthropic.RateLimitError) as caught_claude:
            claude(proxy).messages.create(model="claude:claude-sonnet-5-5", max_tokens=10,
                                          messages=[{"role": "user", "content": "x"}])
    assert caught.value.response.headers["retry-after"] == "7"
    assert isinstance(caught.value.body, dict) and "rate limit" in caught.value.body["message"]
    assert caught_claude.value.response.headers["retry-after"] == "7"
    body = caught_claude.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "rate_limit_error"


def test_anthropic_upstream_overloaded_is_retried(tmp_path: Path, claude_fake: FakeAnthropic) -> None:
    claude_fake.enqueue(ClaudeBehaviour(status=529, error_message="Overloaded", headers={"Retry-After": "0"}),
                        ClaudeBehaviour(error_after_events=0))  # overloaded as the first event of a 200 stream
    with serve_proxy(anthropic_backend(tmp_path, claude_fake, retries=2), environ=ENV) as proxy:
        message = claude(proxy).messages.create(model="claude:claude-sonnet-5-5", max_tokens=10, stream=True,
                                                messages=[{"role": "user", "content": "x"}])
        text = "".join(e.delta.text for e in message if e.type == "content_block_delta"
                       and e.delta.type == "text_delta")
    assert text == "Hello from the fake Anthropic upstream."
    assert len(claude_fake.message_requests()) == 3


def test_anthropic_upstream_overloaded_without_retries(tmp_path: Path, claude_fake: FakeAnthropic) -> None:
    claude_fake.default = ClaudeBehaviour(status=529, error_message="Overloaded")
    with serve_proxy(anthropic_backend(tmp_path, claude_fake), environ=ENV) as proxy, \
            pytest.raises(anthropic.InternalServerError) as caught:
        claude(proxy).messages.create(model="claude:claude-sonnet-5-5", max_tokens=10,
                                      messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 529
    body = caught.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "overloaded_error"


# ---- anthropic SDK → proxy → Anthropic upstream -------------------------------------------------


def test_anthropic_client_on_an_anthropic_upstream_streams_thinking_and_tools(
    tmp_path: Path, claude_fake: FakeAnthropic
) -> None:
    input_json = '{"city": "Paris"}'
    claude_fake.default = ClaudeBehaviour(thinking="I should call the tool.", signature="sig-xyz",
                                          tool_use=ToolUseSpec("get_weather", input_json, pieces=3),
                                          cache_read_input_tokens=40)
    thinking = {"type": "enabled", "budget_tokens": 1024}
    with serve_proxy(anthropic_backend(tmp_path, claude_fake), environ=ENV) as proxy:
        client = claude(proxy)
        events = raw_events(client.messages.create(
            model="claude:claude-sonnet-5-5", max_tokens=2048, stream=True, tools=[WEATHER], thinking=thinking,
            metadata={"user_id": "user-7"}, messages=[{"role": "user", "content": "Weather in Paris?"}],
        ))
    pieces = [e.delta.partial_json for e in events if e.type == "content_block_delta"
              and e.delta.type == "input_json_delta"]
    assert "".join(pieces) == input_json and len(pieces) == 3
    starts = [e.content_block.type for e in events if e.type == "content_block_start"]
    assert starts == ["thinking", "tool_use"]
    signatures = [e.delta.signature for e in events if e.type == "content_block_delta"
                  and e.delta.type == "signature_delta"]
    assert signatures == ["sig-xyz"]
    delta = next(e for e in events if e.type == "message_delta")
    assert delta.delta.stop_reason == "tool_use"
    assert delta.usage.cache_read_input_tokens == 40
    assert delta.usage.input_tokens == 4 + 3
    seen = claude_fake.message_requests()[0].body
    assert seen["thinking"] == thinking and seen["metadata"] == {"user_id": "user-7"}
    assert seen["tools"] == [WEATHER]
    assert seen["max_tokens"] == 2048


def test_anthropic_upstream_error_event_mid_stream_makes_the_sdk_raise(
    tmp_path: Path, claude_fake: FakeAnthropic
) -> None:
    claude_fake.default = ClaudeBehaviour(reply="a b c d e f", chunks=6, error_after_events=5)
    with serve_proxy(anthropic_backend(tmp_path, claude_fake), environ=ENV) as proxy:
        client = claude(proxy)
        received: list[str] = []
        with pytest.raises(anthropic.APIStatusError) as caught:
            with client.messages.stream(model="claude:claude-sonnet-5-5", max_tokens=50,
                                        messages=[{"role": "user", "content": "x"}]) as stream:
                received.extend(stream.text_stream)
    assert received, "text before the failure was delivered"
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "overloaded_error"
    assert "Overloaded" in body["error"]["message"]


def test_anthropic_upstream_cut_mid_stream_makes_the_openai_sdk_raise(
    tmp_path: Path, claude_fake: FakeAnthropic
) -> None:
    claude_fake.default = ClaudeBehaviour(reply="a b c d e f", chunks=6, cut_after_events=5)
    with serve_proxy(anthropic_backend(tmp_path, claude_fake), environ=ENV) as proxy:
        stream = oai(proxy).chat.completions.create(model="claude:claude-sonnet-5-5", stream=True,
                                                    messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.APIError):
            list(stream)


def test_preset_extension_inherits_the_version_header(tmp_path: Path, claude_fake: FakeAnthropic) -> None:
    write_backend(tmp_path, "work-claude", f"""\
        backend_type: anthropic
        api_base_url: {claude_fake.base_url}
        max_retries: 0
        """)
    with serve_proxy(tmp_path, environ={"ANTHROPIC_API_KEY": KEY}) as proxy:
        message = claude(proxy).messages.create(model="work-claude:claude-haiku-5-5", max_tokens=32,
                                                messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].type == "text"
    (seen,) = claude_fake.message_requests()
    assert seen.headers["anthropic-version"] == VERSION and seen.headers["x-api-key"] == KEY
    assert seen.body["model"] == "claude-haiku-5-5"


BETA = "interleaved-thinking-2025-05-14"


def test_the_clients_anthropic_beta_reaches_an_anthropic_upstream(tmp_path: Path, claude_fake: FakeAnthropic) -> None:
    config = anthropic_backend(tmp_path, claude_fake)
    with serve_proxy(config, environ=ENV) as proxy:
        claude(proxy).messages.create(model="claude:claude-sonnet-5-5", max_tokens=32, extra_headers={
            "anthropic-beta": BETA}, messages=[{"role": "user", "content": "hi"}])
        claude(proxy).messages.create(model="claude:claude-sonnet-5-5", max_tokens=32,
                                      messages=[{"role": "user", "content": "no betas"}])
    with_beta, without = claude_fake.message_requests()
    assert with_beta.headers["anthropic-beta"] == BETA
    assert "anthropic-beta" not in {k.lower() for k in without.headers}


def test_a_backends_own_beta_header_is_joined_with_the_clients(tmp_path: Path, claude_fake: FakeAnthropic) -> None:
    write_backend(tmp_path, "claude", f"""\
        backend_type: custom
        protocol: anthropic
        api_base_url: {claude_fake.base_url}
        api_key_env_var: CLAUDE_KEY
        headers:
          anthropic-version: "{VERSION}"
          anthropic-beta: context-1m-2025-08-07
        max_retries: 0
        models:
          claude-sonnet-5-5: {{}}
        """)
    with serve_proxy(tmp_path, environ=ENV) as proxy:
        claude(proxy).messages.create(model="claude:claude-sonnet-5-5", max_tokens=32, extra_headers={
            "anthropic-beta": f"{BETA},context-1m-2025-08-07"}, messages=[{"role": "user", "content": "hi"}])
    (seen,) = claude_fake.message_requests()
    assert seen.headers["anthropic-beta"] == f"context-1m-2025-08-07,{BETA}"


def test_anthropic_beta_is_not_sent_to_an_upstream_of_another_protocol(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(openai_backend(tmp_path, fake), environ=ENV) as proxy:
        claude(proxy).messages.create(model="vendor:gpt-4o-mini", max_tokens=32, extra_headers={
            "anthropic-beta": BETA}, messages=[{"role": "user", "content": "hi"}])
    (seen,) = fake.chat_requests()
    assert "anthropic-beta" not in {k.lower() for k in seen.headers}


def test_prompt_caching_breakpoints_reach_an_anthropic_upstream(tmp_path: Path, claude_fake: FakeAnthropic) -> None:
    """Claude Code and friends mark cache_control on blocks; dropping them would cost the user the cache."""
    cached = {"type": "ephemeral"}
    with serve_proxy(anthropic_backend(tmp_path, claude_fake), environ=ENV) as proxy:
        claude(proxy).messages.create(
            model="claude:claude-sonnet-5-5", max_tokens=32,
            system=[{"type": "text", "text": "You are terse.", "cache_control": cached}],
            tools=[{**WEATHER, "cache_control": cached}],
            messages=[{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": cached}]}],
        )
    (seen,) = claude_fake.message_requests()
    assert seen.body["system"] == [{"type": "text", "text": "You are terse.", "cache_control": cached}]
    assert seen.body["tools"][0]["cache_control"] == cached
    assert seen.body["messages"][0]["content"] == [{"type": "text", "text": "hi", "cache_control": cached}]


def test_fake_speaks_what_the_official_sdk_reads(claude_fake: FakeAnthropic) -> None:
    """The fake itself, checked against the anthropic SDK (so the tests above test the real format)."""
    claude_fake.default = ClaudeBehaviour(thinking="t", tool_use=ToolUseSpec("get_weather", '{"city": "Oslo"}'))
    client = anthropic.Anthropic(base_url=claude_fake.base_url.removesuffix("/v1"), api_key=KEY, max_retries=0)
    with client.messages.stream(model="claude-sonnet-5-5", max_tokens=64, tools=[WEATHER],
                                messages=[{"role": "user", "content": "x"}]) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "tool_use"]
    assert final.content[1].input == {"city": "Oslo"}
    assert final.usage.output_tokens > 1


# ---- redacted thinking, both ways and across protocols --------------------------------------------

HIDDEN = "EmwKAhgBEgy3va3pzix/LafPsn4a"


def test_redacted_thinking_streams_to_an_anthropic_client_and_goes_back_unchanged(
    tmp_path: Path, claude_fake: FakeAnthropic
) -> None:
    claude_fake.default = ClaudeBehaviour(thinking="Hmm.", signature="sig-1", redacted=HIDDEN, reply="Done.")
    with serve_proxy(anthropic_backend(tmp_path, claude_fake), environ=ENV) as proxy:
        client = claude(proxy)
        events = raw_events(client.messages.create(
            model="claude:claude-sonnet-5-5", max_tokens=1024, stream=True,
            messages=[{"role": "user", "content": "Think."}]))
        blocks = [e.content_block.model_dump() for e in events if e.type == "content_block_start"]
        assert [b["type"] for b in blocks] == ["thinking", "redacted_thinking", "text"]
        assert blocks[1] == {"type": "redacted_thinking", "data": HIDDEN}
        turn = [{"type": "thinking", "thinking": "Hmm.", "signature": "sig-1"}, blocks[1],
                {"type": "text", "text": "Done."}]
        client.messages.create(model="claude:claude-sonnet-5-5", max_tokens=1024, messages=[
            {"role": "user", "content": "Think."}, {"role": "assistant", "content": turn},
            {"role": "user", "content": "Again."}])
    assert claude_fake.message_requests()[1].body["messages"][1] == {"role": "assistant", "content": turn}


THOUGHT = {"type": "thinking", "thinking": "Hmm.", "signature": "sig-1"}
SIGNED = {"thinking": (ClaudeBehaviour(thinking="Hmm.", signature="sig-1", reply="Done."), "sig-1", THOUGHT),
          "redacted": (ClaudeBehaviour(redacted=HIDDEN, reply="Done."), "redacted_thinking:" + HIDDEN,
                       {"type": "redacted_thinking", "data": HIDDEN})}


@pytest.mark.parametrize("kind", SIGNED)
def test_a_responses_client_carries_anthropic_reasoning_back_to_the_anthropic_upstream_only(
    tmp_path: Path, claude_fake: FakeAnthropic, kind: str
) -> None:
    """A thinking block's signature, or a redacted block, rides folded in encrypted_content (naming its
    protocol): an Anthropic upstream gets it back as it came, a Responses upstream does not get it."""
    claude_fake.default, signature, block = SIGNED[kind]
    with FakeResponses() as responses_fake:
        responses_backend(tmp_path, responses_fake)
        with serve_proxy(anthropic_backend(tmp_path, claude_fake), environ=ENV) as proxy:
            client = oai(proxy)
            first = client.responses.create(model="claude:claude-sonnet-5-5", input="Think.", store=False)
            reasoning = [item for item in first.output if item.type == "reasoning"]
            assert [item.encrypted_content for item in reasoning] == [
                fold_signature(ProviderState("anthropic", signature))]
            echo = [item.model_dump(exclude_none=True) for item in first.output]
            again = [{"role": "user", "content": "Think."}, *echo, {"role": "user", "content": "Again."}]
            client.responses.create(model="claude:claude-sonnet-5-5", store=False, input=again)
            client.responses.create(model="rsp:gpt-5", store=False, input=again)
        (seen,) = responses_fake.response_requests()
    sent = claude_fake.message_requests()[1].body["messages"][1]
    assert sent == {"role": "assistant", "content": [block, {"type": "text", "text": "Done."}]}
    assert [item.get("type", "message") for item in seen.body["input"]] == ["message", "message", "message"]
    assert "encrypted_content" not in json.dumps(seen.body)


def test_a_responses_client_gets_a_responses_upstreams_reasoning_as_it_came(
    tmp_path: Path, claude_fake: FakeAnthropic
) -> None:
    """Same protocol: encrypted_content unchanged, and given back to a Responses upstream, not to Anthropic."""
    with FakeResponses() as responses_fake:
        responses_fake.default = ResponsesBehaviour(reasoning="gAAAAB-enc_0123==", reply="Done.")
        responses_backend(tmp_path, responses_fake)
        with serve_proxy(anthropic_backend(tmp_path, claude_fake), environ=ENV) as proxy:
            client = oai(proxy)
            first = client.responses.create(model="rsp:gpt-5", input="Think.", store=False)
            assert [item.encrypted_content for item in first.output if item.type == "reasoning"] == [
                "gAAAAB-enc_0123=="]
            echo = [item.model_dump(exclude_none=True) for item in first.output]
            again = [{"role": "user", "content": "Think."}, *echo, {"role": "user", "content": "Again."}]
            client.responses.create(model="rsp:gpt-5", store=False, input=again)
            client.responses.create(model="claude:claude-sonnet-5-5", store=False, input=again)
        seen = responses_fake.response_requests()[1]
    assert [i["encrypted_content"] for i in seen.body["input"] if i.get("type") == "reasoning"] == [
        "gAAAAB-enc_0123=="]
    (sent,) = claude_fake.message_requests()
    assert sent.body["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": "Done."}]}


def test_an_anthropic_client_served_by_gemini_does_not_send_its_thought_signature_to_anthropic(
    tmp_path: Path, claude_fake: FakeAnthropic
) -> None:
    """A Gemini thought's signature reaches the Anthropic client folded; switched to an Anthropic upstream,
    the conversation goes without that thinking block (Anthropic would refuse it), with Anthropic's own."""
    claude_fake.default = ClaudeBehaviour(thinking="Hmm.", signature="sig-1", reply="Done.")
    with FakeGemini() as gemini_fake:
        gemini_fake.default = GeminiBehaviour(reply="Sunny.", thoughts="Look it up.", thought_signature="dGhvdWdodA==")
        gemini_backend(tmp_path, gemini_fake)
        with serve_proxy(anthropic_backend(tmp_path, claude_fake), environ=ENV) as proxy:
            client = claude(proxy)
            ask = [{"role": "user", "content": "Weather?"}]
            mine = client.messages.create(model="claude:claude-sonnet-5-5", max_tokens=1024, messages=ask)
            theirs = client.messages.create(model="g:gemini-2.5-flash", max_tokens=1024, messages=ask)
            thought = theirs.content[0].model_dump()
            assert thought == {"type": "thinking", "thinking": "Look it up.",
                               "signature": fold_signature(ProviderState("gemini", "dGhvdWdodA=="))}
            conversation = [*ask, {"role": "assistant", "content": [b.model_dump() for b in mine.content]},
                            {"role": "user", "content": "And tomorrow?"},
                            {"role": "assistant", "content": [b.model_dump() for b in theirs.content]},
                            {"role": "user", "content": "Thanks."}]
            client.messages.create(model="claude:claude-sonnet-5-5", max_tokens=1024, messages=conversation)
    sent = claude_fake.message_requests()[1].body["messages"]
    assert sent[1]["content"][0] == {"type": "thinking", "thinking": "Hmm.", "signature": "sig-1"}
    assert sent[3] == {"role": "assistant", "content": [{"type": "text", "text": "Sunny."}]}


def responses_backend(tmp_path: Path, fake: FakeResponses) -> Path:
    write_backend(tmp_path, "rsp", f"""\
        backend_type: custom
        protocol: openai-responses
        api_base_url: {fake.base_url}
        api_key_env_var: RESPONSES_KEY
        max_retries: 0
        models:
          gpt-5: {{}}
        """)
    return tmp_path


def gemini_backend(tmp_path: Path, fake: FakeGemini) -> Path:
    write_backend(tmp_path, "g", f"""\
        backend_type: gemini
        api_base_url: {fake.base_url}
        api_key_env_var: GEMINI_KEY
        max_retries: 0
        """)
    return tmp_path
