"""The fault suite before the first byte, on every client surface and every upstream protocol.

A primary that fails on cue (429 with and without Retry-After, 5xx, a reset, no response, a slow
first token, a content filter, a context-length error, an outage) and one fallback route of the
same protocol. Asserted: what the client got (the fallback's complete answer where it was rescued,
a clean error naming the reason where not), how many calls each upstream saw, and the usage
record. The mid-stream kinds (cut, stall, malformed event, error event) are in test_continuation.py.
No wall time is asserted: small time-outs keep the suite short.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from integration.conftest import ProxyServer, serve_proxy, write_backend
from integration.continuation_support import FAKES, MODEL, REPLY, Upstream, backend_yaml
from integration.matrix_support import DRIVERS

PROTOCOLS = ("openai", "anthropic", "gemini", "openai-responses")
SURFACES = ("chat", "responses", "anthropic")
FALLBACK = "The fallback's whole answer, from its first word to its last."


class Env:
    def __init__(self, protocol: str, proxy: ProxyServer, primary: Upstream, fallback: Upstream) -> None:
        self.protocol, self.proxy, self.primary, self.fallback = protocol, proxy, primary, fallback

    def stream(self, surface: str, model: str) -> Any:
        return DRIVERS[surface](self.proxy).stream(model, "Tell me about the fox.")

    def record(self) -> dict[str, Any]:
        return dict(httpx.get(self.proxy.url + "/v1/usage", params={"limit": 1}, timeout=10).json()["records"][0])


def configure(root: Path, protocol: str, primary: Upstream, fallback: Upstream, routing: str) -> Path:
    up = "first_token_timeout: 0.5\nstream_idle_timeout: 0.5\ntimeout: 5\nmax_retries: 1\nretry_delay: 0.01\n"
    write_backend(root, "up", backend_yaml(protocol, primary.fake.base_url, up))
    write_backend(root, "fb", backend_yaml(protocol, fallback.fake.base_url, "max_retries: 0\n")
                  + "  m-large: {}\n")
    (root / "proxy.yaml").write_text(routing)
    return root


@pytest.fixture(scope="module", params=PROTOCOLS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    protocol = request.param
    with FAKES[protocol]() as primary_fake, FAKES[protocol]() as fallback_fake:
        primary, fallback = Upstream(protocol, primary_fake), Upstream(protocol, fallback_fake)
        root = tmp_path_factory.mktemp(f"faults-{protocol}")
        # breakers off here (every test makes the primary fail): the outage test has its own proxy
        with serve_proxy(configure(root, protocol, primary, fallback, "routing:\n  breaker_failures: 1000\n")) as proxy:
            yield Env(protocol, proxy, primary, fallback)


@pytest.fixture
def fresh(env: Env) -> Env:
    env.primary.reset()
    env.fallback.reset()
    env.fallback.fake.default = env.fallback.answer(reply=FALLBACK)
    return env


def calls(env: Env) -> tuple[int, int]:
    return len(env.primary.requests()), len(env.fallback.requests())


def assert_served_by_fallback(env: Env, result: Any) -> None:
    assert result.text == FALLBACK, "the fallback's complete answer"
    record = env.record()
    assert (record["backend"], record["status"], record["continued_from"]) == ("fb", 200, None)
    assert result.usage == (record["input_tokens"], record["output_tokens"]), "the record bills what the client saw"
    assert not record["estimated"], "only the answering attempt is billed: the failed ones used nothing"


@pytest.mark.parametrize("surface", SURFACES)
def test_429_with_retry_after_is_waited_for_on_the_same_route(fresh: Env, surface: str) -> None:
    fresh.primary.fake.enqueue(fresh.primary.error(429, "slow down", retry_after="0.2"))
    result = fresh.stream(surface, f"up:{MODEL}|fb:{MODEL}")
    assert result.text == REPLY
    assert calls(fresh) == (2, 0)
    assert fresh.record()["backend"] == "up"


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("fault", ["429", "503", "reset"])
def test_retryable_failures_use_their_retries_then_fail_over(fresh: Env, surface: str, fault: str) -> None:
    primary = fresh.primary
    behaviour = {"429": lambda: primary.error(429, "slow down"), "503": lambda: primary.error(503, "overloaded"),
                 "reset": lambda: primary.answer(reset_before_headers=True)}[fault]
    primary.fake.default = behaviour()
    result = fresh.stream(surface, f"up:{MODEL}|fb:{MODEL}")
    assert calls(fresh) == (2, 1), "max_retries: 1 on the primary, then the fallback"
    assert_served_by_fallback(fresh, result)


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("fault", ["no response", "slow first token"])
def test_a_silent_primary_costs_one_attempt(fresh: Env, surface: str, fault: str) -> None:
    primary = fresh.primary
    primary.fake.default = primary.answer(silence=True) if fault == "no response" else primary.answer(
        first_chunk_delay=3)
    result = fresh.stream(surface, f"up:{MODEL}|fb:{MODEL}")
    assert calls(fresh) == (1, 1), "one time-out, then the fallback at once"
    assert_served_by_fallback(fresh, result)


@pytest.mark.parametrize("surface", SURFACES)
def test_a_context_length_error_moves_to_the_larger_model(fresh: Env, surface: str) -> None:
    message = {"openai": "This model's maximum context length is 8192 tokens",
               "anthropic": "prompt is too long: 250000 tokens > 200000 maximum",
               "gemini": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
               "openai-responses": "Your input exceeds the context window of this model."}
    fresh.primary.fake.default = fresh.primary.error(400, message[fresh.protocol], code="context_length_exceeded")
    result = fresh.stream(surface, f"up:{MODEL}|fb:m-large")
    assert calls(fresh) == (1, 1), "a 400 is not retried on the same model"
    assert result.text == FALLBACK
    assert fresh.record()["model"] == "m-large"


@pytest.mark.parametrize("surface", SURFACES)
def test_a_content_filter_reaches_the_client_with_its_reason(fresh: Env, surface: str) -> None:
    fresh.primary.fake.default = fresh.primary.error(400, "Output blocked by the content filter",
                                                     code="content_filter")
    with pytest.raises((openai.BadRequestError, anthropic.BadRequestError)) as raised:
        fresh.stream(surface, f"up:{MODEL}|fb:{MODEL}")
    assert "content filter" in str(raised.value)
    assert calls(fresh) == (1, 0), "not retried, and not evaded on another route"
    record = fresh.record()
    assert record["status"] == 400 and (record["input_tokens"], record["output_tokens"]) == (0, 0)


@pytest.mark.parametrize("surface", SURFACES)
def test_an_outage_is_ridden_out_and_the_primary_is_back_within_a_cooldown(
    env: Env, surface: str, tmp_path: Path
) -> None:
    primary, fallback = env.primary, env.fallback
    primary.reset()
    fallback.reset()
    fallback.fake.default = fallback.answer(reply=FALLBACK)
    primary.fake.default = primary.error(503, "down for maintenance")
    routing = "routing:\n  breaker_failures: 2\n  breaker_cooldown: 0.5\n"
    with serve_proxy(configure(tmp_path, env.protocol, primary, fallback, routing)) as proxy:
        outage = Env(env.protocol, proxy, primary, fallback)
        assert outage.stream(surface, f"up:{MODEL}|fb:{MODEL}").text == FALLBACK
        assert len(primary.requests()) == 2, "max_retries: 1, and the second failure opened the circuit"
        for _ in range(3):
            before = len(primary.requests())
            assert outage.stream(surface, f"up:{MODEL}|fb:{MODEL}").text == FALLBACK, "answered during the outage"
            assert len(primary.requests()) - before <= 1, "open: skipped, or one probe of a single attempt"
        primary.fake.default = primary.answer()  # healed
        time.sleep(0.6)  # within one cooldown of healing ...
        after = outage.stream(surface, f"up:{MODEL}|fb:{MODEL}")
        assert after.text == REPLY, "... the primary answers again"
        assert outage.record()["backend"] == "up"
