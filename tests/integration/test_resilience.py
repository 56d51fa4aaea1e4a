"""Retries, failover, time-outs, cut streams and circuit breakers, as upstreams and the openai SDK see them.

The fake upstream picks its fault from the model name (``fault:...``, see tests/fakes/openai_upstream.py),
so a selector such as ``up:fault:status=503|spare:gpt-4o`` fails on the first route and serves from the
second.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from fakes.openai_upstream import Behaviour, FakeOpenAI
from integration.conftest import ProxyServer, serve_proxy, write_backend


@pytest.fixture
def spare() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        upstream.default = Behaviour(reply="Answer from the spare upstream.")
        yield upstream


def config(tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI, routing: str = "") -> Path:
    write_backend(tmp_path, "up", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        passthrough_models: true
        max_retries: 1
        retry_delay: 0.05
        timeout: 1
        first_token_timeout: 0.6
        stream_idle_timeout: 0.6
        models:
          gpt-4o: {{}}
        """)
    write_backend(tmp_path, "spare", f"""\
        backend_type: custom
        api_base_url: {spare.base_url}
        max_retries: 0
        models:
          gpt-4o: {{}}
          gpt-4o-large: {{}}
        """)
    (tmp_path / "proxy.yaml").write_text(routing or "routing:\n  breaker_failures: 3\n  breaker_cooldown: 1\n")
    return tmp_path


def sdk(proxy: ProxyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0, timeout=20)


def ask(proxy: ProxyServer, model: str, **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello there"}], **extra}
    return httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=20)


def gaps(fake: FakeOpenAI) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(fake.chat_requests())]


def test_429_with_retry_after_2_once_waits_two_seconds(tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI) -> None:
    with serve_proxy(config(tmp_path, fake, spare)) as proxy:
        response = ask(proxy, "up:fault:status=429,retry_after=2,times=1")
    assert response.status_code == 200
    assert len(fake.chat_requests()) == 2
    assert 1.95 <= gaps(fake)[0] < 2.8
    assert spare.chat_requests() == []


def test_429_forever_without_retry_after_backs_off_then_answers_429(
    tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI
) -> None:
    with serve_proxy(config(tmp_path, fake, spare)) as proxy:
        response = ask(proxy, "up:fault:status=429")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert len(fake.chat_requests()) == 2, "max_retries: 1"
    assert gaps(fake)[0] >= 0.025, "backed off, never hammered"


def test_500_once_is_retried_on_the_same_route(tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI) -> None:
    with serve_proxy(config(tmp_path, fake, spare)) as proxy:
        answer = sdk(proxy).chat.completions.create(
            model="up:fault:status=500,times=1|spare:gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert answer.choices[0].message.content == "Hello from the fake upstream."
    assert len(fake.chat_requests()) == 2
    assert spare.chat_requests() == []


def test_503_forever_fails_over_and_the_fallback_is_named_and_billed(
    tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI
) -> None:
    with serve_proxy(config(tmp_path, fake, spare)) as proxy:
        raw = sdk(proxy).chat.completions.with_raw_response.create(
            model="up:fault:status=503|spare:gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    answer = raw.parse()
    assert answer.choices[0].message.content == "Answer from the spare upstream."
    assert raw.headers["x-lip-backend"] == "spare"
    assert raw.headers["x-lip-model"] == "gpt-4o"
    assert answer.model == "gpt-4o", "the model that answered"
    assert answer.usage is not None and answer.usage.completion_tokens == 5, "the fallback's own usage"
    assert len(fake.chat_requests()) == 2 and len(spare.chat_requests()) == 1


def test_reset_before_headers_is_retried(tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(reset_before_headers=True))
    with serve_proxy(config(tmp_path, fake, spare)) as proxy:
        assert ask(proxy, "up:gpt-4o").status_code == 200
    assert len(fake.chat_requests()) == 2


def test_a_silent_upstream_is_abandoned_for_the_next_route(tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI) -> None:
    with serve_proxy(config(tmp_path, fake, spare)) as proxy:
        stream = ask(proxy, "up:fault:silence|spare:gpt-4o", stream=True)  # silence never ends by itself
    assert stream.status_code == 200
    assert stream.headers["x-lip-backend"] == "spare"
    assert '"content":"Answer' in stream.text and stream.text.rstrip().endswith("data: [DONE]")
    assert fake.chat_requests() and fake.chat_requests()[-1].at < spare.chat_requests()[0].at, \
        "the silent upstream first, then the spare"


def test_first_token_after_a_long_delay_times_out_but_a_short_one_is_served(
    tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI
) -> None:
    with serve_proxy(config(tmp_path, fake, spare)) as proxy:
        slow = ask(proxy, "up:fault:first_byte_delay=2", stream=True)
        fine = ask(proxy, "up:fault:first_byte_delay=0.2", stream=True)
    assert slow.status_code == 504
    assert slow.json()["error"]["code"] == "upstream_timeout"
    assert fine.status_code == 200
    assert fine.text.rstrip().endswith("data: [DONE]")


def stream_text(proxy: ProxyServer, model: str) -> tuple[str, BaseException | None]:
    pieces: list[str] = []
    try:
        for chunk in sdk(proxy).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            pieces.extend(c.delta.content or "" for c in chunk.choices)
    except openai.APIError as error:
        return "".join(pieces), error
    return "".join(pieces), None


@pytest.mark.parametrize(
    ("cue", "says"),
    [("cut_after=3", "mid-stream"), ("stall_after=3", "stalled"), ("malformed_after=2", "malformed")],
)
def test_failures_after_the_first_byte_end_the_stream_with_an_error(
    tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI, cue: str, says: str
) -> None:
    with serve_proxy(config(tmp_path, fake, spare)) as proxy:
        text, error = stream_text(proxy, f"up:fault:{cue},chunks=6|spare:gpt-4o")
        assert ask(proxy, "up:gpt-4o").status_code == 200, "the proxy stays healthy"
    assert error is not None, "the SDK raises instead of returning a truncated answer"
    assert says in str(error), "the error names the original failure"
    assert "could not be continued" in str(error), "the spare's answer does not begin with what was sent"
    assert text and text != "Hello from the fake upstream.", "what arrived before the failure, and no more"
    assert len(spare.chat_requests()) == 1, "the spare was asked to continue (tests/integration/test_continuation.py)"


@pytest.mark.parametrize("cue", ["omit_done", "omit_done,stall_after=99"])
def test_a_stream_without_done_is_finalised_at_once(tmp_path: Path, fake: FakeOpenAI, cue: str) -> None:
    """No [DONE]: the upstream closes after its last chunk, or holds the connection open after it.

    The idle time-out is longer than the SDK's own time-out, so a proxy that waited for it (instead
    of ending the client's stream at the upstream's end, or at its finish and usage) fails the SDK.
    """
    write_backend(tmp_path, "patient", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        passthrough_models: true
        max_retries: 0
        stream_idle_timeout: 60
        """)
    with serve_proxy(tmp_path) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0, timeout=15)
        stream = client.chat.completions.create(model=f"patient:fault:{cue}", stream=True,
                                                messages=[{"role": "user", "content": "hi"}])
        text = "".join(c.delta.content or "" for chunk in stream for c in chunk.choices)
    assert text == "Hello from the fake upstream.", "complete, and ended before any time-out could end it"


def test_context_length_400_moves_to_a_larger_model(tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI) -> None:
    with serve_proxy(config(tmp_path, fake, spare)) as proxy:
        response = ask(proxy, "up:fault:status=400,code=context_length_exceeded|spare:gpt-4o-large")
    assert response.status_code == 200
    assert response.headers["x-lip-model"] == "gpt-4o-large"
    assert len(fake.chat_requests()) == 1, "a 400 is not retried on the same model"


def test_content_filter_400_reaches_the_client_with_its_reason(
    tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI
) -> None:
    with serve_proxy(config(tmp_path, fake, spare)) as proxy, pytest.raises(openai.BadRequestError) as raised:
        sdk(proxy).chat.completions.create(
            model="up:fault:status=400,code=content_filter,message=flagged by the content filter|spare:gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
        )
    assert raised.value.code == "content_filter"
    assert "flagged by the content filter" in raised.value.message
    assert len(fake.chat_requests()) == 1
    assert spare.chat_requests() == []


def test_a_primary_down_for_a_while_is_skipped_then_probed_back(
    tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI
) -> None:
    fake.default = Behaviour(status=503)
    selector = "up:gpt-4o|spare:gpt-4o"
    with serve_proxy(config(tmp_path, fake, spare)) as proxy:
        first = [ask(proxy, selector).headers["x-lip-backend"] for _ in range(2)]
        tried_while_failing = len(fake.chat_requests())
        during = [ask(proxy, selector).headers["x-lip-backend"] for _ in range(3)]
        assert len(fake.chat_requests()) == tried_while_failing, "open circuit: the primary is not called"
        assert 'lip_circuit_open{route="up:gpt-4o"} 1.0' in httpx.get(proxy.url + "/metrics").text
        fake.default = Behaviour()  # recovered
        time.sleep(1.1)  # the cool-off
        after = [ask(proxy, selector).headers["x-lip-backend"] for _ in range(3)]
    assert first == ["spare", "spare"]
    assert tried_while_failing == 4, "two requests, two attempts each, before the circuit opened"
    assert during == ["spare", "spare", "spare"]
    assert after == ["up", "up", "up"], "one probe succeeded, the circuit closed"


def test_weighted_choice_spreads_by_weight(tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI) -> None:
    with serve_proxy(config(tmp_path, fake, spare)) as proxy:
        backends = [ask(proxy, "[weight=3]up:gpt-4o^[weight=1]spare:gpt-4o").headers["x-lip-backend"]
                    for _ in range(80)]
    assert 45 <= backends.count("up") <= 75
    assert backends.count("up") + backends.count("spare") == 80


def test_max_context_skips_a_branch_for_larger_requests(tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI) -> None:
    with serve_proxy(config(tmp_path, fake, spare)) as proxy:
        small = ask(proxy, "[max_context=1000]up:gpt-4o|spare:gpt-4o-large")
        big = httpx.post(proxy.url + "/v1/chat/completions", json={
            "model": "[max_context=1000]up:gpt-4o|spare:gpt-4o-large",
            "messages": [{"role": "user", "content": "word " * 2000}]})
    assert small.headers["x-lip-backend"] == "up"
    assert big.headers["x-lip-backend"] == "spare"


def test_uri_parameters_override_the_body(tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI) -> None:
    with serve_proxy(config(tmp_path, fake, spare)) as proxy:
        ok = ask(proxy, "up:gpt-4o?temperature=0.2&top_p=0.9&max_tokens=77&reasoning_effort=low", temperature=1.5)
        bad = ask(proxy, "up:gpt-4o?temperature=hot")
        unknown = ask(proxy, "up:gpt-4o?tempreature=1")
    assert ok.status_code == 200
    body = fake.chat_requests()[0].body
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["reasoning_effort"]) == (0.2, 0.9, 77, "low")
    assert body["model"] == "gpt-4o"
    assert bad.status_code == 400 and "temperature" in bad.json()["error"]["message"]
    assert unknown.status_code == 400 and "tempreature" in unknown.json()["error"]["message"]


def test_model_rewrites_route_hard_coded_names(tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI) -> None:
    routing = "model_rewrites:\n  - pattern: '^gpt-4.*'\n    replacement: 'spare:gpt-4o-large'\n" \
              "  - pattern: 'claude-(.*)'\n    replacement: 'up:\\1'\n"
    with serve_proxy(config(tmp_path, fake, spare, routing)) as proxy:
        rewritten = ask(proxy, "gpt-4-turbo")
        grouped = ask(proxy, "claude-opus")
    assert rewritten.headers["x-lip-backend"] == "spare"
    assert rewritten.headers["x-lip-model"] == "gpt-4o-large"
    assert grouped.headers["x-lip-backend"] == "up"
    assert fake.chat_requests()[0].body["model"] == "opus"


def test_key_rotation_rests_a_key_after_429(tmp_path: Path, fake: FakeOpenAI) -> None:
    write_backend(tmp_path, "keys", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        api_key_env_var: [KEY_A, KEY_B, KEY_C]
        max_retries: 1
        retry_delay: 0.01
        models:
          gpt-4o: {{}}
        """)
    fake.enqueue(Behaviour(), Behaviour(status=429, headers={"Retry-After": "30"}))
    env = {"KEY_A": "key-a", "KEY_B": "key-b", "KEY_C": "key-c"}
    with serve_proxy(tmp_path, environ=env) as proxy:
        # ask() gives up after 20 s: a retry that waited out key-b's Retry-After (30 s) would fail it.
        codes = [ask(proxy, "keys:gpt-4o").status_code for _ in range(5)]
    used = [r.headers["authorization"].removeprefix("Bearer ") for r in fake.chat_requests()]
    assert codes == [200] * 5
    assert used[:3] == ["key-a", "key-b", "key-c"], "round-robin; key-b got the 429 and the retry used key-c"
    assert used[3:] == ["key-a", "key-c", "key-a"], "key-b rests for its Retry-After"


def test_a_client_that_disconnects_cancels_the_upstream_call(
    tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI
) -> None:
    write_backend(tmp_path, "slow", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        passthrough_models: true
        stream_idle_timeout: 30
        """)
    with serve_proxy(tmp_path) as proxy:
        body = {"model": "slow:fault:stall_after=3", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=body, timeout=10) as response:
            first = next(response.iter_lines())
        assert first.startswith("data: ")
        deadline = time.monotonic() + 5
        while fake.client_gone == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake.client_gone == 1, "the proxy closed its upstream connection when the client left"
        assert ask(proxy, "slow:gpt-4o").status_code == 200


def test_a_stream_settled_before_its_end_gives_its_connection_back(
    tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI
) -> None:
    """The answer ends (finish + usage) before [DONE] arrives: the client is done at once, and the
    rest is read in the background so the next stream reuses the connection (no new handshake)."""
    fake.default = Behaviour(chunk_delay=0.05)  # [DONE] comes 50 ms after the usage chunk
    with serve_proxy(config(tmp_path, fake, spare)) as proxy:
        client = sdk(proxy)
        for _ in range(3):
            text = "".join(chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
                model="up:gpt-4o", stream=True, messages=[{"role": "user", "content": "hi"}]) if chunk.choices)
            assert text == Behaviour().reply
            time.sleep(0.2)  # the background read finishes (the [DONE] is 50 ms away)
    peers = {request.peer for request in fake.chat_requests()}
    assert len(peers) == 1, peers  # one kept-alive upstream connection for all three streams
