"""Hostile requests and hostile upstreams, over real sockets: selectors that would freeze the proxy or
break a header, model names that would climb out of an upstream's path, numbers an upstream sends
that no clock or header can hold."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fakes.gemini_upstream import FakeGemini, GeminiBehaviour
from fakes.openai_upstream import Behaviour, FakeOpenAI
from integration.conftest import serve_proxy, write_backend
from lip.routing.selector import MAX_LENGTH, MAX_ROUTES

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as upstream:
        yield upstream


def passthrough(tmp_path: Path, fake: FakeOpenAI) -> Path:
    write_backend(tmp_path, "up", f"backend_type: custom\napi_base_url: {fake.base_url}\nmax_retries: 0\n"
                                  "passthrough_models: true\nmodels:\n  ok: {}\n")
    return tmp_path


def chat(url: str, model: str, **extra: object) -> httpx.Response:
    return httpx.post(url + CHAT, json={"model": model, "messages": MESSAGES, **extra}, timeout=20)


def test_a_selector_of_thousands_of_routes_is_refused_naming_the_cap(tmp_path: Path, fake: FakeOpenAI) -> None:
    """`^`.join(8000 routes) took 10.7 s of event-loop time; now a 400 that names the cap, on every surface."""
    huge = "^".join(["up:ok"] * 8000)
    with serve_proxy(passthrough(tmp_path, fake)) as proxy:
        response = chat(proxy.url, huge)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid_selector" and error["param"] == "model"
        assert f"at most {MAX_ROUTES}" in error["message"] and "8000 routes" in error["message"]
        anthropic = httpx.post(proxy.url + "/v1/messages", json={"model": "|".join(["up:ok"] * 100),
                                                                 "max_tokens": 5, "messages": MESSAGES}, timeout=20)
        assert anthropic.status_code == 400 and anthropic.json()["type"] == "error"
        assert f"at most {MAX_ROUTES}" in anthropic.json()["error"]["message"]
        long = chat(proxy.url, "up:" + "x" * (MAX_LENGTH + 1))
        assert long.status_code == 400 and f"at most {MAX_LENGTH}" in long.json()["error"]["message"]
        most = chat(proxy.url, "^".join(["up:ok"] * MAX_ROUTES))  # the cap itself is served
        assert most.status_code == 200, most.text
        assert httpx.get(proxy.url + "/health", timeout=20).status_code == 200
    assert len(fake.chat_requests()) == 1  # nothing refused reached the upstream


def test_model_names_that_cannot_go_in_a_header(tmp_path: Path, fake: FakeOpenAI) -> None:
    """`up:oké中` was a plain-text 500 after the upstream was paid; CR/LF/NUL dropped the connection."""
    with serve_proxy(passthrough(tmp_path, fake)) as proxy:
        unicode = chat(proxy.url, "up:oké中")
        assert unicode.status_code == 200, unicode.text
        assert unicode.headers["x-lip-model"] == "ok%C3%A9%E4%B8%AD"
        assert urllib.parse.unquote(unicode.headers["x-lip-model"]) == "oké中"
        assert fake.chat_requests()[0].body["model"] == "oké中"
        for bad in ("up:a\r\nx-evil: 1", "up:a\x00b", "up:a\nb", "up:\x7f"):
            response = chat(proxy.url, bad)
            assert response.status_code == 400, bad
            error = response.json()["error"]
            assert error["code"] == "invalid_selector" and "control character" in error["message"]
        streamed = chat(proxy.url, "up:a\rb", stream=True)
        assert streamed.status_code == 400 and streamed.json()["error"]["code"] == "invalid_selector"
        gemini = httpx.post(proxy.url + "/v1beta/models/up:a%0D%0Ab:generateContent",
                            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, timeout=20)
        assert gemini.status_code == 400 and gemini.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert len(fake.chat_requests()) == 1


def test_gemini_model_names_cannot_climb_out_of_the_upstream_path(tmp_path: Path, gemini: FakeGemini) -> None:
    """`gem:x/../../../../etc` made the proxy POST /etc:generateContent with the operator's key."""
    write_backend(tmp_path, "gem", f"backend_type: custom\nprotocol: gemini\napi_base_url: {gemini.base_url}\n"
                                   "api_key_env_var: GEM_KEY\nmax_retries: 0\npassthrough_models: true\n"
                                   "models:\n  gemini-2.5-flash: {}\n")
    with serve_proxy(tmp_path, environ={"GEM_KEY": "gm-operator-key-123456"}) as proxy:
        for model in ("gem:x/../../../../etc", "gem:..", "gem:a#frag", "gem:%2e%2e%2fetc"):
            gemini.enqueue(GeminiBehaviour())
            response = chat(proxy.url, model)
            assert response.status_code == 200, (model, response.text)
        streamed = chat(proxy.url, "gem:../../x", stream=True)
        assert streamed.status_code == 200
    paths = [r.path for r in gemini.requests]
    assert len(paths) == 5 and all(p.startswith("/v1beta/models/") for p in paths), paths
    assert [r.model for r in gemini.requests] == ["x/../../../../etc", "..", "a#frag", "%2e%2e%2fetc", "../../x"]


@pytest.mark.parametrize("headers", [{"Retry-After": "inf"}, {"retry-after-ms": "1e400"}, {"Retry-After": "nan"},
                                     {"Retry-After": "1e308"}, {"Retry-After": "-5"}])
def test_retry_after_numbers_no_clock_can_hold(tmp_path: Path, fake: FakeOpenAI, headers: dict[str, str]) -> None:
    """`Retry-After: inf` (or `retry-after-ms: 1e400`) was a plain-text 500 (OverflowError)."""
    with serve_proxy(passthrough(tmp_path, fake)) as proxy:
        fake.enqueue(Behaviour(status=429, headers=headers))
        response = chat(proxy.url, "up:ok")
        assert response.status_code == 429
        assert response.json()["error"]["type"] == "rate_limit_error"
        wait = response.headers.get("retry-after")
        assert wait is None or 1 <= int(wait) <= 86_400
        fake.enqueue(Behaviour(status=503, headers=headers))
        streamed = chat(proxy.url, "up:ok", stream=True)
        assert streamed.status_code == 503 and streamed.json()["error"]["code"]


def test_gemini_retry_delay_no_clock_can_hold(tmp_path: Path, gemini: FakeGemini) -> None:
    write_backend(tmp_path, "gem", f"backend_type: custom\nprotocol: gemini\napi_base_url: {gemini.base_url}\n"
                                   "max_retries: 0\nmodels:\n  gemini-2.5-flash: {}\n")
    with serve_proxy(tmp_path) as proxy:
        gemini.enqueue(GeminiBehaviour(status=429, retry_after="1e400"))
        response = httpx.post(proxy.url + "/v1beta/models/gem:gemini-2.5-flash:generateContent",
                              json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, timeout=20)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "86400"
    details = response.json()["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "86400s"} in details
