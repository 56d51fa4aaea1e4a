"""lip.protocols.anthropic.render through the codec: canonical request → upstream body, and prompt-caching
breakpoints across protocols."""

from __future__ import annotations

import copy

import orjson
import pytest

from lip.core.errors import (
    InvalidRequest,
)
from lip.core.model import (
    ChatRequest,
    Message,
    ReasoningPart,
    TextPart,
    ToolCall,
)
from lip.protocols.anthropic.codec import AnthropicCodec
from lip.protocols.anthropic.parse import parse_request
from lip.protocols.anthropic.render import DEFAULT_MAX_TOKENS, request_to_wire
from lip.protocols.anthropic.response import (
    usage_from_wire,
    usage_to_wire,
)
from lip.protocols.openai_chat import parse as openai_parse
from lip.protocols.openai_chat import render as openai_render
from lip.protocols.openai_chat import response as openai_response
from unit.protocols.anthropic.anthropic_cases import (
    WEATHER_SCHEMA,
    body_of,
    parse,
    user,
)

# ---- canonical → upstream body -------------------------------------------------------------------


def test_anthropic_request_round_trips_to_the_same_body() -> None:
    original = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are terse."}],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Use the tool.", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"},
                {"type": "text", "text": "Thanks"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            ]},
        ],
        "tools": [{"name": "weather", "input_schema": WEATHER_SCHEMA, "description": "Weather"}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "temperature": 0.5,
        "top_k": 5,
        "stop_sequences": ["STOP"],
        "metadata": {"user_id": "u-1"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "stream": True,
    }
    sent = copy.deepcopy(original)
    assert body_of(parse_request(sent), "claude-sonnet-4-5") == original
    assert sent == original, "parsing does not change the client's body"


def test_openai_request_becomes_a_valid_anthropic_body() -> None:
    request = openai_parse.parse_request(orjson.dumps({
        "model": "claude", "seed": 1, "n": 1, "presence_penalty": 0.1, "response_format": {"type": "text"},
        "temperature": 1.7, "stop": "END", "user": "alice", "parallel_tool_calls": False,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Look"},
                                         {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}}]},
            {"role": "assistant", "content": None, "reasoning_content": "x", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "noargs", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "-3 C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "ok"},
            {"role": "developer", "content": "Use Celsius."},
            {"role": "user", "content": "And tomorrow?"},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": WEATHER_SCHEMA, "strict": True}},
                  {"type": "function", "function": {"name": "noargs"}}],
        "tool_choice": "required",
    }))
    body = body_of(request)
    assert body["model"] == "claude-haiku-4-5"
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "Look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "call_2", "name": "noargs", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "-3 C"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "ok"}]},
        {"role": "system", "content": "Use Celsius."},  # a later system message stays in its place
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert body["tools"] == [{"name": "weather", "input_schema": WEATHER_SCHEMA},
                             {"name": "noargs", "input_schema": {"type": "object", "properties": {}}}]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["temperature"] == 1.0, "OpenAI's 0..2 range is clamped to Anthropic's 0..1"
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "alice"}
    for dropped in ("seed", "n", "presence_penalty", "response_format", "parallel_tool_calls", "user", "stop"):
        assert dropped not in body
    assert "stream" not in body


def test_max_tokens_from_the_request_and_reasoning_effort_as_effort() -> None:
    request = ChatRequest("m", (Message("user", "x"),), stream=True,
                          parameters={"max_completion_tokens": 10000, "reasoning_effort": "minimal",
                                      "temperature": 0.3})
    body = body_of(request)
    assert body["max_tokens"] == 10000
    assert body["output_config"] == {"effort": "low"}
    assert body["temperature"] == 0.3
    assert body["stream"] is True
    own = ChatRequest("m", (Message("user", "x"),), parameters={"reasoning_effort": "high"},
                      extensions={"anthropic": {"output_config": {"effort": "max", "format": None}}})
    assert body_of(own)["output_config"] == {"effort": "max", "format": None}, "the client's own config wins"
    odd = ChatRequest("m", (Message("user", "x"),), parameters={"reasoning_effort": "none"})
    assert "output_config" not in body_of(odd)


def test_unsigned_reasoning_is_not_replayed_and_bad_arguments_are_refused() -> None:
    assistant = Message("assistant", (ReasoningPart("from another vendor"), TextPart("Hi")))
    body = body_of(ChatRequest("m", (Message("user", "x"), assistant)))
    assert body["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": "Hi"}]}
    broken = Message("assistant", None, tool_calls=(ToolCall("c", "f", '{"a": '),))
    with pytest.raises(InvalidRequest):
        body_of(ChatRequest("m", (Message("user", "x"), broken)))


def test_extensions_of_the_client_win_and_model_parameters_pass_through() -> None:
    request = ChatRequest("m", (Message("user", "x"),),
                          parameters={"top_k": 3, "thinking": {"type": "disabled"}, "logprobs": True,
                                      "service_tier": "default", "metadata": {"k": "v"}},
                          extensions={"anthropic": {"thinking": {"type": "enabled", "budget_tokens": 2000}},
                                      "openai": {"store": True}})
    body = body_of(request)
    assert body["top_k"] == 3
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert "logprobs" not in body and "store" not in body
    assert "service_tier" not in body and "metadata" not in body, "OpenAI's meanings of these names"


def test_codec_addressing() -> None:
    codec = AnthropicCodec()
    assert codec.url("https://api.anthropic.com/v1", "claude-haiku-4-5", True) == "https://api.anthropic.com/v1/messages"
    assert codec.default_auth("sk-ant") == {"x-api-key": "sk-ant"}


# ---- prompt caching breakpoints ---------------------------------------------------------------

EPHEMERAL = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}


def test_cache_control_survives_an_anthropic_to_anthropic_round_trip() -> None:
    """Prompt caching from an Anthropic client reaches an Anthropic upstream where the client put it."""
    png = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    body = {
        "model": "m", "max_tokens": 64,
        "system": [{"type": "text", "text": "rules", "cache_control": HOUR}, {"type": "text", "text": "more"}],
        "tools": [{"name": "weather", "input_schema": WEATHER_SCHEMA, "cache_control": EPHEMERAL}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "look", "cache_control": EPHEMERAL},
                                         {"type": "image", "source": png, "cache_control": EPHEMERAL}]},
            {"role": "assistant", "content": [{"type": "text", "text": "calling", "cache_control": EPHEMERAL},
                                              {"type": "tool_use", "id": "t1", "name": "weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny",
                                          "cache_control": EPHEMERAL}]},
        ],
    }
    out = request_to_wire(parse_request(body), "m")
    assert out["system"] == [{"type": "text", "text": "rules", "cache_control": HOUR},
                             {"type": "text", "text": "more"}]
    assert out["tools"][0]["cache_control"] == EPHEMERAL
    first, second, third = out["messages"]
    assert [b.get("cache_control") for b in first["content"]] == [EPHEMERAL, EPHEMERAL]
    assert second["content"][0] == {"type": "text", "text": "calling", "cache_control": EPHEMERAL}
    assert third["content"] == [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny",
                                 "cache_control": EPHEMERAL}]


def test_an_openai_style_message_breakpoint_lands_on_its_last_block_for_anthropic() -> None:
    request = openai_parse.parse_request(orjson.dumps({"model": "m", "messages": [
        {"role": "system", "content": "long rules", "cache_control": EPHEMERAL},
        {"role": "user", "content": "question", "cache_control": EPHEMERAL},
    ]}))
    out = request_to_wire(request, "m")
    assert out["system"] == [{"type": "text", "text": "long rules", "cache_control": EPHEMERAL}]
    assert out["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "question", "cache_control": EPHEMERAL}]}]


def test_anthropic_breakpoints_are_not_sent_to_an_openai_upstream() -> None:
    request = parse(system=[{"type": "text", "text": "rules", "cache_control": EPHEMERAL}],
                    tools=[{"name": "w", "input_schema": WEATHER_SCHEMA, "cache_control": EPHEMERAL}],
                    messages=[user([{"type": "text", "text": "hi", "cache_control": EPHEMERAL}])])
    body = orjson.dumps({"messages": [openai_render.message_to_wire(m) for m in request.messages],
                         "tools": [openai_render.tool_to_wire(t) for t in request.tools]})
    assert b"cache_control" not in body


def test_a_cache_control_that_is_not_an_object_is_a_400_naming_it() -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse(messages=[{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": "yes"}]}])
    assert raised.value.param == "messages.0.content.0.cache_control"


def test_cache_writes_and_reasoning_tokens_keep_their_own_fields_across_protocols() -> None:
    anthropic_usage = {"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5,
                       "output_tokens": 7}
    usage = usage_from_wire(anthropic_usage)
    assert usage is not None and (usage.input_tokens, usage.cached_tokens, usage.cache_write_tokens) == (115, 100, 5)
    assert usage_to_wire(usage) == anthropic_usage  # an Anthropic client sees what its upstream said
    openai_usage = {"prompt_tokens": 20, "completion_tokens": 50, "total_tokens": 70,
                    "prompt_tokens_details": {"cached_tokens": 8},
                    "completion_tokens_details": {"reasoning_tokens": 30}}
    reasoned = openai_response.usage_from_wire(openai_usage)
    assert reasoned is not None and reasoned.reasoning_tokens == 30
    assert openai_response.usage_to_wire(reasoned) == openai_usage
