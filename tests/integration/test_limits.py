"""Context-window enforcement and RPM/TPM limits over real sockets, as the user's document shows them:
``measured`` is the tokenizer's count (never a hidden multiple); a too-large output request is lowered
(or refused with ``output_policy: reject``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import openai
import pytest

from fakes.openai_upstream import FakeOpenAI
from integration.conftest import ProxyServer, serve_proxy, write_backend
from shared_data import shared_encodings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "config" / "backends" / "large-context"


def o200k(text: str) -> int:
    return len(shared_encodings()["o200k_base"].encode(text))


def chat_tokens(text: str) -> int:
    """OpenAI's count for one user message: 3 + role + content, plus 3 priming the reply."""
    return 3 + o200k("user") + o200k(text) + 3


def large_context(tmp_path: Path, fake: FakeOpenAI, tokenizer: str | None = None, limits: str = "") -> Path:
    """The user's large-context example, pointed at the fake upstream (``limits``: more limit keys)."""
    target = tmp_path / "backends" / "large-context"
    shutil.copytree(EXAMPLE, target)
    text = (target / "backend.yaml").read_text().replace("https://api.example.com/v1", fake.base_url)
    if tokenizer:
        text = text.replace('  "large-context-model":\n', f'  "large-context-model":\n    tokenizer: {tokenizer}\n')
    if limits:
        text = text.replace("    limits:\n", f"    limits:\n      {limits}\n")
    (target / "backend.yaml").write_text(text)
    return tmp_path


def post(proxy: ProxyServer, **body: object) -> httpx.Response:
    return httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=30)


# About 225,000 o200k tokens: over the example's 200,000 input limit.
BIG = "The quick brown fox jumps over the lazy dog. " * 22_500


def test_input_over_the_limit_gets_exactly_the_documented_body(tmp_path: Path, fake: FakeOpenAI) -> None:
    config = large_context(tmp_path, fake, tokenizer="o200k_base")
    with serve_proxy(config, environ={"LARGE_CONTEXT_API_KEY": "k"}) as proxy:
        response = post(proxy, model="large-context:large-context-model",
                        messages=[{"role": "user", "content": BIG}])
    assert response.status_code == 400
    measured = chat_tokens(BIG)
    assert 220_000 < measured < 230_000
    body = response.json()
    assert body["detail"] == {
        "code": "input_limit_exceeded",
        "message": "Input token limit exceeded",
        "details": {"model": "large-context-model", "limit": 200000, "measured": measured},
    }
    assert body["error"]["code"] == "input_limit_exceeded"
    assert fake.chat_requests() == [], "nothing reached the upstream"


def test_an_unknown_family_is_measured_with_its_true_count(tmp_path: Path, fake: FakeOpenAI) -> None:
    """The issue's example: 225,000 tokens to the guide's large-context-model (no tokenizer: key) answer
    ``measured`` = the count (it was 270,008, the count x 1.2); 170,000 tokens pass."""
    with serve_proxy(large_context(tmp_path, fake), environ={"LARGE_CONTEXT_API_KEY": "k"}) as proxy:
        over = post(proxy, model="large-context:large-context-model", messages=[{"role": "user", "content": BIG}])
        text = "word " * 170_000  # 170,000 o200k tokens: under the limit (over it when it was multiplied)
        under = post(proxy, model="large-context:large-context-model", messages=[{"role": "user", "content": text}])
    assert over.status_code == 400
    assert over.json()["detail"]["details"] == {"model": "large-context-model", "limit": 200000,
                                                "measured": chat_tokens(BIG)}
    assert under.status_code == 200
    assert len(fake.chat_requests()) == 1


def test_a_7000_token_prompt_passes_an_8000_token_input_limit(tmp_path: Path, fake: FakeOpenAI) -> None:
    write_backend(tmp_path, "internal", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        models:
          company-model:
            limits: {{context_window: 16000, max_input_tokens: 8000, max_output_tokens: 4000}}
        """)
    text = "The quick brown fox jumps over the lazy dog. " * 700
    assert 6_900 < chat_tokens(text) < 7_100
    with serve_proxy(tmp_path) as proxy:
        response = post(proxy, model="internal:company-model", messages=[{"role": "user", "content": text}])
    assert response.status_code == 200, response.text
    assert fake.chat_requests()[0].body["max_tokens"] == 4_000


def test_a_margin_is_the_operators_choice(tmp_path: Path, fake: FakeOpenAI) -> None:
    """With limits.token_count_margin: 0.1 the same 190,000-token prompt is refused, measured = the count."""
    text = "word " * 190_000
    config = large_context(tmp_path, fake, limits="token_count_margin: 0.1")
    with serve_proxy(config, environ={"LARGE_CONTEXT_API_KEY": "k"}) as proxy:
        response = post(proxy, model="large-context:large-context-model", messages=[{"role": "user", "content": text}])
    assert response.status_code == 400
    detail = response.json()["detail"]
    measured = chat_tokens(text)
    assert detail["details"] == {"model": "large-context-model", "limit": 200000, "measured": measured}
    assert "10% token_count_margin" in detail["message"]
    assert fake.chat_requests() == []


def test_openai_sdk_raises_bad_request_with_the_code(tmp_path: Path, fake: FakeOpenAI) -> None:
    config = large_context(tmp_path, fake, tokenizer="o200k_base")
    with serve_proxy(config, environ={"LARGE_CONTEXT_API_KEY": "k"}) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.BadRequestError) as raised:
            client.chat.completions.create(model="large-context:large-context-model",
                                           messages=[{"role": "user", "content": BIG}])
    assert raised.value.code == "input_limit_exceeded"
    assert raised.value.status_code == 400


def fast_model(tmp_path: Path, fake: FakeOpenAI, policy: str = "") -> Path:
    """The user's multi-model example's fast-model: a 4096 window, 3000 input, no output limit."""
    extra = f", output_policy: {policy}" if policy else ""
    write_backend(tmp_path, "multi", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        models:
          fast-model:
            tokenizer: o200k_base
            limits: {{context_window: 4096, max_input_tokens: 3000, requests_per_minute: 120{extra}}}
        """)
    return tmp_path


TEXT_2500 = "The quick brown fox jumps over the lazy dog. " * 250  # about 2,500 tokens


def test_output_limit_exceeded_with_the_reject_policy(tmp_path: Path, fake: FakeOpenAI) -> None:
    config = large_context(tmp_path, fake, tokenizer="o200k_base", limits="output_policy: reject")
    with serve_proxy(config, environ={"LARGE_CONTEXT_API_KEY": "k"}) as proxy:
        response = post(proxy, model="large-context:large-context-model", max_tokens=70_000,
                        messages=[{"role": "user", "content": "hi"}])
    assert response.status_code == 400
    assert response.json()["detail"] == {
        "code": "output_limit_exceeded", "message": "Output token limit exceeded",
        "details": {"model": "large-context-model", "limit": 62144, "measured": 70000},
    }
    assert fake.chat_requests() == []


def test_context_window_exceeded_by_input_plus_requested_output_with_reject(tmp_path: Path,
                                                                          fake: FakeOpenAI) -> None:
    messages = [{"role": "user", "content": TEXT_2500}]
    with serve_proxy(fast_model(tmp_path, fake, policy="reject")) as proxy:
        too_much = post(proxy, model="multi:fast-model", max_tokens=2_000, messages=messages)
        fits = post(proxy, model="multi:fast-model", max_tokens=1_000, messages=messages)
    input_tokens = chat_tokens(TEXT_2500)
    assert 2_400 < input_tokens < 2_600
    assert too_much.status_code == 400
    assert too_much.json()["detail"] == {
        "code": "context_window_exceeded", "message": "Context window exceeded",
        "details": {"model": "fast-model", "limit": 4096, "measured": input_tokens + 2_000},
    }
    assert fits.status_code == 200
    assert len(fake.chat_requests()) == 1
    assert fake.chat_requests()[0].body["max_tokens"] == 1_000


def test_no_client_output_limit_sends_one_that_keeps_the_limits(tmp_path: Path, fake: FakeOpenAI) -> None:
    large_context(tmp_path, fake, tokenizer="o200k_base")
    fast_model(tmp_path, fake)
    with serve_proxy(tmp_path, environ={"LARGE_CONTEXT_API_KEY": "k"}) as proxy:
        capped = post(proxy, model="large-context:large-context-model", messages=[{"role": "user", "content": "hi"}])
        window = post(proxy, model="multi:fast-model", messages=[{"role": "user", "content": TEXT_2500}])
    assert capped.status_code == window.status_code == 200
    first, second = fake.chat_requests()
    assert first.body["max_tokens"] == 62_144, "the model's max_output_tokens"
    assert second.body["max_tokens"] == 4_096 - chat_tokens(TEXT_2500), "what is left of the window"


def test_pathological_whitespace_gets_a_clean_answer(tmp_path: Path, fake: FakeOpenAI) -> None:
    config = large_context(tmp_path, fake, tokenizer="o200k_base")
    with serve_proxy(config, environ={"LARGE_CONTEXT_API_KEY": "k"}) as proxy:
        spaces = post(proxy, model="large-context:large-context-model",
                      messages=[{"role": "user", "content": " " * 1_000_000}])
        mixed = post(proxy, model="large-context:large-context-model",
                     messages=[{"role": "user", "content": "x" + " \t" * 600_000 + "a" * 300_000}])
        assert post(proxy, model="large-context:large-context-model",
                    messages=[{"role": "user", "content": "still alive?"}]).status_code == 200
    assert spaces.status_code in (200, 400)
    assert mixed.status_code in (200, 400)
    if spaces.status_code == 400:
        assert spaces.json()["detail"]["code"] == "input_limit_exceeded"


def rate_limited(tmp_path: Path, fake: FakeOpenAI, limits: str) -> Path:
    write_backend(tmp_path, "rl", f"backend_type: custom\napi_base_url: {fake.base_url}\nmodels:\n"
                                  f"  gpt-4o:\n    limits:\n{limits}")
    return tmp_path


def test_requests_per_minute_gives_429_with_retry_after_and_headers(tmp_path: Path, fake: FakeOpenAI) -> None:
    config = rate_limited(tmp_path, fake, "      requests_per_minute: 2\n")
    with serve_proxy(config) as proxy:
        responses = [post(proxy, model="rl:gpt-4o", messages=[{"role": "user", "content": "hi"}]) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    first, second, third = responses
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert first.headers["x-ratelimit-reset-requests"].endswith(("s", "ms"))
    assert third.json()["error"]["code"] == "rate_limit_exceeded"
    assert 25 <= int(third.headers["retry-after"]) <= 31, "one request refills in 30 s at 2/min"
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(fake.chat_requests()) == 2


def test_tokens_per_minute_reserves_then_reconciles_with_reported_usage(tmp_path: Path, fake: FakeOpenAI) -> None:
    config = rate_limited(tmp_path, fake, "      tokens_per_minute: 1000\n")
    ask = {"model": "rl:gpt-4o", "max_tokens": 450, "messages": [{"role": "user", "content": "hi there"}]}
    with serve_proxy(config) as proxy:
        first = post(proxy, **ask)
        second = post(proxy, **ask)
        third = post(proxy, **ask)  # admitted only because the first two were reconciled to their real usage
        huge = post(proxy, **{**ask, "max_tokens": 990})
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 200]
    reserved = chat_tokens("hi there") + 450
    assert 1000 - reserved - 2 <= int(first.headers["x-ratelimit-remaining-tokens"]) <= 1000 - reserved + 2
    assert huge.status_code == 429
    assert huge.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(huge.headers["retry-after"]) >= 1
    assert huge.headers["x-ratelimit-limit-tokens"] == "1000"
