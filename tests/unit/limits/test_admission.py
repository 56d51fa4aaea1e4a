"""lip.limits.admission: how a request is counted, the input/output/context-window checks, the output
clamp (and its reject policy), and the operator's token_count_margin."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest

from lip.config.schema import Limits
from lip.core.errors import LimitExceeded
from lip.core.model import ChatRequest, ImagePart, Message, TextPart, Tool, ToolCall
from lip.limits.admission import (
    IMAGE_HIGH,
    IMAGE_LOW,
    LOWERED_HEADER,
    PER_TOOL,
    TOOLS_ONCE,
    Admission,
    Admitter,
    Counting,
    Lowered,
    percent,
)
from lip.limits.tokens import TokenCounter
from lip.limits.upstream import UpstreamTokens
from shared_data import shared_encoding, shared_encodings

MODEL = "test-model"
TEXT = "Hello there! Could you summarise the plot of Hamlet in three sentences, please?"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}, "unit": {"enum": ["c", "f"]}},
    "required": ["city"],
}


def tok(text: str, encoding: str = "o200k_base") -> int:
    return len(shared_encodings()[encoding].encode_ordinary(text))


def admitter() -> Admitter:
    return Admitter(TokenCounter(shared_encoding))


def request(*messages: Message, tools: tuple[Tool, ...] = (), **parameters: Any) -> ChatRequest:
    return ChatRequest(model=MODEL, messages=messages or (Message("user", TEXT),), tools=tools,
                       parameters=parameters)


def count(req: ChatRequest, tokenizer: str = "o200k_base") -> int:
    return asyncio.run(admitter().count(req, tokenizer))


def counting(tokenizer: str = "o200k_base", *, policy: str = "clamp", margin: float = 0.0) -> Counting:
    return Counting(f"b:{MODEL}", tokenizer, tokenizer, margin, policy)


def admit(req: ChatRequest, limits: Limits, tokenizer: str = "o200k_base", *, need_count: bool = False,
          policy: str = "clamp", margin: float = 0.0) -> Admission:
    chosen = counting(tokenizer, policy=policy, margin=margin)
    return asyncio.run(admitter().admit(req, MODEL, limits, chosen, need_count=need_count))


def refused(req: ChatRequest, limits: Limits, tokenizer: str = "o200k_base", *,
            need_count: bool = False, policy: str = "clamp", margin: float = 0.0) -> LimitExceeded:
    with pytest.raises(LimitExceeded) as info:
        admit(req, limits, tokenizer, need_count=need_count, policy=policy, margin=margin)
    error = info.value
    assert error.status == 400
    return error


def one_message_tokens(text: str = TEXT, encoding: str = "o200k_base") -> int:
    return 3 + tok("user", encoding) + tok(text, encoding) + 3


# ---- counting --------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
def test_one_user_message(encoding: str) -> None:
    assert count(request(), encoding) == one_message_tokens(encoding=encoding)


def test_several_messages_each_cost_three_plus_role() -> None:
    req = request(Message("system", "You are terse."), Message("user", TEXT), Message("assistant", "Sure."))
    expected = (3 + tok("system") + tok("You are terse.")) + (3 + tok("user") + tok(TEXT)) + (
        3 + tok("assistant") + tok("Sure.")) + 3
    assert count(req) == expected


def test_a_name_adds_one_plus_its_tokens() -> None:
    req = request(Message("user", TEXT, name="alice_smith"))
    assert count(req) == one_message_tokens() + 1 + tok("alice_smith")


def test_text_parts_are_counted_each() -> None:
    req = request(Message("user", (TextPart("First part."), TextPart("Second part, longer."))))
    assert count(req) == 3 + tok("user") + tok("First part.") + tok("Second part, longer.") + 3


def test_tool_definitions() -> None:
    weather = Tool("get_weather", "Get the current weather for a city.", WEATHER_SCHEMA)
    clock = Tool("get_time")  # no description, no schema
    req = request(tools=(weather, clock))
    schema_json = json.dumps(WEATHER_SCHEMA, separators=(",", ":"), ensure_ascii=False)
    expected = (
        one_message_tokens()
        + TOOLS_ONCE
        + 2 * PER_TOOL
        + tok("get_weather") + tok("Get the current weather for a city.") + tok(schema_json)
        + tok("get_time")
    )
    assert (TOOLS_ONCE, PER_TOOL) == (12, 8)
    assert count(req) == expected


def test_tool_calls_add_name_arguments_and_three() -> None:
    arguments = '{"city": "Paris", "unit": "c"}'
    call = Message("assistant", None, tool_calls=(ToolCall("call_1", "get_weather", arguments),))
    req = request(Message("user", TEXT), call)
    expected = one_message_tokens() + 3 + tok("assistant") + tok("get_weather") + tok(arguments) + 3
    assert count(req) == expected


def test_two_tool_calls() -> None:
    calls = (ToolCall("a", "f", '{"x":1}'), ToolCall("b", "g", '{"y":2}'))
    req = request(Message("assistant", "Calling.", tool_calls=calls))
    expected = 3 + tok("assistant") + tok("Calling.") + (tok("f") + tok('{"x":1}') + 3) + (
        tok("g") + tok('{"y":2}') + 3) + 3
    assert count(req) == expected


@pytest.mark.parametrize(("detail", "image_tokens"), [("low", 85), ("high", 765), (None, 765), ("auto", 765)])
def test_images(detail: str | None, image_tokens: int) -> None:
    assert (IMAGE_LOW, IMAGE_HIGH) == (85, 765)
    req = request(Message("user", (TextPart("What is this?"), ImagePart("https://example.com/a.png", detail))))
    assert count(req) == 3 + tok("user") + tok("What is this?") + image_tokens + 3


def test_image_url_is_not_counted_as_text() -> None:
    data_url = "data:image/png;base64," + "iVBORw0KGgo" * 10_000
    short = request(Message("user", (ImagePart("https://example.com/a.png", "low"),)))
    long = request(Message("user", (ImagePart(data_url, "low"),)))
    assert count(short) == count(long) == 3 + tok("user") + 85 + 3


def test_the_count_is_the_tokenizers_and_no_multiple() -> None:
    req = request(Message("user", TEXT, name="bob"))
    raw = tok("user") + tok(TEXT) + tok("bob")
    assert count(req) == raw + 3 + 1 + 3


def test_tekken_counts_with_mistrals_tokenizer() -> None:
    req = request(Message("user", TEXT * 3))
    tekken = shared_encoding("mistral_tekken")
    expected = 3 + len(tekken.encode_ordinary("user")) + len(tekken.encode_ordinary(TEXT * 3)) + 3
    assert count(req, "mistral_tekken") == expected


def test_resent_history_is_counted_from_the_memo() -> None:
    a = admitter()
    history = tuple(Message("user" if i % 2 == 0 else "assistant", f"Turn {i}: " + TEXT * 3) for i in range(20))
    first = asyncio.run(a.count(request(*history), "o200k_base"))
    assert all(a.counter.lookup(m.content, "o200k_base") is not None for m in history)  # type: ignore[arg-type]
    a.counter.store(history[0].content, "o200k_base", 10_000)  # type: ignore[arg-type]
    second = asyncio.run(a.count(request(*history), "o200k_base"))
    assert second == first - tok(history[0].content) + 10_000  # type: ignore[arg-type]


def test_large_text_is_counted_exactly() -> None:
    big = "All work and no play makes Jack a dull boy. " * 2_000  # above the worker-thread threshold
    assert len(big) > 32_000
    assert count(request(Message("user", big))) == one_message_tokens(big)


# ---- output limit ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens"])
def test_output_limit_exceeded_with_the_reject_policy(key: str) -> None:
    error = refused(request(**{key: 4_097}), Limits(max_output_tokens=4_096), policy="reject")
    assert error.code == "output_limit_exceeded"
    assert error.message == "Output token limit exceeded"
    assert error.details == {"model": MODEL, "limit": 4_096, "measured": 4_097}
    assert error.param == "max_tokens"


def test_output_at_the_limit_is_admitted() -> None:
    admission = admit(request(max_tokens=4_096), Limits(max_output_tokens=4_096))
    assert admission.output_cap == 4_096
    assert admission.request.parameters == {"max_tokens": 4_096}


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    error = refused(request(max_tokens=10, max_completion_tokens=500), Limits(max_output_tokens=100), policy="reject")
    assert error.details == {"model": MODEL, "limit": 100, "measured": 500}


def test_null_max_completion_tokens_does_not_hide_max_tokens() -> None:
    error = refused(request(max_completion_tokens=None, max_tokens=50_000), Limits(max_output_tokens=4_096),
                    policy="reject")
    assert error.code == "output_limit_exceeded"


@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens"])
def test_output_over_the_limit_is_lowered_by_default(key: str) -> None:
    admission = admit(request(**{key: 128_000}), Limits(max_output_tokens=16_384))
    assert admission.output_cap == 16_384
    assert admission.request.parameters == {key: 16_384}
    assert admission.lowered == Lowered(128_000, 16_384, "max_output_tokens")
    assert admission.headers() == {LOWERED_HEADER: "128000->16384 (max_output_tokens)"}
    assert admission.input_tokens is None, "the size alone proved the input fits"


def test_both_output_keys_over_the_limit_are_lowered() -> None:
    admission = admit(request(max_tokens=90_000, max_completion_tokens=128_000), Limits(max_output_tokens=16_384))
    assert admission.request.parameters == {"max_tokens": 16_384, "max_completion_tokens": 16_384}
    assert admission.lowered == Lowered(128_000, 16_384, "max_output_tokens")


def test_an_output_within_the_limit_is_not_lowered() -> None:
    admission = admit(request(max_tokens=100), Limits(max_output_tokens=16_384))
    assert admission.lowered is None
    assert admission.headers() == {}


def test_null_max_tokens_still_gets_the_output_cap() -> None:
    admission = admit(request(max_tokens=None), Limits(max_output_tokens=4_096))
    assert admission.request.parameters["max_tokens"] == 4_096


# ---- input limit -----------------------------------------------------------------------------------


@pytest.mark.parametrize("tokenizer", ["o200k_base", "cl100k_base", "mistral_tekken"])
def test_input_limit_exceeded_reports_the_exact_count(tokenizer: str) -> None:
    req = request(Message("system", "Be helpful."), Message("user", TEXT))
    measured = count(req, tokenizer)
    error = refused(req, Limits(max_input_tokens=measured - 1), tokenizer)
    assert error.code == "input_limit_exceeded"
    assert error.message == "Input token limit exceeded"
    assert error.param == "messages"
    assert error.details == {"model": MODEL, "limit": measured - 1, "measured": measured}


def test_input_exactly_at_the_limit_is_admitted() -> None:
    measured = count(request())
    admission = admit(request(), Limits(max_input_tokens=measured))
    assert admission.input_tokens == measured


def test_input_far_past_the_limit_stops_counting_early() -> None:
    filler = "word " * 120_000  # 600k characters a message
    req = request(Message("user", "start " * 50), Message("user", filler), Message("user", filler))
    error = refused(req, Limits(max_input_tokens=10))
    assert error.code == "input_limit_exceeded"
    measured = error.details["measured"]  # type: ignore[index]
    assert 10 < measured < 100_000  # the whole request is well over 200k tokens


# ---- context window --------------------------------------------------------------------------------


def test_context_window_exceeded_counts_input_plus_requested_output_with_reject() -> None:
    measured = count(request())
    error = refused(request(max_tokens=100), Limits(context_window=measured + 99), policy="reject")
    assert error.code == "context_window_exceeded"
    assert error.message == "Context window exceeded"
    assert error.param == "messages"
    assert error.details == {"model": MODEL, "limit": measured + 99, "measured": measured + 100}


def test_input_plus_output_exactly_filling_the_window_is_admitted() -> None:
    measured = count(request())
    admission = admit(request(max_tokens=100), Limits(context_window=measured + 100))
    assert admission.output_cap == 100
    assert admission.request.parameters == {"max_tokens": 100}


def test_output_past_the_window_is_lowered_to_what_fits_by_default() -> None:
    measured = count(request())
    admission = admit(request(max_tokens=100), Limits(context_window=measured + 99))
    assert admission.input_tokens == measured
    assert admission.output_cap == 99
    assert admission.request.parameters == {"max_tokens": 99}
    assert admission.lowered == Lowered(100, 99, "context_window")


def test_output_lowered_by_both_limits_names_the_window() -> None:
    req = request(Message("user", TEXT * 20))
    measured = count(req)
    limits = Limits(context_window=measured + 500, max_output_tokens=800)
    asked = admit(req.with_parameters({"max_tokens": 64_000}), limits)
    assert asked.lowered == Lowered(64_000, 500, "context_window")
    assert asked.request.parameters == {"max_tokens": 500}
    unasked = admit(req, limits)
    assert unasked.lowered is None, "the client set no limit: nothing was lowered"
    assert unasked.output_cap == 500
    assert unasked.request.parameters == {"max_tokens": 500}


@pytest.mark.parametrize("policy", ["clamp", "reject"])
def test_input_filling_the_whole_window_is_refused(policy: str) -> None:
    measured = count(request())
    error = refused(request(), Limits(context_window=measured), policy=policy)
    assert error.code == "context_window_exceeded"
    error = refused(request(max_tokens=10), Limits(context_window=measured), policy=policy)
    assert error.code == "context_window_exceeded"


def test_input_leaving_one_token_is_admitted_with_one() -> None:
    measured = count(request())
    admission = admit(request(max_tokens=10), Limits(context_window=measured + 1))
    assert admission.output_cap == 1
    assert admission.lowered == Lowered(10, 1, "context_window")


def test_requested_output_larger_than_the_window_with_reject() -> None:
    error = refused(request(max_tokens=5_000), Limits(context_window=1_000), policy="reject")
    assert error.code == "context_window_exceeded"
    assert error.details["measured"] == count(request()) + 5_000  # type: ignore[index]


def test_requested_output_larger_than_the_window_is_lowered() -> None:
    admission = admit(request(max_tokens=5_000), Limits(context_window=1_000))
    assert admission.output_cap == 1_000 - count(request())


def test_input_limit_is_checked_before_the_window() -> None:
    measured = count(request())
    error = refused(request(max_tokens=10_000), Limits(context_window=10_000, max_input_tokens=measured - 1))
    assert error.code == "input_limit_exceeded"


# ---- the size shortcut -----------------------------------------------------------------------------


def test_size_alone_proves_fit_and_nothing_is_counted() -> None:
    admission = admit(request(max_tokens=100), Limits(context_window=100_000, max_input_tokens=50_000))
    assert admission.input_tokens is None
    assert admission.output_cap == 100


def test_need_count_forces_the_exact_count() -> None:
    admission = admit(request(max_tokens=100), Limits(context_window=100_000, max_input_tokens=50_000),
                      need_count=True)
    assert admission.input_tokens == count(request())


def test_need_count_without_any_limit() -> None:
    admission = admit(request(), Limits(), need_count=True)
    assert admission.input_tokens == count(request())
    assert admission.output_cap is None
    assert "max_tokens" not in admission.request.parameters


def test_size_does_not_prove_fit_so_it_counts() -> None:
    measured = count(request())
    limit = measured + 5  # the text alone is several times more bytes than this
    assert len(TEXT.encode()) > limit
    admission = admit(request(), Limits(max_input_tokens=limit))
    assert admission.input_tokens == measured


def test_multibyte_text_near_the_limit_is_counted() -> None:
    text = "日本語のテキストです。" * 10
    req = request(Message("user", text))
    measured = count(req)
    admission = admit(req, Limits(max_input_tokens=measured))
    assert admission.input_tokens == measured
    error = refused(req, Limits(max_input_tokens=measured - 1))
    assert error.details["measured"] == measured  # type: ignore[index]


def test_no_limits_and_no_count() -> None:
    req = request()
    admission = admit(req, Limits())
    assert admission == Admission(req, None, None)


# ---- the output cap --------------------------------------------------------------------------------


def test_output_cap_is_the_models_max_output_when_the_client_set_none() -> None:
    admission = admit(request(temperature=0.2), Limits(max_output_tokens=4_096))
    assert admission.output_cap == 4_096
    assert admission.request.parameters == {"temperature": 0.2, "max_tokens": 4_096}


def test_output_cap_with_a_roomy_window_is_the_models_max_output() -> None:
    admission = admit(request(), Limits(context_window=128_000, max_output_tokens=4_096))
    assert admission.output_cap == 4_096
    assert admission.request.parameters["max_tokens"] == 4_096


def test_output_cap_is_what_the_window_leaves_when_smaller() -> None:
    req = request(Message("user", TEXT * 20))
    measured = count(req)
    admission = admit(req, Limits(context_window=measured + 50, max_output_tokens=100))
    assert admission.input_tokens == measured
    assert admission.output_cap == 50
    assert admission.request.parameters["max_tokens"] == 50


def test_output_cap_is_what_the_window_leaves_without_a_max_output() -> None:
    measured = count(request())
    admission = admit(request(), Limits(context_window=8_192))
    assert admission.input_tokens == measured
    assert admission.output_cap == 8_192 - measured
    assert admission.request.parameters["max_tokens"] == 8_192 - measured


def test_clients_max_completion_tokens_is_respected() -> None:
    admission = admit(request(max_completion_tokens=50), Limits(context_window=8_192, max_output_tokens=100))
    assert admission.output_cap == 50
    assert admission.request.parameters == {"max_completion_tokens": 50}


def test_clients_max_tokens_is_respected() -> None:
    admission = admit(request(max_tokens=70), Limits(context_window=8_192, max_output_tokens=100))
    assert admission.output_cap == 70
    assert admission.request.parameters == {"max_tokens": 70}


def test_the_original_request_is_not_changed() -> None:
    req = request()
    admission = admit(req, Limits(max_output_tokens=256))
    assert admission.request is not req
    assert "max_tokens" not in req.parameters


# ---- the operator's margin ----------------------------------------------------------------------


def test_a_7000_token_prompt_passes_an_8000_input_limit() -> None:
    """No hidden multiple: the issue's example, counted with the default tokenizer of an unknown family."""
    text = "The quick brown fox jumps over the lazy dog. " * 700
    req = request(Message("user", text))
    measured = count(req)
    assert 6_900 < measured < 7_100
    admission = admit(req, Limits(max_input_tokens=8_000), need_count=True)
    assert admission.input_tokens == measured


def test_a_margin_refuses_what_the_count_alone_admits_and_reports_the_count() -> None:
    measured = count(request())
    limit = measured + 2  # a 20% margin adds more than 2 tokens here
    assert admit(request(), Limits(max_input_tokens=limit)).input_tokens == measured
    error = refused(request(), Limits(max_input_tokens=limit), margin=0.2)
    assert error.details == {"model": MODEL, "limit": limit, "measured": measured}
    padded = math.ceil(measured * 1.2)
    assert error.message == (f"Input token limit exceeded ({measured} input tokens counted, {padded} with the "
                             "20% token_count_margin)")


def test_a_margin_leaves_less_room_for_output() -> None:
    measured = count(request())
    admission = admit(request(), Limits(context_window=1_000), margin=0.5)
    assert admission.input_tokens == measured
    assert admission.output_cap == 1_000 - math.ceil(measured * 1.5)


def test_without_a_margin_the_message_is_the_guides() -> None:
    error = refused(request(), Limits(max_input_tokens=5))
    assert error.message == "Input token limit exceeded"


@pytest.mark.parametrize("tokenizer", ["o200k_base", "cl100k_base"])
def test_openai_tokenizers_are_exact(tokenizer: str) -> None:
    admission = admit(request(), Limits(max_input_tokens=100_000), tokenizer, need_count=True)
    assert admission.input_tokens == one_message_tokens(encoding=tokenizer)


# ---- the backend's count (tokenizer: upstream) ----------------------------------------------------


def upstream_counting(calls: list[ChatRequest], answer: tuple[int, bool] | Exception) -> Counting:
    async def call(req: ChatRequest) -> UpstreamTokens:
        calls.append(req)
        if isinstance(answer, Exception):
            raise answer
        return UpstreamTokens(*answer)

    return Counting(f"b:{MODEL}", "upstream", "o200k_base", 0.0, "clamp", call)


def test_the_backends_count_is_memoised_per_content() -> None:
    a, calls = admitter(), []
    chosen = upstream_counting(calls, (500, True))
    image = request(Message("user", (TextPart("What is this?"), ImagePart("https://example.com/a.png"))))
    other = request(Message("user", (TextPart("What is this?"), ImagePart("https://example.com/b.png"))))

    async def run() -> list[int]:
        return [await a.measure(r, chosen) for r in (image, image, other, request(), request())]

    assert asyncio.run(run()) == [500] * 5
    assert [c.messages for c in calls] == [image.messages, other.messages, request().messages], \
        "a different image is different content"


def test_a_count_of_the_text_alone_gets_the_framing() -> None:
    calls: list[ChatRequest] = []
    assert asyncio.run(admitter().measure(request(), upstream_counting(calls, (40, False)))) == 40 + 3 + 3


def test_a_failing_backend_falls_back_to_the_local_count() -> None:
    calls: list[ChatRequest] = []
    chosen = upstream_counting(calls, LimitExceeded("down", code="x"))
    assert asyncio.run(admitter().measure(request(), chosen)) == count(request())
    assert len(calls) == 1


def test_margins_read_as_percentages() -> None:
    assert [percent(m) for m in (0.1, 0.125, 0.05, 0.3333)] == ["10%", "12.5%", "5%", "33.33%"]


def test_a_rate_limit_alone_counts_locally_and_limits_ask_the_backend() -> None:
    calls: list[ChatRequest] = []
    a = admitter()
    chosen = upstream_counting(calls, (9_999, True))
    roomy = Limits(context_window=100_000, max_input_tokens=50_000, tokens_per_minute=10**6)
    admission = asyncio.run(a.admit(request(max_tokens=100), MODEL, roomy, chosen, need_count=True))
    assert admission.input_tokens == count(request()), "the size proved the fit: the rate limit's count is local"
    assert calls == []
    tight = Limits(max_input_tokens=count(request()) + 5)
    with pytest.raises(LimitExceeded) as raised:
        asyncio.run(a.admit(request(max_tokens=100), MODEL, tight, chosen, need_count=False))
    assert raised.value.details["measured"] == 9_999  # type: ignore[index]
    assert len(calls) == 1
