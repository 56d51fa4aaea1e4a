"""The endpoints beside chat (health, model lists, usage, stored Responses) and the 404/405 envelope
each path prefix gets, through the app ``lip.app.build`` makes, in-process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_harness import config_dir, serve

Scenario = Callable[[httpx.AsyncClient], Awaitable[Any]]


def run(tmp_path: Path, scenario: Scenario) -> Any:
    async def go() -> Any:
        async with serve(config_dir(tmp_path)) as client:
            return await scenario(client)

    return asyncio.run(go())


def get(path: str, method: str = "GET", **headers: str) -> Scenario:
    async def scenario(client: httpx.AsyncClient) -> httpx.Response:
        return await client.request(method, path, headers=headers)

    return scenario


def test_health_names_the_default_route_and_each_backends_state(tmp_path: Path) -> None:
    response = run(tmp_path, get("/health"))
    body = response.json()
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert (body["status"], body["default"]) == ("ok", "main")
    assert body["backends"]["ready"] == ["main", "mock", "other"]
    assert body["backends"]["unavailable"]["openai"] == "environment variable OPENAI_API_KEY is not set or empty"
    assert set(body["backends"]["unavailable"]).isdisjoint(body["backends"]["ready"])


def test_openai_model_list_with_limits(tmp_path: Path) -> None:
    response = run(tmp_path, get("/v1/models"))
    assert response.status_code == 200
    assert response.json() == {"object": "list", "data": [
        {"id": "main:gpt-4o", "object": "model", "created": 0, "owned_by": "main",
         "limits": {"context_window": 128000, "max_output_tokens": 4096}},
        {"id": "mock:mock-model", "object": "model", "created": 0, "owned_by": "mock",
         "limits": {"context_window": 128000, "max_output_tokens": 16384}},
        {"id": "other:gpt-4o-mini", "object": "model", "created": 0, "owned_by": "other"},
    ]}
    assert run(tmp_path / "again", get("/models")).json() == response.json()


GOOGLE_CALLS = [("/v1/models", {"x-goog-api-key": "k"}), ("/v1/models?key=k", {}),
                ("/models", {"x-goog-api-client": "genai-py"}), ("/v1beta/models", {}), ("/v1alpha/models", {})]


@pytest.mark.parametrize(("path", "headers"), GOOGLE_CALLS)
def test_a_google_client_gets_geminis_model_list(tmp_path: Path, path: str, headers: dict[str, str]) -> None:
    response = run(tmp_path, get(path, **headers))
    assert response.status_code == 200
    models = response.json()["models"]
    assert [m["name"] for m in models] == ["models/main:gpt-4o", "models/mock:mock-model", "models/other:gpt-4o-mini"]
    assert models[0] == {
        "name": "models/main:gpt-4o", "version": "lip", "displayName": "main:gpt-4o",
        "description": "main:gpt-4o, served by backend 'main' through LLM Interactive Proxy.",
        "inputTokenLimit": 128000, "outputTokenLimit": 4096,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"]}
    assert "inputTokenLimit" not in models[2] and "outputTokenLimit" not in models[2]


def openai_error(message: str, code: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def gemini_error(status: int, name: str, message: str, reason: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": name, "details": [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "lip"}]}}


def anthropic_error(kind: str, message: str, code: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message, "code": code}}


NOT_FOUND = [
    ("/nope", {}, openai_error("Unknown request URL: GET /nope.", "unknown_url")),
    ("/v1/chat/nope", {}, openai_error("Unknown request URL: GET /v1/chat/nope.", "unknown_url")),
    ("/v1/messages/nope", {}, anthropic_error("not_found_error", "Unknown request URL: GET /v1/messages/nope.",
                                              "unknown_url")),
    ("/anthropic/v1/nope", {}, anthropic_error("not_found_error", "Unknown request URL: GET /anthropic/v1/nope.",
                                               "unknown_url")),
    ("/v1beta/nope", {}, gemini_error(404, "NOT_FOUND", "Unknown request URL: GET /v1beta/nope.", "unknown_url")),
    ("/v1alpha/x", {}, gemini_error(404, "NOT_FOUND", "Unknown request URL: GET /v1alpha/x.", "unknown_url")),
    ("/nope", {"x-goog-api-key": "k"}, gemini_error(404, "NOT_FOUND", "Unknown request URL: GET /nope.",
                                                    "unknown_url")),
]


@pytest.mark.parametrize(("path", "headers", "body"), NOT_FOUND)
def test_an_unknown_path_gets_a_404_in_its_protocols_envelope(tmp_path: Path, path: str, headers: dict[str, str],
                                                              body: dict[str, Any]) -> None:
    response = run(tmp_path, get(path, **headers))
    assert (response.status_code, response.json()) == (404, body)


NOT_ALLOWED = [
    ("DELETE", "/v1/chat/completions", openai_error("Method DELETE is not allowed for /v1/chat/completions.",
                                                    "method_not_allowed")),
    ("PUT", "/health", openai_error("Method PUT is not allowed for /health.", "method_not_allowed")),
    ("POST", "/v1/models", openai_error("Method POST is not allowed for /v1/models.", "method_not_allowed")),
    ("GET", "/v1/messages", anthropic_error("invalid_request_error", "Method GET is not allowed for /v1/messages.",
                                            "method_not_allowed")),
    ("GET", "/v1beta/models/gemini-2.5-flash:generateContent", gemini_error(
        405, "UNIMPLEMENTED", "Method GET is not allowed for /v1beta/models/gemini-2.5-flash:generateContent.",
        "method_not_allowed")),
]


@pytest.mark.parametrize(("method", "path", "body"), NOT_ALLOWED)
def test_a_wrong_method_gets_a_405_in_its_protocols_envelope(tmp_path: Path, method: str, path: str,
                                                             body: dict[str, Any]) -> None:
    response = run(tmp_path, get(path, method))
    assert (response.status_code, response.json()) == (405, body)


def test_usage_with_recording_off_is_a_404(tmp_path: Path) -> None:
    response = run(tmp_path, get("/v1/usage"))
    assert (response.status_code, response.json()) == (
        404, openai_error("Usage recording is off (usage.store: none).", "usage_disabled"))


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_an_unknown_stored_response_is_a_404(tmp_path: Path, method: str) -> None:
    response = run(tmp_path, get("/v1/responses/resp_unknown123", method))
    assert (response.status_code, response.json()) == (404, openai_error(
        "Response with id 'resp_unknown123' not found.", "response_not_found", "response_id"))


def test_streaming_a_stored_response_is_refused(tmp_path: Path) -> None:
    response = run(tmp_path, get("/v1/responses/resp_1?stream=true"))
    assert (response.status_code, response.json()) == (400, openai_error(
        "Streaming a stored response is not supported by this proxy.", "unsupported_value", "stream"))


def test_a_stored_response_is_fetched_then_deleted_once(tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        created = await client.post("/v1/responses", json={"model": "mock:mock-model", "input": "Hello there"})
        assert created.status_code == 200, created.text
        rid = created.json()["id"]
        return [created, await client.get(f"/v1/responses/{rid}"), await client.delete(f"/v1/responses/{rid}"),
                await client.get(f"/v1/responses/{rid}"), await client.delete(f"/v1/responses/{rid}")]

    created, fetched, deleted, gone, again = run(tmp_path, scenario)
    rid = created.json()["id"]
    assert fetched.status_code == 200 and fetched.json() == created.json()
    assert created.json()["object"] == "response" and created.json()["model"] == "mock-model"
    assert (deleted.status_code, deleted.json()) == (200, {"id": rid, "object": "response.deleted", "deleted": True})
    assert gone.status_code == again.status_code == 404
    assert gone.json()["error"]["code"] == "response_not_found"


def test_readiness_after_start_up(tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.get("/ready"), await client.get("/health/ready"), await client.get("/health/live")]

    ready, health_ready, live = run(tmp_path, scenario)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.json()["checks"]["usage_store"] == "off" and ready.json()["checks"]["phase"] == "ready"
    assert health_ready.json()["status"] == "ready"
    assert live.status_code == 200 and live.json()["status"] == "ok"


def test_every_route_the_index_lists_is_served(tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response, list[Any]]:
        index = await client.get("/")
        head = await client.head("/")
        served = []
        for entries in index.json()["surfaces"].values():
            for entry in entries:
                method, path = entry.split(" ", 1)
                path = path.replace("{model}", "mock:mock-model").replace("{id}", "resp_x")
                body = b'{"model": "mock:mock-model", "messages": [], "contents": [], "input": "hi"}'
                response = await client.request(method, path, content=body if method == "POST" else None)
                served.append((entry, response.status_code, response.content))
        return index, head, served

    index, head, served = run(tmp_path, scenario)
    assert index.status_code == head.status_code == 200 and head.content == b""
    assert index.headers["content-type"] == "application/json"
    assert len(served) >= 20
    for entry, status, content in served:
        assert status != 405 and b"unknown_url" not in content, (entry, status, content[:200])
