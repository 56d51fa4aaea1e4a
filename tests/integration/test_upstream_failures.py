"""Retries, Retry-After, time-outs and error pass-through, as the fake upstream and the SDK see them."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

import httpx
import openai
import pytest

from fakes.openai_upstream import Behaviour, FakeOpenAI
from integration.conftest import ProxyServer, serve_proxy, write_backend

KEY = "sk-canary-should-never-leak-42"


def backend(tmp_path: Path, base_url: str, extra: str = "") -> Path:
    lines = [f"api_base_url: {base_url}", "api_key_env_var: UP_KEY", "retry_delay: 0.2",
             "models:", "  m: {}", *extra.splitlines()]
    if "max_retries" not in extra:
        lines.append("max_retries: 2")
    write_backend(tmp_path, "up", "backend_type: custom\n" + "\n".join(lines) + "\n")
    return tmp_path


def sdk(proxy: ProxyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0, timeout=20)


def ask(proxy: ProxyServer, model: str = "up:m", **kwargs: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **kwargs}
    return httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=20)


def gaps(fake: FakeOpenAI) -> list[float]:
    times = [r.at for r in fake.chat_requests()]
    return [b - a for a, b in itertools.pairwise(times)]


def test_500_once_is_retried_after_backoff(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(status=500))
    with serve_proxy(backend(tmp_path, fake.base_url), environ={"UP_KEY": KEY}) as proxy:
        answer = sdk(proxy).chat.completions.create(model="up:m", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Hello from the fake upstream."
    assert len(fake.chat_requests()) == 2
    (gap,) = gaps(fake)
    assert gap >= 0.1, "the first retry waits at least half of retry_delay (no upper bound: loaded machines)"


def test_backoff_grows_exponentially_then_gives_up_with_502(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.enqueue(*(Behaviour(status=503, error_message="overloaded") for _ in range(3)))
    with serve_proxy(backend(tmp_path, fake.base_url), environ={"UP_KEY": KEY}) as proxy:
        with pytest.raises(openai.InternalServerError) as raised:
            sdk(proxy).chat.completions.create(model="up:m", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == 503
    assert "overloaded" in str(raised.value)
    assert len(fake.chat_requests()) == 3, "max_retries: 2 means three attempts"
    first, second = gaps(fake)
    assert first >= 0.1, "at least half of retry_delay (0.2 s)"
    assert second >= 0.2, "at least half of twice retry_delay: the delay grows"


def test_retry_after_from_upstream_wins_over_backoff(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(status=429, headers={"Retry-After": "1"}))
    with serve_proxy(backend(tmp_path, fake.base_url), environ={"UP_KEY": KEY}) as proxy:
        response = ask(proxy)
    assert response.status_code == 200
    (gap,) = gaps(fake)
    assert gap >= 0.95, "Retry-After (1 s) wins over the backoff (at most 0.2 s)"


def test_429_forever_reaches_the_client_as_429_with_retry_after(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.default = Behaviour(status=429, headers={"Retry-After": "0"}, error_message="slow down",
                             error_code="rate_limit_exceeded", error_type="requests")
    with serve_proxy(backend(tmp_path, fake.base_url), environ={"UP_KEY": KEY}) as proxy:
        response = ask(proxy)
    assert response.status_code == 429
    assert response.json()["error"]["message"] == "slow down"
    assert "retry-after" in response.headers
    assert len(fake.chat_requests()) == 3


def test_upstream_400_passes_through_unretried(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(status=400, error_message="This model's maximum context length is 8192 tokens",
                           error_code="context_length_exceeded"))
    with serve_proxy(backend(tmp_path, fake.base_url), environ={"UP_KEY": KEY}) as proxy:
        with pytest.raises(openai.BadRequestError) as raised:
            sdk(proxy).chat.completions.create(model="up:m", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.code == "context_length_exceeded"
    assert "maximum context length is 8192" in raised.value.message
    assert len(fake.chat_requests()) == 1


def test_upstream_error_echoing_the_key_is_redacted(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(status=401, error_message=f"Incorrect API key provided: {KEY}"))
    with serve_proxy(backend(tmp_path, fake.base_url), environ={"UP_KEY": KEY}) as proxy:
        response = ask(proxy)
    assert response.status_code == 401
    assert KEY not in response.text
    assert "Incorrect API key provided" in response.text


def test_unreachable_upstream_is_502_naming_the_backend(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with serve_proxy(backend(tmp_path, f"http://127.0.0.1:{port}/v1", "connect_timeout: 1"),
                     environ={"UP_KEY": KEY}) as proxy:
        response = ask(proxy)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_unreachable"
    assert "'up'" in error["message"]
    assert KEY not in response.text
    assert KEY not in caplog.text


def test_reset_before_headers_is_retried(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(reset_before_headers=True))
    with serve_proxy(backend(tmp_path, fake.base_url), environ={"UP_KEY": KEY}) as proxy:
        response = ask(proxy)
    assert response.status_code == 200
    assert len(fake.chat_requests()) == 2


def test_silent_upstream_times_out_quickly_with_504(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.default = Behaviour(silence=True)
    config = backend(tmp_path, fake.base_url, "timeout: 0.5\nfirst_token_timeout: 0.5\nmax_retries: 1")
    with serve_proxy(config, environ={"UP_KEY": KEY}) as proxy:
        response = ask(proxy)
        stream = ask(proxy, stream=True)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert stream.status_code == 504
    assert len(fake.chat_requests()) == 2, "a silent upstream costs one time-out per request, not one per retry"


def test_retry_on_timeout_retries_a_silent_upstream(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.default = Behaviour(silence=True)
    config = backend(tmp_path, fake.base_url, "first_token_timeout: 0.3\nmax_retries: 1\nretry_on_timeout: true")
    with serve_proxy(config, environ={"UP_KEY": KEY}) as proxy:
        stream = ask(proxy, stream=True)
    assert stream.status_code == 504
    assert len(fake.chat_requests()) == 2, "the operator asked for the time-out to be retried"


def test_stream_cut_midway_raises_in_the_sdk(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.default = Behaviour(chunks=6, cut_after_chunks=3)
    with serve_proxy(backend(tmp_path, fake.base_url), environ={"UP_KEY": KEY}) as proxy:
        stream = sdk(proxy).chat.completions.create(
            model="up:m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        received = []
        with pytest.raises(openai.APIError) as raised:
            for chunk in stream:
                received.extend(c.delta.content or "" for c in chunk.choices)
        assert ask(proxy).status_code == 200, "the proxy stays healthy afterwards"
    assert received, "the part before the cut was relayed"
    assert "mid-stream" in str(raised.value) or "before finishing" in str(raised.value)


def test_missing_key_variable_is_503_naming_it(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(backend(tmp_path, fake.base_url), environ={"UP_KEY": ""}) as proxy:
        response = ask(proxy)
    assert response.status_code == 503
    assert "UP_KEY" in response.json()["error"]["message"]
    assert fake.chat_requests() == []
