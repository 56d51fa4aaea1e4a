"""``tokenizer: upstream``: the backend's own count (Anthropic count_tokens, Gemini countTokens, the
/tokenize of vLLM and llama.cpp servers) over real sockets, memoised, with a logged local fallback."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest
from google import genai
from google.genai import types

from fakes.anthropic_upstream import COUNT_PATH, VERSION, FakeAnthropic
from fakes.gemini_upstream import FakeGemini
from fakes.openai_upstream import TEMPLATE_TOKENS, FakeOpenAI
from integration.conftest import ProxyServer, serve_proxy, write_backend
from shared_data import shared_encodings

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa " * 5  # 50 words


def o200k(text: str) -> int:
    return len(shared_encodings()["o200k_base"].encode(text))


def local_count(text: str) -> int:
    return 3 + o200k("user") + o200k(text) + 3


def chat(proxy: ProxyServer, model: str, text: str = WORDS, **extra: object) -> httpx.Response:
    return httpx.post(proxy.url + "/v1/chat/completions", timeout=20,
                      json={"model": model, "messages": [{"role": "user", "content": text}], **extra})


@pytest.fixture
def claude_fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as upstream:
        yield upstream


@pytest.fixture
def gemini_fake() -> Iterator[FakeGemini]:
    with FakeGemini() as upstream:
        yield upstream


def claude_backend(tmp_path: Path, base_url: str, limits: str = "max_input_tokens: 10") -> Path:
    write_backend(tmp_path, "claude", f"""\
        backend_type: custom
        protocol: anthropic
        api_base_url: {base_url}
        api_key_env_var: CLAUDE_KEY
        headers:
          anthropic-version: "{VERSION}"
        max_retries: 0
        models:
          claude-x:
            tokenizer: upstream
            limits: {{{limits}}}
        """)
    return tmp_path


def test_anthropic_count_tokens_is_the_measure(tmp_path: Path, claude_fake: FakeAnthropic) -> None:
    """The fake counts words + 4 a message: 54 here, which o200k would not say."""
    with serve_proxy(claude_backend(tmp_path, claude_fake.base_url), environ={"CLAUDE_KEY": "k"}) as proxy:
        first = chat(proxy, "claude:claude-x")
        again = chat(proxy, "claude:claude-x")
    assert local_count(WORDS) != 54
    for response in (first, again):
        assert response.status_code == 400
        assert response.json()["detail"]["details"] == {"model": "claude-x", "limit": 10, "measured": 54}
    counts = [r for r in claude_fake.requests if r.path == COUNT_PATH]
    assert len(counts) == 1, "the second identical request was answered from the memo"
    assert counts[0].headers["x-api-key"] == "k"
    assert set(counts[0].body) == {"model", "messages"}, "no max_tokens: count_tokens refuses it"
    assert claude_fake.message_requests() == []


def test_the_proxys_count_tokens_answers_the_backends_count(tmp_path: Path, claude_fake: FakeAnthropic) -> None:
    config = claude_backend(tmp_path, claude_fake.base_url, "max_input_tokens: 100000")
    with serve_proxy(config, environ={"CLAUDE_KEY": "k"}) as proxy:
        client = anthropic.Anthropic(base_url=proxy.url + "/anthropic", api_key="c", max_retries=0, timeout=20)
        counted = client.messages.count_tokens(model="claude:claude-x", system="Be brief.",
                                               messages=[{"role": "user", "content": WORDS}])
        reply = client.messages.create(model="claude:claude-x", max_tokens=50, system="Be brief.",
                                       messages=[{"role": "user", "content": WORDS}])
    assert counted.input_tokens == 2 + 54  # the system prompt's words, the message's
    assert reply.content[0].type == "text"
    assert len([r for r in claude_fake.requests if r.path == COUNT_PATH]) == 1, \
        "the size alone proved the message fits: counted once, for count_tokens"


def test_gemini_count_tokens_is_the_measure(tmp_path: Path, gemini_fake: FakeGemini) -> None:
    write_backend(tmp_path, "g", f"""\
        backend_type: gemini
        api_base_url: {gemini_fake.base_url}
        api_key_env_var: G_KEY
        max_retries: 0
        models:
          gemini-2.5-flash:
            tokenizer: upstream
            limits: {{max_input_tokens: 10}}
        """)
    with serve_proxy(tmp_path, environ={"G_KEY": "k"}) as proxy:
        client = genai.Client(api_key="c", http_options=types.HttpOptions(base_url=proxy.url, api_version="v1beta",
                                                                          timeout=20_000))
        with pytest.raises(genai.errors.ClientError) as raised:
            client.models.generate_content(model="g:gemini-2.5-flash", contents=WORDS)
    assert raised.value.code == 400
    assert "Input token limit exceeded" in str(raised.value)
    counts = [r for r in gemini_fake.requests if r.rpc == "countTokens"]
    assert len(counts) == 1
    assert counts[0].path == "/v1beta/models/gemini-2.5-flash:countTokens"
    assert "contents" in counts[0].body["generateContentRequest"]
    assert gemini_fake.generate_requests() == []


def openai_backend(tmp_path: Path, base_url: str, limits: str = "max_input_tokens: 10") -> Path:
    write_backend(tmp_path, "local", f"""\
        backend_type: custom
        api_base_url: {base_url}
        max_retries: 0
        models:
          qwen:
            tokenizer: upstream
            limits: {{{limits}}}
        """)
    return tmp_path


def test_vllm_tokenize_counts_the_templated_conversation(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.tokenize = "vllm"
    with serve_proxy(openai_backend(tmp_path, fake.base_url)) as proxy:
        response = chat(proxy, "local:qwen")
    assert response.status_code == 400
    assert response.json()["detail"]["details"]["measured"] == 54 + TEMPLATE_TOKENS
    [request] = fake.tokenize_requests()
    assert request.path == "/tokenize", "beside /v1, where vLLM serves it"
    assert request.body["messages"] == [{"role": "user", "content": WORDS}]
    assert request.body["model"] == "qwen"


def test_llamacpp_tokenize_counts_the_text_and_the_proxy_adds_the_framing(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.tokenize = "llamacpp"
    with serve_proxy(openai_backend(tmp_path, fake.base_url)) as proxy:
        response = chat(proxy, "local:qwen")
    assert response.status_code == 400
    words_of_content = 1 + 50  # "user" and the message
    assert response.json()["detail"]["details"]["measured"] == words_of_content + 3 + 3


def test_a_count_that_fits_lets_the_request_through(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.tokenize = "vllm"
    text = "word " * 3_000
    with serve_proxy(openai_backend(tmp_path, fake.base_url, "context_window: 4000")) as proxy:
        response = chat(proxy, "local:qwen", text, max_tokens=2_000)
    assert response.status_code == 200
    counted = 3_000 + 4 + TEMPLATE_TOKENS
    assert response.headers["x-lip-max-tokens-lowered"] == f"2000->{4_000 - counted} (context_window)"
    assert fake.chat_requests()[0].body["max_tokens"] == 4_000 - counted


@pytest.mark.parametrize("failure", ["no endpoint", "error status"])
def test_falls_back_to_the_local_count_with_one_warning(tmp_path: Path, fake: FakeOpenAI,
                                                        caplog: pytest.LogCaptureFixture, failure: str) -> None:
    fake.tokenize = None if failure == "no endpoint" else "vllm"
    fake.tokenize_status = 503
    caplog.set_level(logging.WARNING, logger="lip.limits")
    with serve_proxy(openai_backend(tmp_path, fake.base_url)) as proxy:
        first = chat(proxy, "local:qwen")
        second = chat(proxy, "local:qwen", WORDS + " more")
    for response, text in ((first, WORDS), (second, WORDS + " more")):
        assert response.status_code == 400
        assert response.json()["detail"]["details"]["measured"] == local_count(text)
    warnings = [r.getMessage() for r in caplog.records if "upstream token count is unavailable" in r.getMessage()]
    assert len(warnings) == 1, "at most once a minute a route"
    assert warnings[0].startswith("local:qwen: the upstream token count is unavailable (")
    assert warnings[0].endswith("counting locally with o200k_base")
    assert len(fake.tokenize_requests()) == 2


def test_an_unreachable_backend_falls_back_too(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    caplog.set_level(logging.WARNING, logger="lip.limits")
    config = claude_backend(tmp_path, f"http://127.0.0.1:{port}/v1")
    with serve_proxy(config, environ={"CLAUDE_KEY": "k"}) as proxy:
        response = chat(proxy, "claude:claude-x")
    assert response.status_code == 400
    assert response.json()["detail"]["details"]["measured"] == local_count(WORDS)
    assert any("is unreachable" in r.getMessage() and "counting locally" in r.getMessage() for r in caplog.records)


def test_the_mock_has_no_endpoint_and_counts_locally(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_backend(tmp_path, "m", """\
        backend_type: mock
        models:
          mock-model:
            tokenizer: upstream
            limits: {max_input_tokens: 10}
        """)
    caplog.set_level(logging.WARNING, logger="lip.limits")
    with serve_proxy(tmp_path) as proxy:
        response = chat(proxy, "m:mock-model")
    assert response.json()["detail"]["details"]["measured"] == local_count(WORDS)
    assert any("has no token counting endpoint" in r.getMessage() for r in caplog.records)
