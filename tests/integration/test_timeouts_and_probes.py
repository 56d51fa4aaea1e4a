"""first_token_timeout as one deadline, a silent provider costing one time-out, and the breaker's single probe.

Only counts and outcomes are asserted (what the upstreams saw, what the client got), never wall times.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fakes.openai_upstream import Behaviour, FakeOpenAI
from integration.conftest import ProxyServer, serve_proxy, write_backend


@pytest.fixture
def spare() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        upstream.default = Behaviour(reply="Answer from the spare upstream.")
        yield upstream


def config(tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI, up_extra: str = "", proxy_yaml: str = "") -> Path:
    write_backend(tmp_path, "up", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        passthrough_models: true
        max_retries: 2
        retry_delay: 0.01
        first_token_timeout: 1.0
        stream_idle_timeout: 1.0
        timeout: 1.0
        models:
          gpt-4o: {{}}
        """ + up_extra)
    write_backend(tmp_path, "spare", f"""\
        backend_type: custom
        api_base_url: {spare.base_url}
        max_retries: 0
        models:
          gpt-4o: {{}}
        """)
    (tmp_path / "proxy.yaml").write_text(proxy_yaml)
    return tmp_path


def ask(proxy: ProxyServer, model: str, stream: bool = True) -> httpx.Response:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello there"}]}
    return httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=20)


def test_first_token_timeout_is_one_deadline_over_head_and_first_chunk(
    tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI
) -> None:
    """The head after 0.6 s and the first chunk 0.6 s later: each under the 1 s limit, together over it."""
    with serve_proxy(config(tmp_path, fake, spare)) as proxy:
        late = ask(proxy, "up:fault:first_byte_delay=0.6,first_chunk_delay=0.6")
        prompt = ask(proxy, "up:fault:first_byte_delay=0.05,first_chunk_delay=0.05")
    assert late.status_code == 504
    assert late.json()["error"]["code"] == "upstream_timeout"
    assert "first_token_timeout" in late.json()["error"]["message"]
    assert prompt.status_code == 200 and prompt.text.rstrip().endswith("data: [DONE]")
    assert len(fake.chat_requests()) == 2, "the time-out was not retried"


def test_a_silent_provider_fails_over_after_one_time_out(tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI) -> None:
    with serve_proxy(config(tmp_path, fake, spare)) as proxy:
        silent = ask(proxy, "up:fault:silence|spare:gpt-4o")
        slow = ask(proxy, "up:fault:first_chunk_delay=3|spare:gpt-4o")
        whole = ask(proxy, "up:fault:silence|spare:gpt-4o", stream=False)
    for response in (silent, slow, whole):
        assert response.status_code == 200
        assert response.headers["x-lip-backend"] == "spare"
    assert "Answer from the spare upstream" in whole.json()["choices"][0]["message"]["content"]
    assert len(fake.chat_requests()) == 3, "one attempt each, although max_retries is 2"
    assert len(spare.chat_requests()) == 3


def test_retry_on_timeout_keeps_retrying_the_same_route(tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(silence=True))
    with serve_proxy(config(tmp_path, fake, spare, "retry_on_timeout: true\n")) as proxy:
        response = ask(proxy, "up:gpt-4o|spare:gpt-4o")
    assert response.headers["x-lip-backend"] == "up"
    assert len(fake.chat_requests()) == 2 and spare.chat_requests() == []


def test_resets_and_5xx_keep_their_retries(tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(reset_before_headers=True), Behaviour(status=503))
    with serve_proxy(config(tmp_path, fake, spare)) as proxy:
        response = ask(proxy, "up:gpt-4o|spare:gpt-4o")
    assert response.headers["x-lip-backend"] == "up"
    assert len(fake.chat_requests()) == 3 and spare.chat_requests() == []


def test_the_half_open_probe_is_one_attempt_and_recovery_takes_one_cooldown(
    tmp_path: Path, fake: FakeOpenAI, spare: FakeOpenAI
) -> None:
    fake.default = Behaviour(status=503)
    routing = "routing:\n  breaker_failures: 3\n  breaker_cooldown: 1.5\n"  # long enough for two requests
    selector = "up:gpt-4o|spare:gpt-4o"
    with serve_proxy(config(tmp_path, fake, spare, proxy_yaml=routing)) as proxy:
        assert ask(proxy, selector).headers["x-lip-backend"] == "spare"
        assert len(fake.chat_requests()) == 3, "closed: the first request used its retries and opened the circuit"
        assert ask(proxy, selector).headers["x-lip-backend"] == "spare"
        assert len(fake.chat_requests()) == 3, "open: the primary is skipped"
        for probes in (1, 2):
            time.sleep(1.6)  # one cooldown
            assert ask(proxy, selector).headers["x-lip-backend"] == "spare"
            assert len(fake.chat_requests()) == 3 + probes, "the probe is one attempt, without retries"
            assert ask(proxy, selector).headers["x-lip-backend"] == "spare"
            assert len(fake.chat_requests()) == 3 + probes, "a failed probe opens the circuit again"
        fake.default = Behaviour()  # the primary heals
        time.sleep(1.6)  # at most one cooldown later ...
        backends = [ask(proxy, selector).headers["x-lip-backend"] for _ in range(3)]
    assert backends == ["up", "up", "up"], "... the probe succeeds and the primary serves again"
