"""The embedded default: no configuration at all, the openai SDK against the built-in mock backend."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from integration.conftest import ProxyServer, serve_proxy


@pytest.fixture(scope="module")
def proxy() -> Iterator[ProxyServer]:
    with serve_proxy() as server:
        yield server


def client(proxy: ProxyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0, timeout=10)


def test_sdk_non_streaming_answer_is_deterministic_with_usage(proxy: ProxyServer) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    first = client(proxy).chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    second = client(proxy).chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    assert first.choices[0].message.content == second.choices[0].message.content
    assert "What is the capital of France?" in (first.choices[0].message.content or "")
    assert first.model == "gpt-4o-mini"
    assert first.choices[0].finish_reason == "stop"
    assert first.usage is not None
    assert first.usage.prompt_tokens > 5
    assert first.usage.completion_tokens > 10
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens


def test_sdk_streaming_arrives_in_several_chunks_with_usage(proxy: ProxyServer) -> None:
    stream = client(proxy).chat.completions.create(
        model="mock:mock-model",
        messages=[{"role": "user", "content": "Tell me something"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage, finish = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert len(pieces) >= 10
    text = "".join(pieces)
    assert text.startswith("This is the mock backend")
    assert text.endswith("Tell me something")
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


def test_stream_without_include_usage_has_no_usage_chunk(proxy: ProxyServer) -> None:
    with httpx.stream(
        "POST", proxy.url + "/v1/chat/completions",
        json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    ) as response:
        body = response.read().decode()
    assert response.headers["content-type"].startswith("text/event-stream")
    assert '"usage"' not in body
    assert body.rstrip().endswith("data: [DONE]")


def test_mock_honours_max_tokens_with_finish_reason_length(proxy: ProxyServer) -> None:
    answer = client(proxy).chat.completions.create(
        model="mock-model", max_tokens=5, messages=[{"role": "user", "content": "a long question " * 5}]
    )
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens <= 5


def test_mock_calls_a_required_tool(proxy: ProxyServer) -> None:
    answer = client(proxy).chat.completions.create(
        model="mock-model",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        tool_choice="required",
    )
    calls = answer.choices[0].message.tool_calls or []
    assert answer.choices[0].finish_reason == "tool_calls"
    assert [(c.function.name, c.function.arguments) for c in calls] == [("get_weather", '{"mock": true}')]


def test_models_health_and_request_ids(proxy: ProxyServer) -> None:
    models = client(proxy).models.list()
    ids = [m.id for m in models.data]
    assert "mock:mock-model" in ids
    assert not any(i.startswith("openai:") for i in ids), "backends without keys are not routable"
    health = httpx.get(proxy.url + "/health")
    assert health.status_code == 200
    assert "mock" in health.json()["backends"]["ready"]
    assert "OPENAI_API_KEY" in health.json()["backends"]["unavailable"]["openai"]
    assert len(health.headers["x-request-id"]) == 32
    echoed = httpx.get(proxy.url + "/health", headers={"x-request-id": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
