"""lip.protocols.anthropic.parse and the surface's request parsing: client request → canonical."""

from __future__ import annotations

from typing import Any

import pytest

from lip.core.errors import (
    InvalidRequest,
)
from lip.core.model import (
    ImagePart,
    Message,
    ProviderState,
    ReasoningPart,
    RedactedReasoningPart,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
)
from lip.protocols.anthropic.surface import AnthropicMessages
from lip.protocols.base import Incoming
from unit.protocols.anthropic.anthropic_cases import (
    WEATHER_SCHEMA,
    invalid,
    parse,
    user,
)

# ---- client → canonical ------------------------------------------------------------------------


def test_plain_request() -> None:
    request = parse(messages=[user("Hello")], system="Be brief.", temperature=0.2, top_p=0.9, top_k=40,
                    stop_sequences=["END"], stream=True)
    assert request.model == "claude-sonnet-4-5"
    assert request.messages == (Message("system", "Be brief."), Message("user", "Hello"))
    assert dict(request.parameters) == {"max_tokens": 256, "temperature": 0.2, "top_p": 0.9, "top_k": 40,
                                        "stop": ["END"]}
    assert request.stream is True
    assert request.include_usage is True
    assert request.extensions == {}


def test_system_blocks_stay_separate_messages() -> None:
    request = parse(system=[{"type": "text", "text": "A"}, {"type": "text", "text": "B", "cache_control": {}}],
                    messages=[user("x")])
    assert request.messages[:2] == (Message("system", (TextPart("A"),)), Message("system", (TextPart("B", {}),)))


def test_anthropic_only_keys_are_kept_as_extensions() -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    request = parse(messages=[user("x")], metadata={"user_id": "u1"}, thinking=thinking, service_tier="auto")
    assert request.extensions == {"anthropic": {"metadata": {"user_id": "u1"}, "thinking": thinking,
                                                "service_tier": "auto"}}
    assert "thinking" not in request.parameters


def test_user_blocks_images_and_tool_results_in_order() -> None:
    request = parse(messages=[
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {}},
        ]},
        user([
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"},
            {"type": "tool_result", "tool_use_id": "toolu_2",
             "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"type": "text", "text": "And this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        ]),
    ])
    assistant, first, second, rest = request.messages
    assert assistant == Message("assistant", "Let me look.", tool_calls=(
        ToolCall("toolu_1", "weather", '{"city":"Paris"}'), ToolCall("toolu_2", "weather", "{}")))
    assert first == Message("tool", "18 C", tool_call_id="toolu_1")
    assert second == Message("tool", "a\nb", tool_call_id="toolu_2")
    assert rest == Message("user", (TextPart("And this?"), ImagePart("data:image/png;base64,iVBORw0KGgo="),
                                    ImagePart("https://example.com/cat.jpg")))


def test_tool_result_with_an_image_keeps_parts() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://e.com/x.png"}}
    (message,) = parse(messages=[user([{"type": "tool_result", "tool_use_id": "t",
                                        "content": [{"type": "text", "text": "see"}, image]}])]).messages
    assert message == Message("tool", (TextPart("see"), ImagePart("https://e.com/x.png")), tool_call_id="t")


def test_thinking_and_redacted_thinking_are_reasoning_parts_of_their_own() -> None:
    (message,) = parse(messages=[{"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig1"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Answer"},
    ]}]).messages
    assert message.content == (ReasoningPart("hmm", ProviderState("anthropic", "sig1")),
                               RedactedReasoningPart("anthropic", "opaque"), TextPart("Answer"))


def test_tools_and_tool_choices() -> None:
    tools = [{"name": "weather", "description": "Weather now", "input_schema": WEATHER_SCHEMA,
              "cache_control": {"type": "ephemeral"}}]
    request = parse(messages=[user("x")], tools=tools, tool_choice={"type": "any"})
    assert request.tools == (Tool("weather", "Weather now", WEATHER_SCHEMA, cache_control={"type": "ephemeral"},
                                  spec=tools[0], protocol="anthropic"),)
    assert request.tool_choice == ToolChoice("required")
    for raw, expected in [({"type": "auto"}, ToolChoice("auto")), ({"type": "none"}, ToolChoice("none")),
                          ({"type": "tool", "name": "weather"}, ToolChoice("tool", "weather"))]:
        assert parse(messages=[user("x")], tools=tools, tool_choice=raw).tool_choice == expected
    no_parallel = parse(messages=[user("x")], tools=tools,
                        tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    assert no_parallel.parameters["parallel_tool_calls"] is False


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": None}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "developer", "content": "x"}]}, "messages.0.role"),
    ({"messages": [user("x"), {"role": "system", "content": [{"type": "image"}]}]}, "messages.1.content.0"),
    ({"messages": [user("x"), {"role": "assistant"}]}, "messages.1.content"),
    ({"messages": [user("x"), user([{"type": "text", "text": "a"}, {"type": "document"}])]},
     "messages.1.content.1.source"),
    ({"messages": [user([{"type": "document", "source": {"type": "file", "file_id": "f"}}])]},
     "messages.0.content.0.source.type"),
    ({"messages": [user("x"), user([{"type": "video", "source": {}}])]}, "messages.1.content.0.type"),
    ({"messages": [user([{"type": "text", "text": 3}])]}, "messages.0.content.0.text"),
    ({"messages": [user([{"text": "no type"}])]}, "messages.0.content.0.type"),
    ({"messages": [user([{"type": "image", "source": {"type": "file", "file_id": "f"}}])]},
     "messages.0.content.0.source.type"),
    ({"messages": [user([{"type": "tool_result"}])]}, "messages.0.content.0.tool_use_id"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n",
                                                       "input": "[]"}]}]}, "messages.0.content.0.input"),
    ({"messages": [{"role": "assistant", "content": [{"type": "image"}]}]}, "messages.0.content.0.type"),
    ({"messages": [user("x")], "system": [{"type": "image"}]}, "system.0.type"),
    ({"messages": [user("x")], "max_tokens": 0}, "max_tokens"),
    ({"messages": [user("x")], "max_tokens": "100"}, "max_tokens"),
    ({"messages": [user("x")], "temperature": 1.5}, "temperature"),
    ({"messages": [user("x")], "top_k": -1}, "top_k"),
    ({"messages": [user("x")], "stop_sequences": "END"}, "stop_sequences"),
    ({"messages": [user("x")], "tools": [{"name": "t"}]}, "tools.0.input_schema"),
    ({"messages": [user("x")], "tools": [{"type": 3, "name": "web_search"}]}, "tools.0.type"),
    ({"messages": [user("x")], "tools": [{"type": "web_search_20250305"}]}, "tools.0.name"),
    ({"messages": [user("x")], "tool_choice": {"type": "required"}}, "tool_choice.type"),
    ({"messages": [user("x")], "tool_choice": {"type": "tool"}}, "tool_choice.name"),
    ({"messages": [user("x")], "model": 3}, "model"),
    ({"messages": [user("x")], "stream": "yes"}, "stream"),
])
def test_errors_name_the_field(body: dict[str, Any], param: str) -> None:
    assert invalid(**body).param == param


def test_unsupported_block_message_lists_what_is_supported() -> None:
    error = invalid(messages=[user("x"), user([{"type": "text", "text": "a"}, {"type": "video"}])])
    assert error.message.startswith("messages.1.content.1.type: content blocks of type 'video'")
    assert "'text', 'image', 'document', 'tool_result' or a server tool's block" in error.message


def test_frontend_parse_rejects_non_json() -> None:
    surface = AnthropicMessages()
    with pytest.raises(InvalidRequest) as caught:
        surface.parse(Incoming(b"{nope", {}, {}, {}))
    assert caught.value.code == "invalid_json"
