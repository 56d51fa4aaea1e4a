"""Upstreams that answer too much or the wrong thing: a clear 502, never a 200 or a buffered gigabyte.

Caps are set small in backend.yaml so that the bodies stay small; the fakes send them in 64 KiB
writes without Content-Length (and with it, for the JSON answer), or an event that never ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fakes.anthropic_upstream import Behaviour as ClaudeBehaviour
from fakes.anthropic_upstream import FakeAnthropic
from fakes.gemini_upstream import FakeGemini, GeminiBehaviour
from fakes.openai_upstream import Behaviour, FakeOpenAI
from integration.conftest import ProxyServer, serve_proxy, write_backend

CAP = 100_000
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def claude() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as upstream:
        yield upstream


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as upstream:
        yield upstream


@pytest.fixture
def proxy(tmp_path: Path, fake: FakeOpenAI, claude: FakeAnthropic, gemini: FakeGemini) -> Iterator[ProxyServer]:
    caps = f"max_retries: 0\nmax_response_bytes: {CAP}\nmax_event_bytes: {CAP}\n"
    write_backend(tmp_path, "up", f"backend_type: custom\napi_base_url: {fake.base_url}\n{caps}models:\n  m: {{}}\n")
    write_backend(tmp_path, "claude", f"backend_type: custom\nprotocol: anthropic\napi_base_url: {claude.base_url}\n"
                                      f"headers: {{anthropic-version: '2023-06-01'}}\n{caps}models:\n  c: {{}}\n")
    write_backend(tmp_path, "gem", f"backend_type: custom\nprotocol: gemini\napi_base_url: {gemini.base_url}\n"
                                   f"{caps}models:\n  g: {{}}\n")
    with serve_proxy(tmp_path) as server:
        yield server


def chat(proxy: ProxyServer, model: str, stream: bool = False) -> httpx.Response:
    return httpx.post(proxy.url + "/v1/chat/completions", json={"model": model, "messages": HI, "stream": stream},
                      timeout=30)


def test_non_streaming_answer_over_the_cap_with_content_length(proxy: ProxyServer, fake: FakeOpenAI) -> None:
    fake.default = Behaviour(reply="x" * (2 * CAP))
    reply = chat(proxy, "up:m")
    assert reply.status_code == 502
    assert reply.json()["error"]["code"] == "upstream_response_too_large"
    assert "max_response_bytes" in reply.json()["error"]["message"]


def test_non_streaming_answer_over_the_cap_chunked(proxy: ProxyServer, fake: FakeOpenAI) -> None:
    fake.default = Behaviour(raw_body=b'{"choices": [{"message": {"content": "' + b"x" * (3 * CAP) + b'"}}]}')
    reply = chat(proxy, "up:m")
    assert reply.status_code == 502
    assert reply.json()["error"]["code"] == "upstream_response_too_large"


def test_a_stream_event_that_never_ends(proxy: ProxyServer, fake: FakeOpenAI) -> None:
    fake.default = Behaviour(raw_body=b"data: " + b"x" * (3 * CAP))
    reply = chat(proxy, "up:m", stream=True)
    assert reply.status_code == 502
    assert reply.json()["error"]["code"] == "upstream_response_too_large"
    assert "max_event_bytes" in reply.json()["error"]["message"]


def test_answers_under_the_caps_are_relayed(proxy: ProxyServer, fake: FakeOpenAI) -> None:
    fake.default = Behaviour(reply="y" * (CAP // 2))
    assert chat(proxy, "up:m").json()["choices"][0]["message"]["content"] == "y" * (CAP // 2)
    assert chat(proxy, "up:m", stream=True).status_code == 200


@pytest.mark.parametrize("body", [b'{"foo": 1}', b'{"choices": 5}', b'{"choices": [{"message": "text"}]}',
                                  b'{"choices": [{"message": {"tool_calls": [1]}}]}'])
def test_openai_answer_of_the_wrong_shape_is_a_502(proxy: ProxyServer, fake: FakeOpenAI, body: bytes) -> None:
    fake.default = Behaviour(raw_body=body)
    reply = chat(proxy, "up:m")
    assert reply.status_code == 502
    assert reply.json()["error"]["code"] == "upstream_malformed"


@pytest.mark.parametrize("body", [b'{"foo": 1}', b'{"type": "message", "content": "text"}'])
def test_anthropic_answer_of_the_wrong_shape_is_a_502(proxy: ProxyServer, claude: FakeAnthropic,
                                                      body: bytes) -> None:
    claude.default = ClaudeBehaviour(raw_body=body)
    reply = chat(proxy, "claude:c")
    assert reply.status_code == 502
    assert reply.json()["error"]["code"] == "upstream_malformed"


@pytest.mark.parametrize("body", [b'{"foo": 1}', b'{"candidates": []}', b'{"candidates": ["x"]}'])
def test_gemini_answer_of_the_wrong_shape_is_a_502(proxy: ProxyServer, gemini: FakeGemini, body: bytes) -> None:
    gemini.default = GeminiBehaviour(raw_body=body)
    reply = chat(proxy, "gem:g")
    assert reply.status_code == 502
    assert reply.json()["error"]["code"] == "upstream_malformed"


def test_gemini_blocked_prompt_is_still_an_answer(proxy: ProxyServer, gemini: FakeGemini) -> None:
    gemini.default = GeminiBehaviour(raw_body=b'{"promptFeedback": {"blockReason": "SAFETY"}}')
    assert chat(proxy, "gem:g").status_code != 502
