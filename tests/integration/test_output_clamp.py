"""Output limits clamp instead of failing real clients (issue 12), over real sockets with the official SDKs.

A client's output request (``max_tokens``, ``max_completion_tokens``, Responses ``max_output_tokens``,
Gemini ``generationConfig.maxOutputTokens``) above the model's ``max_output_tokens`` is lowered to it,
and input + output over ``context_window`` lowers the output to what fits; the response says so in
``x-lip-max-tokens-lowered``. A 400 only when the input alone does not fit, or with
``output_policy: reject`` (per model, or proxy-wide in proxy.yaml).
"""

from __future__ import annotations

from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types

from fakes.openai_upstream import FakeOpenAI
from integration.conftest import ProxyServer, serve_proxy, write_backend
from shared_data import shared_encodings

HEADER = "x-lip-max-tokens-lowered"
TEXT_2500 = "The quick brown fox jumps over the lazy dog. " * 250  # about 2,500 tokens


def chat_tokens(text: str) -> int:
    encoding = shared_encodings()["o200k_base"]
    return 3 + len(encoding.encode("user")) + len(encoding.encode(text)) + 3


def capped(tmp_path: Path, fake: FakeOpenAI, extra: str = "") -> Path:
    """A model like the one LiteLLM's Anthropic client met: a 16,384 output cap (and a 4,096 window one)."""
    write_backend(tmp_path, "up", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        models:
          capped:
            limits: {{context_window: 200000, max_output_tokens: 16384{extra}}}
          small:
            limits: {{context_window: 4096, max_input_tokens: 3500{extra}}}
        """)
    return tmp_path


def oai(proxy: ProxyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0, timeout=20)


def sent_max_tokens(fake: FakeOpenAI) -> list[object]:
    return [r.body.get("max_tokens", r.body.get("max_completion_tokens")) for r in fake.chat_requests()]


@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens"])
def test_openai_sdk_output_over_the_cap_is_lowered_with_a_header(tmp_path: Path, fake: FakeOpenAI,
                                                                 key: str) -> None:
    with serve_proxy(capped(tmp_path, fake)) as proxy:
        raw = oai(proxy).chat.completions.with_raw_response.create(
            model="up:capped", messages=[{"role": "user", "content": "hi"}], **{key: 128_000})  # type: ignore[arg-type]
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert raw.headers[HEADER] == "128000->16384 (max_output_tokens)"
    assert fake.chat_requests()[0].body[key] == 16_384


def test_anthropic_sdk_max_tokens_128000_is_lowered(tmp_path: Path, fake: FakeOpenAI) -> None:
    """LiteLLM's Anthropic client sent 128,000 and got 400 output_limit_exceeded; now it is served."""
    with serve_proxy(capped(tmp_path, fake)) as proxy:
        client = anthropic.Anthropic(base_url=proxy.url + "/anthropic", api_key="k", max_retries=0, timeout=20)
        raw = client.messages.with_raw_response.create(
            model="up:capped", max_tokens=128_000, messages=[{"role": "user", "content": "hi"}])
    assert raw.parse().content[0].type == "text"
    assert raw.headers[HEADER] == "128000->16384 (max_output_tokens)"
    assert sent_max_tokens(fake) == [16_384]


def test_responses_max_output_tokens_is_lowered(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(capped(tmp_path, fake)) as proxy:
        raw = oai(proxy).responses.with_raw_response.create(model="up:capped", input="hi",
                                                             max_output_tokens=100_000)
    assert raw.parse().output_text
    assert raw.headers[HEADER] == "100000->16384 (max_output_tokens)"
    assert sent_max_tokens(fake) == [16_384]


def test_gemini_max_output_tokens_is_lowered(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(capped(tmp_path, fake)) as proxy:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=proxy.url, api_version="v1beta",
                                                                          timeout=20_000))
        response = client.models.generate_content(
            model="up:capped", contents="hi", config=types.GenerateContentConfig(max_output_tokens=64_000))
        assert response.text
        headers = response.sdk_http_response.headers if response.sdk_http_response else {}
    assert (headers or {}).get(HEADER) == "64000->16384 (max_output_tokens)"
    assert sent_max_tokens(fake) == [16_384]


def test_a_stream_carries_the_header_too(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(capped(tmp_path, fake)) as proxy, httpx.stream(
        "POST", proxy.url + "/v1/chat/completions", timeout=20,
        json={"model": "up:capped", "max_tokens": 50_000, "stream": True,
              "messages": [{"role": "user", "content": "hi"}]}) as response:
        body = response.read().decode()
    assert response.status_code == 200
    assert response.headers[HEADER] == "50000->16384 (max_output_tokens)"
    assert "data: [DONE]" in body


def test_an_output_within_the_limits_is_sent_as_asked_without_a_header(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(capped(tmp_path, fake)) as proxy:
        raw = oai(proxy).chat.completions.with_raw_response.create(
            model="up:capped", max_tokens=1_000, messages=[{"role": "user", "content": "hi"}])
    assert HEADER not in raw.headers
    assert sent_max_tokens(fake) == [1_000]


def test_output_past_the_window_is_lowered_to_what_fits(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(capped(tmp_path, fake)) as proxy:
        raw = oai(proxy).chat.completions.with_raw_response.create(
            model="up:small", max_tokens=32_000, messages=[{"role": "user", "content": TEXT_2500}])
    room = 4_096 - chat_tokens(TEXT_2500)
    assert raw.headers[HEADER] == f"32000->{room} (context_window)"
    assert sent_max_tokens(fake) == [room]


def test_input_alone_over_the_window_is_still_a_400(tmp_path: Path, fake: FakeOpenAI) -> None:
    write_backend(tmp_path, "up", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        models:
          tiny:
            limits: {{context_window: 2000}}
        """)
    with serve_proxy(tmp_path) as proxy:
        response = httpx.post(proxy.url + "/v1/chat/completions", timeout=20, json={
            "model": "up:tiny", "max_tokens": 100, "messages": [{"role": "user", "content": TEXT_2500}]})
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == {"code": "context_window_exceeded", "message": "Context window exceeded",
                              "details": {"model": "tiny", "limit": 2000, "measured": chat_tokens(TEXT_2500)}}
    assert body["error"]["code"] == "context_window_exceeded"
    assert fake.chat_requests() == []


def test_reject_per_model_answers_the_guides_400(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(capped(tmp_path, fake, ", output_policy: reject")) as proxy:
        with pytest.raises(openai.BadRequestError) as raised:
            oai(proxy).chat.completions.create(model="up:capped", max_tokens=128_000,
                                               messages=[{"role": "user", "content": "hi"}])
        window = httpx.post(proxy.url + "/v1/chat/completions", timeout=20, json={
            "model": "up:small", "max_tokens": 2_000, "messages": [{"role": "user", "content": TEXT_2500}]})
    assert raised.value.code == "output_limit_exceeded"
    body = raised.value.response.json()
    assert body["detail"] == {"code": "output_limit_exceeded", "message": "Output token limit exceeded",
                              "details": {"model": "capped", "limit": 16384, "measured": 128000}}
    assert body["error"]["code"] == "output_limit_exceeded"
    assert window.status_code == 400
    assert window.json()["detail"]["details"] == {"model": "small", "limit": 4096,
                                                  "measured": chat_tokens(TEXT_2500) + 2_000}
    assert fake.chat_requests() == []


def test_reject_proxy_wide_and_a_model_that_clamps_anyway(tmp_path: Path, fake: FakeOpenAI) -> None:
    write_backend(tmp_path, "up", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        models:
          strict:
            limits: {{max_output_tokens: 16384}}
          lenient:
            limits: {{max_output_tokens: 16384, output_policy: clamp}}
        """)
    (tmp_path / "proxy.yaml").write_text("limits:\n  output_policy: reject\n")
    ask = {"max_tokens": 20_000, "messages": [{"role": "user", "content": "hi"}]}
    with serve_proxy(tmp_path) as proxy:
        strict = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "up:strict", **ask}, timeout=20)
        lenient = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "up:lenient", **ask}, timeout=20)
    assert strict.status_code == 400
    assert strict.json()["error"]["code"] == "output_limit_exceeded"
    assert lenient.status_code == 200
    assert lenient.headers[HEADER] == "20000->16384 (max_output_tokens)"
    assert sent_max_tokens(fake) == [16_384]
