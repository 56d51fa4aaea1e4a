"""Splicing a continued stream: what was sent, prefills, and matching a restarted answer against it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from lip.core.errors import ProxyError
from lip.core.model import (
    ChatRequest,
    Finish,
    Message,
    ProviderState,
    ReasoningDelta,
    RedactedReasoningPart,
    ResponseStart,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from lip.routing.continuation import (
    PREFILL,
    RESTART,
    Attempt,
    Diverged,
    Handover,
    Matcher,
    PrefillJoin,
    Transcript,
    continuing,
    prefill_request,
)

START = ResponseStart("r1", "m", 0)


def sent(*events: StreamEvent) -> Transcript:
    transcript = Transcript()
    for event in events:
        transcript.add(event)
    return transcript


def test_a_prefill_carries_the_text_without_its_trailing_blank() -> None:
    request = ChatRequest("m", (Message("user", "hi"),), stream=True)
    continued = prefill_request(request, sent(START, TextDelta("The quick "), TextDelta("brown ")))
    assert continued is not None
    assert continued.messages[-1] == Message("assistant", "The quick brown")
    assert prefill_request(request, sent(START)) is None, "nothing to continue from"
    calling = sent(TextDelta("Let me look. "), ToolCallDelta(0, '{"ci', "call_1", "get"))
    assert prefill_request(request, calling) is None, "a tool call is never prefilled"


def test_the_join_drops_the_blank_the_prefill_left_out_and_catches_a_restart() -> None:
    join = PrefillJoin(sent(TextDelta("The quick ")))
    assert join.feed(TextDelta(" brown fox")) == [TextDelta("brown fox")]
    assert join.feed(Finish("stop")) == [Finish("stop")]
    again = PrefillJoin(sent(TextDelta("The quick brown")))
    assert again.feed(TextDelta("The qu")) == [], "held: it may be the answer again"
    assert again.feed(TextDelta("ick brown fox")) == [TextDelta(" fox")], "it was: only what is new"
    real = PrefillJoin(sent(TextDelta("The quick brown")))
    assert real.feed(TextDelta("T")) == []
    assert real.feed(TextDelta("hen")) == [TextDelta("Then")], "a true continuation that began like it"


def test_a_matching_restart_passes_on_only_what_is_new() -> None:
    matcher = Matcher(sent(START, TextDelta("Hello "), TextDelta("wor")))
    out = [matcher.feed(e) for e in (TextDelta("Hel"), TextDelta("lo w"), TextDelta("orld!"), Finish("stop"))]
    assert out == [None, None, TextDelta("ld!"), Finish("stop")]


def test_a_restart_that_differs_or_stops_short_diverges() -> None:
    with pytest.raises(Diverged):
        Matcher(sent(TextDelta("Hello world"))).feed(TextDelta("Goodbye"))
    short = Matcher(sent(TextDelta("Hello world")))
    assert short.feed(TextDelta("Hello")) is None
    with pytest.raises(Diverged):
        short.feed(Finish("stop"))


def test_a_cut_tool_call_is_completed_only_by_the_same_call() -> None:
    transcript = sent(START, ReasoningDelta("think"), TextDelta("Looking. "), ToolCallDelta(0, "", "call_a", "get"),
                      ToolCallDelta(0, '{"city": "Pa'))
    matcher = Matcher(transcript)
    restart = [ReasoningDelta("think"), ReasoningDelta("", ProviderState("anthropic", "sig")), TextDelta("Looking. "),
               ToolCallDelta(0, "", "call_b", "get"), ToolCallDelta(0, '{"city": "Paris"}'), Finish("tool_calls")]
    out = [matcher.feed(e) for e in restart]
    assert out == [None, None, None, None, ToolCallDelta(0, 'ris"}'), Finish("tool_calls")]
    other = Matcher(transcript)
    for event in restart[:3]:
        other.feed(event)
    with pytest.raises(Diverged):
        other.feed(ToolCallDelta(0, "", "call_b", "put"))


async def _events(*events: StreamEvent, error: ProxyError | None = None) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event
    if error is not None:
        raise error


def test_continuing_splices_one_answer_with_one_summed_usage() -> None:
    cut = ProxyError("backend 'a' closed the stream", status=502, code="upstream_incomplete")
    first = Attempt("a:m", "a", "m", "m", _events(START, TextDelta("The quick "), error=cut), input_tokens=10)
    second = Attempt("b:m", "b", "m", "m", _events(ResponseStart("r2", "m", 0), TextDelta(" brown fox"),
                                                  Finish("stop"), UsageReport(Usage(14, 3))),
                     input_tokens=None, mode=PREFILL, position=1)
    asked: list[str] = []

    async def reopen(attempt: Attempt, transcript: Transcript, error: ProxyError) -> Attempt | None:
        asked.append(f"{attempt.label}:{transcript.text}:{error.code}")
        return second

    handovers: list[Handover] = []

    async def run() -> list[StreamEvent]:
        return [e async for e in continuing(first, reopen, 2, handovers)]

    events = asyncio.run(run())
    assert events == [START, TextDelta("The quick "), TextDelta("brown fox"), Finish("stop"),
                      UsageReport(Usage(24, 6, estimated=True))]
    assert asked == ["a:m:The quick :upstream_incomplete"]
    (handover,) = handovers
    assert (handover.label, handover.at, handover.to_label, handover.mode) == ("a:m", 10, "b:m", PREFILL)
    assert handover.usage == Usage(10, 3, estimated=True), "the failed attempt's share, estimated"


def test_continuing_gives_up_with_the_original_error_past_its_limit() -> None:
    cut = ProxyError("backend 'a' closed the stream", status=502, code="upstream_incomplete")

    async def reopen(attempt: Attempt, transcript: Transcript, error: ProxyError) -> Attempt | None:
        return Attempt("a:m", "a", "m", "m", _events(TextDelta("x"), error=cut), None, mode=RESTART)

    async def run() -> list[StreamEvent]:
        first = Attempt("a:m", "a", "m", "m", _events(START, TextDelta("x"), error=cut), None)
        return [e async for e in continuing(first, reopen, 1, [])]

    with pytest.raises(ProxyError) as raised:
        asyncio.run(run())
    assert raised.value is cut


def test_redacted_reasoning_was_sent_as_reasoning_like_a_lone_signature() -> None:
    request = ChatRequest("m", (Message("user", "hi"),), stream=True)
    hidden = RedactedReasoningPart("anthropic", "opaque")
    transcript = sent(START, hidden, TextDelta("Hello"))
    assert [(s.kind, s.signed) for s in transcript.segments] == [("reasoning", True), ("text", False)]
    assert prefill_request(request, transcript) is None, "more than text was sent"
    matcher = Matcher(transcript)
    out = [matcher.feed(e) for e in (hidden, TextDelta("Hello"), TextDelta(" you"))]
    assert out == [None, None, TextDelta(" you")]
