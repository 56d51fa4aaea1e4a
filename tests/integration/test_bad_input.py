"""Bad input gets a 4xx in OpenAI's error shape that names what was wrong; never a 500 or a hang."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from integration.conftest import ProxyServer, serve_proxy, write_backend

URL = "/v1/chat/completions"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    config: Path = tmp_path_factory.mktemp("config")
    write_backend(config, "strict", """\
        backend_type: custom
        api_base_url: http://127.0.0.1:9/v1
        models:
          company-gpt-large: {}
          company-gpt-small: {}
        """)
    with serve_proxy(config, default_backend="mock") as server:
        yield server


def post(proxy: ProxyServer, content: bytes | None = None, **body: object) -> httpx.Response:
    if content is not None:
        return httpx.post(proxy.url + URL, content=content, headers={"content-type": "application/json"})
    return httpx.post(proxy.url + URL, json=body)


def error_of(response: httpx.Response) -> dict[str, object]:
    assert response.headers["content-type"] == "application/json"
    assert response.headers.get("x-request-id")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error  # type: ignore[no-any-return]


HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"model": "m"}, "messages", "messages"),
        ({"model": "m", "messages": []}, "messages", "at least one"),
        ({"model": "m", "messages": "hello"}, "messages", "array"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "one of"),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content", "content"),
        ({"model": "m", "messages": [*HI, {"role": "user", "content": 5}]}, "messages[1].content", "string"),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id", "tool_call_id"),
        ({"model": "m", "messages": HI, "temperature": "hot"}, "temperature", "number"),
        ({"model": "m", "messages": HI, "temperature": 7}, "temperature", "between"),
        ({"model": "m", "messages": HI, "max_tokens": -1}, "max_tokens", "integer"),
        ({"model": "m", "messages": HI, "stream": "yes"}, "stream", "boolean"),
        ({"model": 42, "messages": HI}, "model", "string"),
        ({"model": "m", "messages": HI, "tools": [{"type": "function"}]}, "tools[0].function", "name"),
        ({"model": "m", "messages": HI, "n": 3}, "n", "n=1"),
    ],
)
def test_invalid_bodies_are_400_naming_the_field(
    proxy: ProxyServer, body: dict[str, object], param: str, fragment: str
) -> None:
    response = post(proxy, **body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == param
    assert fragment in str(error["message"])


@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]", b"\xff\xfe"])
def test_malformed_json_is_400(proxy: ProxyServer, content: bytes) -> None:
    response = post(proxy, content=content)
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


def test_unknown_backend_is_404_listing_backends(proxy: ProxyServer) -> None:
    response = post(proxy, model="strickt:company-gpt-large", messages=HI)
    assert response.status_code == 404
    message = str(error_of(response)["message"])
    assert "did you mean 'strict'" in message
    assert "mock" in message and "strict" in message


def test_unknown_model_on_a_listing_backend_is_404_listing_its_models(proxy: ProxyServer) -> None:
    response = post(proxy, model="strict:company-gpt-larg", messages=HI)
    assert response.status_code == 404
    message = str(error_of(response)["message"])
    assert "did you mean 'company-gpt-large'" in message
    assert "company-gpt-small" in message


def test_wrong_method_and_unknown_path(proxy: ProxyServer) -> None:
    wrong = httpx.get(proxy.url + URL)
    assert wrong.status_code == 405
    assert error_of(wrong)["code"] == "method_not_allowed"
    missing = httpx.post(proxy.url + "/v1/nothing", json={})
    assert missing.status_code == 404
    assert "/v1/nothing" in str(error_of(missing)["message"])


def test_backend_without_default_model_needs_a_model(tmp_path: Path) -> None:
    write_backend(tmp_path, "open", "backend_type: custom\napi_base_url: http://127.0.0.1:9/v1\n"
                                    "passthrough_models: true\n")
    with serve_proxy(tmp_path) as proxy:
        response = post(proxy, messages=HI)
    assert response.status_code == 400
    assert "no default model" in str(error_of(response)["message"])


def test_wrong_method_and_unknown_paths_answer_in_the_protocol_of_their_prefix(proxy: ProxyServer) -> None:
    anthropic = httpx.get(proxy.url + "/v1/messages")
    assert anthropic.status_code == 405
    assert anthropic.json()["type"] == "error" and anthropic.json()["error"]["type"] == "invalid_request_error"
    missing = httpx.post(proxy.url + "/anthropic/v1/nothing", json={})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    gemini = httpx.get(proxy.url + "/v1beta/models/gemini-2.0-flash:generateContent")
    assert gemini.status_code == 405 and gemini.json()["error"]["code"] == 405
    unknown = httpx.post(proxy.url + "/v1beta/models/x:nothing", json={})
    assert unknown.status_code == 404 and unknown.json()["error"]["status"] == "NOT_FOUND"
    assert "x-request-id" in unknown.headers
