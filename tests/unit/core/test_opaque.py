"""lip.core.opaque and serial: a provider's state of a tool call in the ids of clients of other protocols,
and in the canonical JSON of stores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from lip.access.redact import KeyRedactor
from lip.core.model import (
    ChatRequest,
    Collector,
    Message,
    ProviderState,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
)
from lip.core.opaque import fold_id, for_client, unfold_id
from lip.core.serial import messages_from_json, messages_to_json

STATE = ProviderState("gemini", "ab+/cd==")


def test_fold_and_unfold() -> None:
    folded = fold_id("call_1", STATE)
    assert folded == "call_1__thought__ab-_cd", "id-safe characters only, as every protocol's ids accept"
    assert unfold_id(folded) == ("call_1", "ab+/cd==")
    assert fold_id("call_1", None) == "call_1"
    assert fold_id("call_1", ProviderState("gemini", "")) == "call_1"


def test_ids_that_fold_id_did_not_make_are_left_alone() -> None:
    assert unfold_id("call_plain") == ("call_plain", None)
    assert unfold_id("call__thought__") == ("call__thought__", None)
    assert unfold_id("call__thought__a") == ("call__thought__a", None), "not base64: not a state"


def _run(events: list[StreamEvent], protocol: str) -> list[StreamEvent]:
    async def source() -> AsyncIterator[StreamEvent]:
        for event in events:
            yield event

    async def collect() -> list[StreamEvent]:
        return [event async for event in for_client(source(), protocol)]

    return asyncio.run(collect())


def test_for_client_folds_another_protocols_state_into_the_id() -> None:
    events: list[StreamEvent] = [TextDelta("x"), ToolCallDelta(0, "{}", "call_1", "f", STATE),
                                 ToolCallDelta(0, "1"), ToolCallDelta(1, "{}", "call_2", "g")]
    assert _run(events, "openai") == [TextDelta("x"), ToolCallDelta(0, "{}", "call_1__thought__ab-_cd", "f"),
                                      ToolCallDelta(0, "1"), ToolCallDelta(1, "{}", "call_2", "g")]
    assert _run(events, "gemini") == events, "the state's own protocol renders it where it belongs"


def test_the_collector_keeps_a_calls_state() -> None:
    collector = Collector()
    for event in (ToolCallDelta(0, '{"a":', "call_1", "f", STATE), ToolCallDelta(0, "1}"),
                  ToolCallDelta(1, "{}", "call_2", "g")):
        collector.add(event)
    assert collector.result().tool_calls == [ToolCall("call_1", "f", '{"a":1}', STATE), ToolCall("call_2", "g", "{}")]


def test_serial_round_trips_a_calls_state() -> None:
    messages = (Message("user", "x"),
                Message("assistant", None, tool_calls=(ToolCall("call_1", "f", "{}", STATE), ToolCall("c2", "g", ""))),
                Message("tool", "1", tool_call_id="call_1"))
    assert messages_from_json(messages_to_json(messages)) == messages


def test_serial_reads_calls_written_before_they_had_a_state() -> None:
    raw = b'[{"role":"assistant","content":null,"tool_calls":[["call_1__thought__ab-_cd","f","{}"]]}]'
    (message,) = messages_from_json(raw)
    assert message.tool_calls == (ToolCall("call_1__thought__ab-_cd", "f", "{}"),), \
        "as written: the client echoes that id, and the provider's protocol unfolds it"


def test_redaction_keeps_a_calls_state() -> None:
    call = ToolCall("call_1", "f", '{"key": "sk-secret-123456"}', STATE)
    request = ChatRequest(model="m", messages=(Message("assistant", None, tool_calls=(call,)),))
    (cleaned,) = KeyRedactor(["sk-secret-123456"]).request(request).messages[0].tool_calls
    assert "sk-secret-123456" not in cleaned.arguments
    assert cleaned.signature == STATE
