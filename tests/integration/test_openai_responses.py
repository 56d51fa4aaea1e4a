"""The OpenAI Responses API (``POST /v1/responses``) with the official SDK over real sockets.

Against the built-in mock backend and against a fake OpenAI Chat Completions upstream: the
same canonical request and event stream serve both.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import FunctionToolParam

from fakes.openai_upstream import Behaviour, FakeOpenAI, ToolCallSpec
from integration.conftest import ProxyServer, serve_proxy, write_backend

KEY = "sk-upstream-key-for-responses"
WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}


@pytest.fixture(scope="module")
def mock_proxy() -> Iterator[ProxyServer]:
    with serve_proxy() as server:
        yield server


def sdk(proxy: ProxyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="client-key", max_retries=0, timeout=20)


def upstream(tmp_path: Path, fake: FakeOpenAI) -> Path:
    write_backend(tmp_path, "up", f"""\
        backend_type: custom
        api_base_url: "{fake.base_url}"
        api_key_env_var: UP_KEY
        max_retries: 0
        models:
          chat-model: {{}}
          tiny:
            upstream_model: chat-model
            limits:
              max_input_tokens: 5
        """)
    return tmp_path


ENV = {"UP_KEY": KEY}


def post(proxy: ProxyServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(proxy.url + "/v1/responses", json=body, timeout=20)


def events_of(stream: Any) -> list[Any]:
    return list(stream)


# ---- the mock backend ---------------------------------------------------------------------------


def test_plain_text_with_output_text_and_usage(mock_proxy: ProxyServer) -> None:
    response = sdk(mock_proxy).responses.create(model="gpt-4o-mini", input="What is the capital of France?")
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "gpt-4o-mini"
    assert response.output_text.startswith("This is the mock backend")
    assert response.output_text.endswith("What is the capital of France?")
    (item,) = response.output
    assert item.type == "message"
    assert item.role == "assistant"
    assert item.status == "completed"
    assert response.usage is not None
    assert response.usage.input_tokens > 5
    assert response.usage.output_tokens > 10
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert response.incomplete_details is None


def test_request_settings_are_echoed(mock_proxy: ProxyServer) -> None:
    response = sdk(mock_proxy).responses.create(
        model="gpt-4o-mini", input="hi", instructions="Be brief.", temperature=0.5, top_p=0.9,
        max_output_tokens=500, metadata={"ticket": "42"}, tools=[WEATHER],
    )
    assert response.instructions == "Be brief."
    assert response.temperature == 0.5
    assert response.top_p == 0.9
    assert response.max_output_tokens == 500
    assert response.metadata == {"ticket": "42"}
    assert response.tool_choice == "auto"
    assert [getattr(t, "name", None) for t in response.tools] == ["get_weather"]
    assert getattr(response, "store", None) is True, "echoed (the SDK keeps it as an extra field)"


def test_streaming_text_event_sequence(mock_proxy: ProxyServer) -> None:
    events = events_of(sdk(mock_proxy).responses.create(model="mock:mock-model", input="Tell me something",
                                                        stream=True))
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) >= 10
    text = "".join(deltas)
    assert text.startswith("This is the mock backend")
    assert text.endswith("Tell me something")
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == text
    assert len({e.response.id for e in events if e.type.startswith("response.") and hasattr(e, "response")}) == 1
    completed = events[-1].response
    assert completed.status == "completed"
    assert completed.output_text == text
    assert completed.usage is not None and completed.usage.output_tokens > 0


def test_stream_helper_final_response(mock_proxy: ProxyServer) -> None:
    with sdk(mock_proxy).responses.stream(model="gpt-4o-mini", input="Stream me") as stream:
        pieces = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(pieces) == final.output_text
    assert final.output_text.endswith("Stream me")
    assert final.usage is not None and final.usage.total_tokens > 0


def test_max_output_tokens_makes_an_incomplete_response(mock_proxy: ProxyServer) -> None:
    response = sdk(mock_proxy).responses.create(model="gpt-4o-mini", input="hello", max_output_tokens=4)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"  # type: ignore[union-attr]
    events = events_of(sdk(mock_proxy).responses.create(model="gpt-4o-mini", input="hello", max_output_tokens=4,
                                                        stream=True))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    assert "response.completed" not in [e.type for e in events]


def test_mock_tool_call_with_required_tool_choice(mock_proxy: ProxyServer) -> None:
    response = sdk(mock_proxy).responses.create(model="gpt-4o-mini", input="weather?",
                                                tools=[WEATHER], tool_choice="required")
    (call,) = response.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert call.arguments == '{"mock": true}'
    assert call.call_id.startswith("call_mock_")


def test_invalid_input_item_names_the_field(mock_proxy: ProxyServer) -> None:
    reply = post(mock_proxy, {"model": "gpt-4o-mini", "input": [
        {"role": "user", "content": "hi"}, {"type": "message", "role": "user", "content": "x"}, {"type": "bogus"},
    ]})
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "input[2].type"
    assert error["type"] == "invalid_request_error"
    assert "input[2].type" in error["message"]
    with pytest.raises(openai.BadRequestError) as raised:
        no_url: Any = [{"role": "user", "content": [{"type": "input_image"}]}]
        sdk(mock_proxy).responses.create(model="gpt-4o-mini", input=no_url)
    assert raised.value.param == "input[0].content[0].image_url"


def test_unknown_previous_response_id_is_404_naming_it(mock_proxy: ProxyServer) -> None:
    missing = "resp_" + "0" * 48
    with pytest.raises(openai.NotFoundError) as raised:
        sdk(mock_proxy).responses.create(model="gpt-4o-mini", input="hi", previous_response_id=missing)
    assert raised.value.code == "previous_response_not_found"
    assert raised.value.body == {
        "message": f"Previous response with id '{missing}' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }


def test_store_false_is_not_kept(mock_proxy: ProxyServer) -> None:
    client = sdk(mock_proxy)
    first = client.responses.create(model="gpt-4o-mini", input="remember nothing", store=False)
    assert getattr(first, "store", None) is False
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4o-mini", input="again", previous_response_id=first.id)


# ---- a fake OpenAI Chat Completions upstream ---------------------------------------------------


def test_streamed_tool_call_then_function_output_turn(tmp_path: Path, fake: FakeOpenAI) -> None:
    arguments = '{"city": "Paris", "units": "celsius"}'
    fake.enqueue(Behaviour(tool_call=ToolCallSpec(name="get_weather", arguments=arguments, id="call_abc", pieces=4)))
    fake.enqueue(Behaviour(reply="It is 21 degrees in Paris."))
    with serve_proxy(upstream(tmp_path, fake), environ=ENV) as proxy:
        client = sdk(proxy)
        events = events_of(client.responses.create(
            model="up:chat-model", input="Weather in Paris?", instructions="Use tools.",
            tools=[WEATHER], stream=True))
        deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
        assert len(deltas) == 4
        assert "".join(deltas) == arguments
        (done,) = [e for e in events if e.type == "response.function_call_arguments.done"]
        assert done.arguments == arguments
        added = next(e for e in events if e.type == "response.output_item.added")
        assert added.item.type == "function_call"
        assert (added.item.call_id, added.item.name) == ("call_abc", "get_weather")
        assert events[-1].type == "response.completed"
        (call,) = events[-1].response.output
        assert (call.type, call.call_id, call.name, call.arguments) == ("function_call", "call_abc", "get_weather",
                                                                        arguments)
        first_id = events[-1].response.id

        second = client.responses.create(
            model="up:chat-model", previous_response_id=first_id, tools=[WEATHER],
            input=[{"type": "function_call_output", "call_id": "call_abc", "output": '{"temp": 21}'}],
        )
    assert second.output_text == "It is 21 degrees in Paris."
    assert second.previous_response_id == first_id
    first_body, second_body = (r.body for r in fake.chat_requests())
    assert first_body["stream"] is True
    assert first_body["messages"] == [{"role": "system", "content": "Use tools."},
                                      {"role": "user", "content": "Weather in Paris?"}]
    assert first_body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": WEATHER["description"], "parameters": WEATHER["parameters"],
        "strict": False}}], "strict is passed on when the client sets it"
    assert second_body["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}]},
        {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call_abc"},
    ], "instructions are not carried over to the next turn (OpenAI's rule)"


def test_function_call_items_in_input_reach_the_upstream(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(upstream(tmp_path, fake), environ=ENV) as proxy:
        items: Any = [
            {"role": "user", "content": "Weather in Rome and Oslo?"},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Rome"}'},
            {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
            {"type": "function_call_output", "call_id": "c1", "output": "25"},
            {"type": "function_call_output", "call_id": "c2", "output": "3"},
        ]
        sdk(proxy).responses.create(model="up:chat-model", tools=[WEATHER], input=items,
                                    tool_choice={"type": "function", "name": "get_weather"}, parallel_tool_calls=False)
    (seen,) = fake.chat_requests()
    assert seen.body["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
        {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
    ]}
    assert seen.body["messages"][2:] == [{"role": "tool", "content": "25", "tool_call_id": "c1"},
                                         {"role": "tool", "content": "3", "tool_call_id": "c2"}]
    assert seen.body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert seen.body["parallel_tool_calls"] is False


def test_previous_response_id_chains_turns(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(reply="Nice to meet you, Ann."), Behaviour(reply="Your name is Ann."),
                 Behaviour(reply="Bye."))
    with serve_proxy(upstream(tmp_path, fake), environ=ENV) as proxy:
        client = sdk(proxy)
        first = client.responses.create(model="up:chat-model", input="My name is Ann.", instructions="Be kind.",
                                        temperature=0.2, max_output_tokens=100, reasoning={"effort": "low"})
        with client.responses.stream(model="up:chat-model", input="What is my name?",
                                     previous_response_id=first.id, instructions="Be terse.") as stream:
            second = stream.get_final_response()
        third = client.responses.create(model="up:chat-model", input="Bye", previous_response_id=second.id)
    assert second.output_text == "Your name is Ann."
    assert third.output_text == "Bye."
    bodies = [r.body for r in fake.chat_requests()]
    assert bodies[0]["temperature"] == 0.2
    assert bodies[0]["max_tokens"] == 100
    assert bodies[0]["reasoning_effort"] == "low"
    assert "metadata" not in bodies[0] and "store" not in bodies[0], "Responses-only keys stay in the proxy"
    assert bodies[1]["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "My name is Ann."},
        {"role": "assistant", "content": "Nice to meet you, Ann."},
        {"role": "user", "content": "What is my name?"},
    ]
    assert bodies[2]["messages"] == [
        {"role": "user", "content": "My name is Ann."},
        {"role": "assistant", "content": "Nice to meet you, Ann."},
        {"role": "user", "content": "What is my name?"},
        {"role": "assistant", "content": "Your name is Ann."},
        {"role": "user", "content": "Bye"},
    ]


def test_input_limit_error(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(upstream(tmp_path, fake), environ=ENV) as proxy:
        with pytest.raises(openai.BadRequestError) as raised:
            sdk(proxy).responses.create(model="up:tiny", input="far more than five tokens in this input text")
    assert raised.value.code == "input_limit_exceeded"
    assert fake.chat_requests() == [], "nothing reached the upstream"


def test_upstream_error_before_the_stream_passes_through(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(status=400, error_message="bad thing", error_code="context_length_exceeded"))
    with serve_proxy(upstream(tmp_path, fake), environ=ENV) as proxy:
        with pytest.raises(openai.BadRequestError) as raised:
            events_of(sdk(proxy).responses.create(model="up:chat-model", input="hi", stream=True))
    assert raised.value.code == "context_length_exceeded"
    assert "bad thing" in raised.value.message


def test_mid_stream_failure_is_a_failed_response_and_an_sdk_error(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(reply="one two three four five six seven eight", chunks=8, cut_after_chunks=3),
                 Behaviour(reply="one two three four five six seven eight", chunks=8, cut_after_chunks=3))
    with serve_proxy(upstream(tmp_path, fake), environ=ENV) as proxy:
        client = sdk(proxy)
        seen: list[Any] = []
        with pytest.raises(openai.APIError) as raised:
            for event in client.responses.create(model="up:chat-model", input="count", stream=True):
                seen.append(event)
        assert "before finishing" in raised.value.message or "mid-stream" in raised.value.message
        types = [e.type for e in seen]
        assert "response.output_text.delta" in types
        assert "response.completed" not in types
        failed = seen[-1]
        assert failed.type == "response.failed"
        assert failed.response.status == "failed"
        assert failed.response.error is not None and failed.response.error.code == "server_error"
        assert failed.response.output[0].status == "incomplete"
        with pytest.raises(openai.NotFoundError):  # a failed response is not stored
            client.responses.create(model="up:chat-model", input="x", previous_response_id=failed.response.id)

        with pytest.raises(openai.APIError):
            with client.responses.stream(model="up:chat-model", input="count") as stream:
                stream.until_done()


def test_a_stored_response_can_be_retrieved_and_deleted(mock_proxy: ProxyServer) -> None:
    client = sdk(mock_proxy)
    created = client.responses.create(model="mock:echo", input="keep this one")
    again = client.responses.retrieve(created.id)
    assert again.id == created.id and again.output_text == created.output_text
    assert again.usage is not None and again.usage.total_tokens == created.usage.total_tokens  # type: ignore[union-attr]
    deleted = client.responses.delete(created.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError, match="not found"):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):  # nor can a next turn build on it
        client.responses.create(model="mock:echo", input="and now?", previous_response_id=created.id)


def test_a_streamed_response_is_stored_as_its_final_object(mock_proxy: ProxyServer) -> None:
    client = sdk(mock_proxy)
    with client.responses.stream(model="mock:echo", input="streamed and kept") as stream:
        final = stream.get_final_response()
    again = client.responses.retrieve(final.id)
    assert again.status == "completed" and again.output_text == final.output_text


def test_store_false_responses_cannot_be_retrieved_and_streamed_retrieval_is_refused(
    mock_proxy: ProxyServer,
) -> None:
    client = sdk(mock_proxy)
    unstored = client.responses.create(model="mock:echo", input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    kept = client.responses.create(model="mock:echo", input="keep me")
    refused = httpx.get(mock_proxy.url + f"/v1/responses/{kept.id}", params={"stream": "true"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "stream"
