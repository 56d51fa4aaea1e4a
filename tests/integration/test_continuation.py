"""Mid-stream continuation over real sockets: every client surface, every upstream protocol.

A primary stream fails after some text reached the client (cut, stall past stream_idle_timeout,
malformed event, an upstream error event); the proxy continues the same answer on the fallback
(with a prefill where it takes one, else by restarting and passing on only what is new) and the
client receives one complete answer. Asserted: the client's whole text equals the fallback's
complete answer, what each upstream was asked (counts, prefills), the one usage the client got
and the usage record (continued_from, the answering route, both attempts billed).

Hedging is tested here too (same fakes): a route with ``hedge_after`` that has not produced its
first token by then races the next route; the first to answer is kept, the other cancelled.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from integration.conftest import ProxyServer, serve_proxy
from integration.continuation_support import FAKES, MODEL, REPLY, TOOL_ARGS, Upstream, suite_config
from integration.matrix_support import DRIVERS, Driver

PROTOCOLS = ("openai", "anthropic", "gemini", "openai-responses")
SURFACES = ("chat", "responses", "anthropic")
FAILURES = (openai.APIError, anthropic.APIError)


class Env:
    def __init__(self, protocol: str, proxy: ProxyServer, primary: Upstream, fallback: Upstream) -> None:
        self.protocol, self.proxy, self.primary, self.fallback = protocol, proxy, primary, fallback

    def driver(self, surface: str) -> Driver:
        return DRIVERS[surface](self.proxy)

    def record(self) -> dict[str, Any]:
        records = httpx.get(self.proxy.url + "/v1/usage", params={"limit": 1}, timeout=10).json()["records"]
        return dict(records[0])


@pytest.fixture(scope="module", params=PROTOCOLS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    protocol = request.param
    with FAKES[protocol]() as primary_fake, FAKES[protocol]() as fallback_fake:
        primary, fallback = Upstream(protocol, primary_fake), Upstream(protocol, fallback_fake)
        config = suite_config(tmp_path_factory.mktemp(f"continuation-{protocol}"), protocol, primary, fallback)
        with serve_proxy(config) as proxy:
            yield Env(protocol, proxy, primary, fallback)


@pytest.fixture
def fresh(env: Env) -> Env:
    env.primary.reset()
    env.fallback.reset()
    return env


def continued_at(record: dict[str, Any], label: str) -> int:
    match = re.fullmatch(re.escape(label) + r"@(\d+)", record["continued_from"] or "")
    assert match, record["continued_from"]
    return int(match.group(1))


@pytest.mark.parametrize("surface", [*SURFACES, "gemini"])
@pytest.mark.parametrize("kind", ["cut", "stall", "malformed", "error"])
def test_a_failed_stream_is_continued_with_a_prefill(fresh: Env, surface: str, kind: str) -> None:
    fresh.primary.fake.enqueue(fresh.primary.fault(kind))
    result = fresh.driver(surface).stream(f"up:{MODEL}|fb:{MODEL}", "Tell me about the fox.")
    assert result.text == REPLY, "one seamless answer: what the primary sent, then the fallback's continuation"
    assert result.finish == "stop"
    assert len(fresh.primary.requests()) == 1, "the primary's failure after the first byte is not retried there"
    (asked,) = fresh.fallback.requests()
    prefill = fresh.fallback.prefill_of(asked)
    record = fresh.record()
    at = continued_at(record, f"up:{MODEL}")
    assert prefill == REPLY[:at].rstrip(), "the fallback was asked to continue exactly what the client has"
    assert at > 0
    assert (record["backend"], record["model"], record["status"]) == ("fb", MODEL, 200)
    assert result.usage == (record["input_tokens"], record["output_tokens"]), "one usage: the billed sum"
    fallback_out = len(REPLY[len(prefill):].split())
    assert record["output_tokens"] > fallback_out, "the failed attempt is billed too"
    assert record["estimated"], "the failed attempt reported no usage: its share is estimated"


@pytest.mark.parametrize("surface", SURFACES)
def test_without_prefill_the_restarted_answer_passes_on_only_what_is_new(fresh: Env, surface: str) -> None:
    fresh.primary.fake.enqueue(fresh.primary.fault("cut"))
    fresh.fallback.fake.default = fresh.fallback.answer(prefill="ignore")
    result = fresh.driver(surface).stream(f"up:{MODEL}|fbr:{MODEL}", "Tell me about the fox.")
    assert result.text == REPLY, "no text twice"
    (asked,) = fresh.fallback.requests()
    assert fresh.fallback.prefill_of(asked) is None, "restarted: the original request"
    record = fresh.record()
    assert continued_at(record, f"up:{MODEL}") > 0
    assert record["backend"] == "fbr"


@pytest.mark.parametrize("surface", SURFACES)
def test_a_restart_that_answers_differently_ends_with_the_original_failure(fresh: Env, surface: str) -> None:
    fresh.primary.fake.enqueue(fresh.primary.fault("cut"))
    fresh.fallback.fake.default = fresh.fallback.answer(reply="A different answer altogether.", prefill="ignore")
    with pytest.raises(FAILURES) as raised:
        fresh.driver(surface).stream(f"up:{MODEL}|fbr:{MODEL}", "Tell me about the fox.")
    message = str(raised.value)
    assert "could not be continued" in message
    assert len(fresh.fallback.requests()) == 1
    record = fresh.record()
    assert record["error_code"] == "upstream_incomplete", "the original failure"
    assert continued_at(record, f"up:{MODEL}") > 0, "the attempt to continue is recorded (and billed)"


def test_a_refused_prefill_is_learnt_and_never_the_clients_error(fresh: Env) -> None:
    fresh.fallback.fake.default = fresh.fallback.answer(prefill="reject")
    for _ in range(2):
        fresh.primary.fake.enqueue(fresh.primary.fault("cut"))
        assert fresh.driver("chat").stream(f"up:{MODEL}|fbx:{MODEL}", "Tell me about the fox.").text == REPLY
    asked = [fresh.fallback.prefill_of(r) for r in fresh.fallback.requests()]
    assert len(asked) == 3, "the prefill (400), its restart, then straight to a restart"
    assert asked[0] is not None and asked[1] is None and asked[2] is None


@pytest.mark.parametrize("surface", SURFACES)
def test_a_prefill_the_model_ignored_is_not_sent_twice(fresh: Env, surface: str) -> None:
    """The fallback is said to take prefills but answers anew (as OpenAI's API does): caught, not duplicated."""
    fresh.primary.fake.enqueue(fresh.primary.fault("cut"))
    fresh.fallback.fake.default = fresh.fallback.answer(prefill="ignore")
    result = fresh.driver(surface).stream(f"up:{MODEL}|fb:{MODEL}", "Tell me about the fox.")
    assert result.text == REPLY
    (asked,) = fresh.fallback.requests()
    assert fresh.fallback.prefill_of(asked), "it was asked with a prefill"


def test_continuation_off_ends_with_the_error_event(fresh: Env) -> None:
    fresh.primary.fake.enqueue(fresh.primary.fault("cut"))
    with pytest.raises(FAILURES):
        fresh.driver("chat").stream(f"off:{MODEL}|fb:{MODEL}", "Tell me about the fox.")
    assert fresh.fallback.requests() == []


def test_a_lone_route_continues_its_own_answer_after_a_retry(fresh: Env) -> None:
    fresh.primary.fake.enqueue(fresh.primary.fault("cut"))
    result = fresh.driver("chat").stream(f"up:{MODEL}", "Tell me about the fox.")
    assert result.text == REPLY
    assert len(fresh.primary.requests()) == 2
    assert continued_at(fresh.record(), f"up:{MODEL}") > 0


def test_the_continuations_are_limited(fresh: Env) -> None:
    fresh.primary.fake.default = fresh.primary.fault("cut")
    with pytest.raises(FAILURES):
        fresh.driver("chat").stream(f"up:{MODEL}", "Tell me about the fox.")
    assert len(fresh.primary.requests()) == 3, "the first stream and max_continuations (2) more"


@pytest.mark.parametrize("surface", ["chat", "anthropic"])
def test_a_tool_call_cut_mid_arguments_is_completed_exactly_by_a_restart(fresh: Env, surface: str) -> None:
    if fresh.protocol == "gemini":
        pytest.skip("Gemini sends a call's arguments whole, in one chunk: there is no middle to cut")
    fresh.primary.fake.enqueue(fresh.primary.tool(cut_after_pieces=2))
    fresh.fallback.fake.default = fresh.fallback.tool()
    result = fresh.driver(surface).tool_stream(f"up:{MODEL}|fb:{MODEL}", "What is the weather in Paris?")
    (call,) = result.calls
    assert call.arguments == TOOL_ARGS, "the arguments are the fallback's, exactly, never spliced from two"
    assert result.finish == "tool"
    (asked,) = fresh.fallback.requests()
    assert fresh.fallback.prefill_of(asked) is None, "a tool call is never prefilled: restarted and matched"


def test_a_tool_call_that_the_restart_changes_is_not_spliced(fresh: Env) -> None:
    if fresh.protocol == "gemini":
        pytest.skip("Gemini sends a call's arguments whole")
    fresh.primary.fake.enqueue(fresh.primary.tool(cut_after_pieces=2))
    fresh.fallback.fake.default = fresh.fallback.tool('{"city": "Lyon", "days": [1], "unit": "celsius"}')
    with pytest.raises(FAILURES) as raised:
        fresh.driver("chat").tool_stream(f"up:{MODEL}|fb:{MODEL}", "What is the weather in Paris?")
    assert "could not be continued" in str(raised.value)


# ---- hedging ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("surface", ["chat", "anthropic"])
def test_a_slow_first_token_is_hedged_and_the_fallback_wins(fresh: Env, surface: str) -> None:
    fresh.primary.fake.enqueue(fresh.primary.answer(reply="The slow primary's answer.", first_byte_delay=1.5))
    fresh.fallback.fake.default = fresh.fallback.answer(reply="The fallback's answer.")
    result = fresh.driver(surface).stream(f"hedge:{MODEL}|fb:{MODEL}", "Tell me about the fox.")
    assert result.text == "The fallback's answer."
    assert len(fresh.primary.requests()) == 1 and len(fresh.fallback.requests()) == 1
    record = fresh.record()
    assert (record["backend"], record["status"], record["continued_from"]) == ("fb", 200, None)
    assert result.usage == (record["input_tokens"], record["output_tokens"]), "only the winner is billed"
    assert not record["estimated"]


def test_the_hedged_route_wins_when_it_answers_first(fresh: Env) -> None:
    fresh.primary.fake.enqueue(fresh.primary.answer(reply="The primary's answer.", first_byte_delay=0.4))
    fresh.fallback.fake.default = fresh.fallback.answer(reply="The fallback's answer.", first_byte_delay=3)
    result = fresh.driver("chat").stream(f"hedge:{MODEL}|fb:{MODEL}", "Tell me about the fox.")
    assert result.text == "The primary's answer."
    assert len(fresh.fallback.requests()) == 1, "the hedge was started, then cancelled"
    assert fresh.record()["backend"] == "hedge"


def test_a_prompt_route_is_not_hedged(fresh: Env) -> None:
    result = fresh.driver("chat").stream(f"hedge:{MODEL}|fb:{MODEL}", "Tell me about the fox.")
    assert result.text == REPLY
    assert fresh.fallback.requests() == [], "the first token came before hedge_after"
