"""Reasoning signatures with their protocol (ProviderState): folded for a client of another protocol and read
back exactly (lip.core.opaque), redacted reasoning as such a signature (lip.core.redacted), and in the
canonical JSON of stores, including records written before signatures had a protocol (lip.core.serial)."""

from __future__ import annotations

import base64

import orjson
import pytest

from lip.core.model import Collector, Message, ProviderState, ReasoningDelta, ReasoningPart, RedactedReasoningPart
from lip.core.opaque import fold_signature, read_reasoning, read_signature, signature_text, unfold_signature
from lip.core.redacted import fold
from lip.core.serial import messages_from_json, messages_to_json

SIGNATURES = [
    ProviderState("anthropic", "EqQBCgIYAhIM+/0="),
    ProviderState("gemini", "c2lnbmF0dXJl+/=="),
    ProviderState("openai-responses", "gAAAAABo-enc_rypted=="),
    ProviderState("anthropic", "redacted_thinking:EmwKAhgBEgy3va3pzix/LafPsn4a"),
    ProviderState("gemini", "not base64: a:b:c ü"),
]


@pytest.mark.parametrize("state", SIGNATURES)
def test_a_folded_signature_names_its_protocol_and_reads_back_exactly(state: ProviderState) -> None:
    folded = fold_signature(state)
    assert folded.startswith("lipSignature")
    assert unfold_signature(folded) == state
    assert read_signature(folded, "openai-responses") == state, "whichever client gives it back"


@pytest.mark.parametrize("state", SIGNATURES)
def test_a_folded_signature_is_base64_and_survives_a_base64url_round_trip(state: ProviderState) -> None:
    """What a thoughtSignature must be: Google's SDK reads it as bytes and may write them back base64url."""
    folded = fold_signature(state)
    raw = base64.b64decode(folded, validate=True)
    assert base64.b64encode(raw).decode() == folded
    assert unfold_signature(base64.urlsafe_b64encode(raw).decode()) == state
    assert unfold_signature(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == state


@pytest.mark.parametrize("text", ["EqQBCgIYAhIM", "lipSignature", "lipSignature!!", "lipSignatureYWJj",
                                  "lipSignature" + base64.b64encode(b":data").decode(),
                                  "lipSignature" + base64.b64encode(b"\xff\xfe").decode()])
def test_other_text_is_not_a_folded_signature(text: str) -> None:
    assert unfold_signature(text) is None
    assert read_signature(text, "gemini") == ProviderState("gemini", text), "a plain one: the client's own"


def test_a_client_receives_its_own_protocols_signature_unchanged_and_anothers_folded() -> None:
    state = ProviderState("anthropic", "EqQBCgIYAhIM")
    assert signature_text(state, "anthropic") == "EqQBCgIYAhIM"
    assert signature_text(state, "gemini") == fold_signature(state)


def test_redacted_reasoning_rides_as_a_signature_of_its_protocol_and_reads_back_as_the_part() -> None:
    part = RedactedReasoningPart("anthropic", "EmwKAhgBEgy3va3pzix")
    delta = fold(part)
    assert delta == ReasoningDelta("", ProviderState("anthropic", "redacted_thinking:EmwKAhgBEgy3va3pzix"))
    assert delta.signature is not None
    given = signature_text(delta.signature, "openai-responses")
    assert read_reasoning("", given, "openai-responses") == part
    assert read_reasoning("", "redacted_thinking:EmwKAhgBEgy3va3pzix", "gemini") == part, \
        "the form clients were given before signatures had a protocol: Anthropic's"


def test_reasoning_read_back() -> None:
    assert read_reasoning("hm", None, "gemini") == ReasoningPart("hm")
    assert read_reasoning("hm", "c2ln", "gemini") == ReasoningPart("hm", ProviderState("gemini", "c2ln"))
    anthropic = ProviderState("anthropic", "EqQB")
    assert read_reasoning("hm", fold_signature(anthropic), "gemini") == ReasoningPart("hm", anthropic)


def test_the_collector_keeps_the_signatures_protocol() -> None:
    collector = Collector()
    for event in (ReasoningDelta("think"), ReasoningDelta("", ProviderState("gemini", "c2ln"))):
        collector.add(event)
    assert collector.result().reasoning_signature == ProviderState("gemini", "c2ln")


def _turn(*parts: ReasoningPart | RedactedReasoningPart) -> tuple[Message, ...]:
    return (Message("user", "q"), Message("assistant", parts))


def test_serial_keeps_the_protocol_beside_the_signature() -> None:
    messages = _turn(ReasoningPart("a", ProviderState("gemini", "c2ln")), ReasoningPart("b"),
                     RedactedReasoningPart("anthropic", "opaque"))
    written = orjson.loads(messages_to_json(messages))
    assert written[1]["parts"][:2] == [{"reasoning": "a", "signature": "c2ln", "protocol": "gemini"},
                                       {"reasoning": "b", "signature": None}]
    assert messages_from_json(messages_to_json(messages)) == messages


def test_serial_reads_a_signature_written_without_protocol_as_anthropics() -> None:
    """Before, every signature went back to an Anthropic upstream: the one it most likely came from."""
    older = orjson.dumps([{"role": "user", "content": "q"}, {"role": "assistant", "parts": [
        {"reasoning": "a", "signature": "EqQB"}, {"reasoning": "b", "signature": None},
        {"reasoning": "", "signature": "redacted_thinking:opaque"}]}])
    assert messages_from_json(older) == _turn(ReasoningPart("a", ProviderState("anthropic", "EqQB")),
                                              ReasoningPart("b"), RedactedReasoningPart("anthropic", "opaque"))
