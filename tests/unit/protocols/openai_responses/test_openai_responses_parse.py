"""lip.protocols.openai_responses.parse: Responses requests (input items, tools, tool choice, parameters)."""

from __future__ import annotations

from typing import Any

import pytest

from lip.core.errors import InvalidRequest
from lip.core.model import (
    ImagePart,
    Message,
    ProviderState,
    ReasoningPart,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
)
from lip.protocols.openai_responses import common
from lip.protocols.openai_responses import parse as parse_wire
from lip.protocols.openai_responses import response as response_wire

SIG = ProviderState("openai-responses", "sig")


def invalid(body: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse_wire.parse_request(body)
    assert caught.value.status == 400
    return caught.value


def parse(**body: Any) -> Any:
    return parse_wire.parse_request({"model": "m", **body})


# ---- input -------------------------------------------------------------------------------------


def test_string_input_is_one_user_message() -> None:
    request = parse(input="hello")
    assert request.model == "m"
    assert request.messages == (Message(role="user", content="hello"),)
    assert request.stream is False
    assert request.include_usage is True


def test_instructions_lead_as_a_system_message_and_are_carried() -> None:
    request = parse(input="hi", instructions="Be brief.")
    assert request.messages[0] == Message(role="system", content="Be brief.")
    assert common.instructions_count(request) == 1
    assert common.carried(request)["instructions"] == "Be brief."
    assert common.instructions_count(parse(input="hi")) == 0


def test_history_goes_between_instructions_and_input() -> None:
    history = (Message(role="user", content="a"), Message(role="assistant", content="b"))
    request = parse_wire.parse_request({"model": "m", "input": "c", "instructions": "sys"}, history)
    assert [m.text() for m in request.messages] == ["sys", "a", "b", "c"]


def test_message_items_with_parts() -> None:
    request = parse(input=[
        {"role": "developer", "content": "rules"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"},
        ]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed", "content": [
            {"type": "output_text", "text": "a cat", "annotations": []}, {"type": "refusal", "refusal": "no"}]},
    ])
    assert request.messages == (
        Message(role="developer", content="rules"),
        Message(role="user", content=(TextPart("look"), ImagePart("https://x/cat.png", "low"))),
        Message(role="assistant", content=(TextPart("a cat"), TextPart("no"))),
    )


def test_function_calls_join_the_assistant_turn_and_outputs_are_tool_messages() -> None:
    request = parse(input=[
        {"role": "user", "content": "weather?"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": '{"city":"Rome"}'},
        {"type": "function_call", "call_id": "c2", "name": "w", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "25"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "3"}]},
        {"type": "function_call", "call_id": "c3", "name": "w", "arguments": "{}"},
    ])
    assert request.messages[1:] == (
        Message(role="assistant", content=(TextPart("Checking."),), tool_calls=(
            ToolCall("c1", "w", '{"city":"Rome"}'), ToolCall("c2", "w", '{"city":"Oslo"}'))),
        Message(role="tool", content="25", tool_call_id="c1"),
        Message(role="tool", content=(TextPart("3"),), tool_call_id="c2"),
        Message(role="assistant", content=None, tool_calls=(ToolCall("c3", "w", "{}"),)),
    )


def test_reasoning_items_lead_the_next_assistant_turn() -> None:
    request = parse(input=[
        {"role": "user", "content": "q"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "short"}],
         "content": [{"type": "reasoning_text", "text": "full"}], "encrypted_content": "sig"},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        {"type": "reasoning", "id": "rs_2", "summary": [{"type": "summary_text", "text": "sum"}]},
        {"role": "assistant", "content": "done"},
        {"type": "reasoning", "id": "rs_3", "summary": [{"type": "summary_text", "text": "lost"}]},
        {"role": "user", "content": "next"},  # reasoning not followed by an assistant turn: dropped
        {"role": "assistant", "content": "reply"},
        {"type": "reasoning", "id": "rs_4", "summary": []},  # trailing: dropped
    ])
    assert request.messages[1] == Message(role="assistant", content=(ReasoningPart("full", SIG),),
                                          tool_calls=(ToolCall("c1", "w", "{}"),))
    assert request.messages[3] == Message(role="assistant", content=(ReasoningPart("sum"), TextPart("done")))
    assert request.messages[4:] == (Message(role="user", content="next"), Message(role="assistant", content="reply"))


@pytest.mark.parametrize(("body", "param"), [
    ({"input": None}, "input"),
    ({}, "input"),
    ({"input": 5}, "input"),
    ({"input": []}, "input"),
    ({"input": ["x"]}, "input[0]"),
    ({"input": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"type": "bogus"}]},
     "input[2].type"),
    ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"input": [{"role": "user"}]}, "input[0].content"),
    ({"input": [{"role": "user", "content": [{"type": "input_text"}]}]}, "input[0].content[0].text"),
    ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "input[0].content[0].image_url"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
     "input[0].content[0].file_id"),
    ({"input": [{"role": "user", "content": [{"type": "input_file"}]}]}, "input[0].content[0].file_data"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
     "input[0].content[0].file_id"),
    ({"input": [{"type": "custom_tool_call", "call_id": "c", "name": "f", "input": 3}]}, "input[0].input"),
    ({"input": [{"role": "user", "content": [{"type": "nope"}]}]}, "input[0].content[0].type"),
    ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
    ({"input": [{"type": "function_call", "call_id": "c", "arguments": "{}"}]}, "input[0].name"),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]}, "input[0].arguments"),
    ({"input": [{"type": "function_call_output", "call_id": "c"}]}, "input[0].output"),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"input": [{"type": "reasoning", "summary": [{"type": "summary_text"}]}]}, "input[0].summary[0].text"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({"input": "x", "model": 3}, "model"),
    ({"input": "x", "stream": "yes"}, "stream"),
    ({"input": "x", "instructions": ["a"]}, "instructions"),
    ({"input": "x", "previous_response_id": 7}, "previous_response_id"),
    ({"input": "x", "store": "no"}, "store"),
    ({"input": "x", "metadata": {"a": 1}}, "metadata"),
    ({"input": "x", "background": True}, "background"),
    ({"input": "x", "conversation": "conv_1"}, "conversation"),
    ({"input": "x", "prompt": {"id": "pmpt_1"}}, "prompt"),
])
def test_errors_name_the_field(body: dict[str, Any], param: str) -> None:
    error = invalid({"model": "m", **body})
    assert error.param == param
    assert f"'{param}'" in error.message


# ---- tools, tool choice, parameters ------------------------------------------------------------


def test_function_tools() -> None:
    schema = {"type": "object", "properties": {}}
    request = parse(input="x", tools=[
        {"type": "function", "name": "a", "description": "A", "parameters": schema, "strict": True},
        {"type": "function", "name": "b"},
    ])
    spec_a, spec_b = request.tools[0].spec, request.tools[1].spec
    assert request.tools == (Tool("a", "A", schema, {"strict": True}, spec=spec_a, protocol=common.PROTOCOL),
                             Tool("b", spec=spec_b, protocol=common.PROTOCOL))
    assert response_wire.tool_to_wire(request.tools[0]) == {"type": "function", "name": "a", "description": "A",
                                                   "parameters": schema, "strict": True}


@pytest.mark.parametrize(("tools", "param"), [
    ("x", "tools"),
    (["x"], "tools[0]"),
    ([{"type": "namespace", "name": "n", "tools": [{"type": "web_search"}]}], "tools[0].tools[0].type"),
    ([{"type": "namespace", "tools": []}], "tools[0].name"),
    ([{"type": "custom"}], "tools[0].name"),
    ([{"name": "a"}], "tools[0].type"),
    ([{"type": "function"}], "tools[0].name"),
    ([{"type": "function", "name": "a", "parameters": "x"}], "tools[0].parameters"),
    ([{"type": "function", "name": "a", "strict": "yes"}], "tools[0].strict"),
])
def test_bad_tools(tools: Any, param: str) -> None:
    assert invalid({"input": "x", "tools": tools}).param == param


def test_tool_choice() -> None:
    tools = [{"type": "function", "name": n} for n in ("a", "b", "c")]
    assert parse(input="x", tool_choice="required").tool_choice == ToolChoice("required")
    assert parse(input="x", tool_choice={"type": "function", "name": "b"}).tool_choice == ToolChoice("tool", "b")
    allowed = parse(input="x", tools=tools, tool_choice={
        "type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "c"}]})
    assert allowed.tool_choice == ToolChoice("required")
    assert [t.name for t in allowed.tools] == ["c"]
    assert invalid({"input": "x", "tool_choice": "sometimes"}).param == "tool_choice"
    assert invalid({"input": "x", "tool_choice": {"type": "function"}}).param == "tool_choice.name"
    # a hosted tool's choice: the model may use it, as with "auto" (never a 400 on an optional field)
    assert parse(input="x", tool_choice={"type": "web_search"}).tool_choice == ToolChoice("auto")
    assert response_wire.tool_choice_to_wire(ToolChoice("tool", "b")) == {"type": "function", "name": "b"}
    assert response_wire.tool_choice_to_wire(None) == "auto"


def test_parameters_under_canonical_names() -> None:
    request = parse(input="x", max_output_tokens=50, temperature=0.3, top_p=0.5, reasoning={"effort": "high"},
                    tools=[{"type": "function", "name": "a"}], parallel_tool_calls=False,
                    text={"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"},
                                     "strict": True}, "verbosity": "low"})
    assert request.parameters == {
        "max_tokens": 50, "temperature": 0.3, "top_p": 0.5, "reasoning_effort": "high",
        "parallel_tool_calls": False,
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True}},
    }
    assert request.max_output_tokens == 50
    assert parse(input="x", text={"format": {"type": "json_object"}}).parameters == {
        "response_format": {"type": "json_object"}}
    assert parse(input="x", text={"format": {"type": "text"}}).parameters == {}
    assert "parallel_tool_calls" not in parse(input="x", parallel_tool_calls=True).parameters, "only with tools"


@pytest.mark.parametrize(("extra", "param"), [
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"max_output_tokens": True}, "max_output_tokens"),
    ({"temperature": 3}, "temperature"),
    ({"top_p": "1"}, "top_p"),
    ({"reasoning": "high"}, "reasoning"),
    ({"reasoning": {"effort": 2}}, "reasoning.effort"),
    ({"text": "json"}, "text"),
    ({"text": {"format": {"type": "xml"}}}, "text.format.type"),
    ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
    ({"text": {"format": {"type": "json_schema", "name": "n"}}}, "text.format.schema"),
    ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
])
def test_bad_parameters(extra: dict[str, Any], param: str) -> None:
    assert invalid({"input": "x", **extra}).param == param


def test_everything_without_canonical_meaning_is_carried() -> None:
    body = {"input": "x", "stream": True, "store": False, "metadata": {"k": "v"}, "truncation": "auto",
            "user": "u1", "include": ["reasoning.encrypted_content"], "previous_response_id": "resp_1",
            "service_tier": "flex", "text": {"verbosity": "low"}, "custom_vendor_flag": 1}
    request = parse(**body)
    carried = dict(common.carried(request))
    assert carried == {k: v for k, v in body.items() if k not in ("input", "stream")}
    assert request.stream is True
    assert common.wants_store(request) is False
    assert common.wants_store(parse(input="x")) is True
    assert request.parameters == {}, "carried keys are not sent upstream as parameters"
