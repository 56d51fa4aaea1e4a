"""A custom backend from backend.yaml, against a fake OpenAI upstream that records what it receives."""

from __future__ import annotations

from pathlib import Path

import openai

from fakes.openai_upstream import Behaviour, FakeOpenAI, ToolCallSpec
from integration.conftest import ProxyServer, serve_proxy, write_backend

KEY = "sk-canary-0123456789abcdef"


def sdk(proxy: ProxyServer, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="client-key", max_retries=0, timeout=15, **kwargs)  # type: ignore[arg-type]


def internal_llm(tmp_path: Path, fake: FakeOpenAI, extra: str = "") -> Path:
    write_backend(tmp_path, "internal-llm", f"""\
        backend_type: "custom"
        api_base_url: "{fake.base_url}"
        api_key_env_var: "INTERNAL_LLM_API_KEY"
        headers:
          X-Custom-Header: "value"
          X-Organization-ID: "${{ORG_ID}}"
        models:
          "company-gpt-large":
            limits:
              context_window: 32000
              max_input_tokens: 24000
              max_output_tokens: 8000
              requests_per_minute: 100
          "gpt-4-specialized":
            upstream_model: "gpt-4o"
            parameters:
              temperature: 0.3
              top_p: 0.9
        {extra}""")
    return tmp_path


ENV = {"INTERNAL_LLM_API_KEY": KEY, "ORG_ID": "org-123"}


def test_request_reaches_upstream_with_path_bearer_headers_and_model(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(internal_llm(tmp_path, fake), environ=ENV, default_backend="internal-llm") as proxy:
        answer = sdk(proxy).chat.completions.create(
            model="company-gpt-large", messages=[{"role": "user", "content": "Hello"}], seed=7,
            extra_body={"custom_vendor_flag": {"a": 1}},
        )
    assert answer.choices[0].message.content == "Hello from the fake upstream."
    (seen,) = fake.chat_requests()
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.headers["x-custom-header"] == "value"
    assert seen.headers["x-organization-id"] == "org-123"
    assert seen.body["model"] == "company-gpt-large"
    assert seen.body["messages"] == [{"role": "user", "content": "Hello"}]
    assert seen.body["seed"] == 7, "parameters the proxy does not know are carried through"
    assert seen.body["custom_vendor_flag"] == {"a": 1}
    assert "client-key" not in str(seen.headers), "the client's key to the proxy is not forwarded"


def test_upstream_model_and_default_parameters_with_client_override(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(internal_llm(tmp_path, fake), environ=ENV) as proxy:
        answer = sdk(proxy).chat.completions.create(
            model="internal-llm:gpt-4-specialized", temperature=0.9,
            messages=[{"role": "user", "content": "x"}],
        )
    (seen,) = fake.chat_requests()
    assert seen.body["model"] == "gpt-4o"
    assert seen.body["temperature"] == 0.9, "the client's value wins over the model's default"
    assert seen.body["top_p"] == 0.9, "the model's default fills what the client did not set"
    assert answer.model == "gpt-4o", "the response names the model that answered"


def test_custom_auth_header_replaces_bearer(tmp_path: Path, fake: FakeOpenAI) -> None:
    write_backend(tmp_path, "custom-auth", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        api_key_env_var: MY_API_KEY
        auth_type: custom
        auth_header: X-API-Key
        models:
          m: {{}}
        """)
    with serve_proxy(tmp_path, environ={"MY_API_KEY": KEY}) as proxy:
        sdk(proxy).chat.completions.create(model="custom-auth:m", messages=[{"role": "user", "content": "x"}])
    (seen,) = fake.chat_requests()
    assert seen.headers["x-api-key"] == KEY
    assert "authorization" not in seen.headers


def test_local_backend_without_key_sends_no_auth(tmp_path: Path, fake: FakeOpenAI) -> None:
    write_backend(tmp_path, "local", f"backend_type: custom\napi_base_url: {fake.base_url}\nmodels:\n  m: {{}}\n")
    with serve_proxy(tmp_path) as proxy:
        sdk(proxy).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    (seen,) = fake.chat_requests()
    assert "authorization" not in seen.headers


def test_streaming_chunks_arrive_in_order_with_usage(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.default = Behaviour(reply="one two three four five six seven eight", chunks=8)
    with serve_proxy(internal_llm(tmp_path, fake), environ=ENV) as proxy:
        stream = sdk(proxy).chat.completions.create(
            model="internal-llm:company-gpt-large", messages=[{"role": "user", "content": "count"}],
            stream=True, stream_options={"include_usage": True},
        )
        chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) == 8
    assert "".join(pieces) == "one two three four five six seven eight"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    (seen,) = fake.chat_requests()
    assert seen.body["stream"] is True
    assert seen.body["stream_options"] == {"include_usage": True}


def test_streamed_tool_call_arguments_are_assembled_exactly(tmp_path: Path, fake: FakeOpenAI) -> None:
    arguments = '{"city": "Paris", "unit": "celsius", "days": [1, 2, 3]}'
    fake.default = Behaviour(tool_call=ToolCallSpec(name="get_weather", arguments=arguments, pieces=5))
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "d",
                                                "parameters": {"type": "object", "properties": {}}}}]
    with serve_proxy(internal_llm(tmp_path, fake), environ=ENV) as proxy:
        client = sdk(proxy)
        stream = client.chat.completions.create(
            model="internal-llm:company-gpt-large", messages=[{"role": "user", "content": "weather"}],
            tools=tools, stream=True,  # type: ignore[arg-type]
        )
        parts, names, finish = [], [], None
        for chunk in stream:
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    if call.function and call.function.name:
                        names.append(call.function.name)
                    if call.function and call.function.arguments:
                        parts.append(call.function.arguments)
                finish = choice.finish_reason or finish
        whole = client.chat.completions.create(
            model="internal-llm:company-gpt-large", messages=[{"role": "user", "content": "weather"}],
            tools=tools,  # type: ignore[arg-type]
        )
    assert names == ["get_weather"]
    assert len(parts) == 5
    assert "".join(parts) == arguments
    assert finish == "tool_calls"
    call = (whole.choices[0].message.tool_calls or [])[0]
    assert (call.id, call.function.name, call.function.arguments) == ("call_fake_1", "get_weather", arguments)
    assert fake.chat_requests()[0].body["tools"] == tools


def test_tool_result_turn_is_forwarded_intact(tmp_path: Path, fake: FakeOpenAI) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "weather?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    with serve_proxy(internal_llm(tmp_path, fake), environ=ENV) as proxy:
        sdk(proxy).chat.completions.create(model="internal-llm:company-gpt-large", messages=messages)  # type: ignore[arg-type]
    assert fake.chat_requests()[0].body["messages"] == messages
