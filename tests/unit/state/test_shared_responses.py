"""lip.state.shared_responses: stored Responses that every worker of a machine reads."""

from __future__ import annotations

from pathlib import Path

from lip.core.model import ImagePart, Message, ProviderState, ReasoningPart, TextPart, ToolCall
from lip.core.serial import messages_from_json, messages_to_json
from lip.state.shared_responses import SqliteResponseStore

CONVERSATION = (
    Message("user", (TextPart("look", {"type": "ephemeral"}), ImagePart("data:image/png;base64,AA==", "low"))),
    Message("assistant", (ReasoningPart("hmm", ProviderState("anthropic", "sig")), TextPart("calling")),
            tool_calls=(ToolCall("c1", "weather", '{"city":"Oslo"}'),)),
    Message("tool", "sunny", tool_call_id="c1", cache_control={"type": "ephemeral"}),
    Message("user", "thanks", name="ann", extensions={"x": 1}),
    Message("assistant", None),
)


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def test_messages_survive_json_exactly() -> None:
    assert messages_from_json(messages_to_json(CONVERSATION)) == CONVERSATION


def test_what_one_process_stores_another_reads_retrieves_and_deletes(tmp_path: Path) -> None:
    first, second = SqliteResponseStore(tmp_path / "r.db"), SqliteResponseStore(tmp_path / "r.db")
    first.put("resp_1", CONVERSATION, b'{"id":"resp_1"}')
    assert second.get("resp_1") == CONVERSATION
    assert second.response("resp_1") == b'{"id":"resp_1"}'
    assert "resp_1" in second and len(second) == 1
    assert second.delete("resp_1") and not first.delete("resp_1")
    assert first.get("resp_1") is None and first.response("resp_1") is None


def test_idle_entries_expire_and_the_least_recently_used_go_first(tmp_path: Path) -> None:
    clock = Clock()
    store = SqliteResponseStore(tmp_path / "r.db", max_responses=2, ttl_seconds=60, clock=clock)
    for n in range(3):
        store.put(f"resp_{n}", CONVERSATION[:1])
        clock.now += 1
    store.get("resp_0")  # used again: now the most recent
    assert len(store) == 2 and "resp_1" not in store and "resp_0" in store
    clock.now += 61
    assert store.get("resp_0") is None and len(store) == 0
