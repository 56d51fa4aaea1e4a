"""The Gemini API at every version prefix its clients use: ``/v1`` (google-genai's default), ``/v1beta``,
``/v1alpha`` and none (LiteLLM's Gemini client with a custom base), on the mock backend.

``GET /v1/models`` and ``GET /models`` are also OpenAI's model list: a Google client (``x-goog-api-key``,
``?key=`` or the SDK's ``x-goog-api-client``) gets Gemini's, every other client OpenAI's.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types

from integration.conftest import ProxyServer, serve_proxy

MOCK_TEXT = "This is the mock backend of the LLM Interactive Proxy, answering as mock-model. You said: "
BODY = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}

_CLIENTS: list[genai.Client] = []


@pytest.fixture(scope="module")
def proxy() -> Iterator[ProxyServer]:
    with serve_proxy() as server:
        yield server


def client(proxy: ProxyServer, api_version: str | None) -> genai.Client:
    """google-genai as a user sets it up: a plain base_url, and the SDK's default version unless given."""
    options = types.HttpOptions(base_url=proxy.url, timeout=20_000)
    if api_version is not None:
        options = types.HttpOptions(base_url=proxy.url, api_version=api_version, timeout=20_000)
    made = genai.Client(api_key="client-key", http_options=options)
    _CLIENTS.append(made)  # a collected Client closes the HTTP client its modules share
    return made


@pytest.mark.parametrize("api_version", [None, "v1", "v1beta", "v1alpha"], ids=["default", "v1", "v1beta", "v1alpha"])
def test_genai_sdk_at_each_version(proxy: ProxyServer, api_version: str | None) -> None:
    gclient = client(proxy, api_version)
    answer = gclient.models.generate_content(model="mock-model", contents="hello there")
    assert answer.text is not None and answer.text.startswith(MOCK_TEXT + "hello there")
    pieces = [c.text for c in gclient.models.generate_content_stream(model="mock-model", contents="stream me")]
    assert "".join(p or "" for p in pieces).startswith(MOCK_TEXT + "stream me")
    counted = gclient.models.count_tokens(model="mock-model", contents="count these words")
    assert counted.total_tokens is not None and counted.total_tokens > 0
    names = [m.name for m in gclient.models.list()]
    assert "models/mock:mock-model" in names


def test_default_version_is_v1_on_the_wire(proxy: ProxyServer) -> None:
    """The SDK's default really is /v1 (the path the proxy failed on), seen through an httpx hook."""
    paths: list[str] = []
    hooked = httpx.Client(event_hooks={"request": [lambda r: paths.append(r.url.path)]}, timeout=20)
    gclient = genai.Client(api_key="client-key", http_options=types.HttpOptions(base_url=proxy.url,
                                                                                httpx_client=hooked))
    _CLIENTS.append(gclient)
    gclient.models.generate_content(model="mock-model", contents="hi")
    assert paths == ["/v1/models/mock-model:generateContent"]


@pytest.mark.parametrize("prefix", ["", "/v1", "/v1alpha", "/v1beta"])
def test_generate_without_sdk_at_each_prefix(proxy: ProxyServer, prefix: str) -> None:
    """LiteLLM's Gemini client posts ``/models/{model}:generateContent`` with no version at all."""
    response = httpx.post(f"{proxy.url}{prefix}/models/mock-model:generateContent", json=BODY,
                          headers={"x-goog-api-key": "client-key"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["candidates"][0]["content"]["parts"][0]["text"].startswith(MOCK_TEXT)
    streamed = httpx.post(f"{proxy.url}{prefix}/models/mock-model:streamGenerateContent?alt=sse", json=BODY,
                          timeout=10)
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert b"data: " in streamed.content
    counted = httpx.post(f"{proxy.url}{prefix}/models/mock-model:countTokens", json=BODY, timeout=10)
    assert counted.status_code == 200 and counted.json()["totalTokens"] > 0


def test_model_list_of_v1_is_told_apart_by_the_client(proxy: ProxyServer) -> None:
    oai = openai.OpenAI(base_url=proxy.url + "/v1", api_key="client-key", max_retries=0, timeout=20)
    assert "mock:mock-model" in [m.id for m in oai.models.list()]
    for path in ("/v1/models", "/models"):
        plain = httpx.get(proxy.url + path, timeout=10).json()
        assert plain["object"] == "list", path
        by_header = httpx.get(proxy.url + path, headers={"x-goog-api-key": "k"}, timeout=10).json()
        by_query = httpx.get(proxy.url + path + "?key=k", timeout=10).json()
        for gemini in (by_header, by_query):
            assert "models/mock:mock-model" in [m["name"] for m in gemini["models"]], path
    alpha = httpx.get(proxy.url + "/v1alpha/models", timeout=10).json()
    assert "models/mock:mock-model" in [m["name"] for m in alpha["models"]]


@pytest.mark.parametrize("path", ["/v1alpha/nothing-here", "/v1beta/files", "/v1/models/mock-model:embedThings",
                                  "/models/mock-model:predictLater"])
def test_unknown_urls_answer_in_geminis_envelope(proxy: ProxyServer, path: str) -> None:
    response = httpx.post(proxy.url + path, json=BODY, timeout=10)
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (404, "NOT_FOUND")
    assert path in error["message"]


def test_unknown_url_of_a_google_client_on_v1_is_in_geminis_envelope(proxy: ProxyServer) -> None:
    response = httpx.get(proxy.url + "/v1/cachedContents", headers={"x-goog-api-key": "k"}, timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"
    plain = httpx.get(proxy.url + "/v1/nothing", timeout=10)
    assert plain.json()["error"]["type"] == "invalid_request_error"  # OpenAI's envelope for everyone else


def test_sdk_error_at_v1_is_a_gemini_error(proxy: ProxyServer) -> None:
    with pytest.raises(errors.ClientError) as raised:
        client(proxy, None).models.generate_content(model="nope:x", contents="hi")
    assert (raised.value.code, raised.value.status) == (404, "NOT_FOUND")
