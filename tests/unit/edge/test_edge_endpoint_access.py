"""The endpoints beside chat with client keys configured: 401s in each protocol's envelope, tier-filtered
model lists, admin-only /metrics, per-client stored Responses, slowed-down key guessers (in-process)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from asgi_harness import config_dir, serve

PROXY = """\
default_backend: main
clients:
  - {name: alice, key_env_var: ALICE_KEY, tier: basic}
  - {name: root, key_env_var: ROOT_KEY, admin: true}
tiers:
  basic: {backends: ["other:*", "mock:*"]}
"""
ALICE_KEY = "alice-key-0123456789"
ROOT_KEY = "root-key-0123456789"
ALICE = {"authorization": f"Bearer {ALICE_KEY}"}
ROOT = {"x-api-key": ROOT_KEY}
NEEDS_KEY = "This proxy needs an API key (Authorization: Bearer, x-api-key, x-goog-api-key or ?key=)."


def run(tmp_path: Path, scenario: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        async with serve(config_dir(tmp_path, PROXY), {"ALICE_KEY": ALICE_KEY, "ROOT_KEY": ROOT_KEY}) as client:
            return await scenario(client)

    return asyncio.run(go())


def test_without_a_key_each_protocol_gets_its_401(tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.get("/v1/models"), await client.get("/v1beta/models", headers={"x-goog-api-key": "bad"}),
                await client.post("/v1/messages", json={}), await client.get("/v1/usage")]

    openai, gemini, anthropic, usage = run(tmp_path, scenario)
    assert (openai.status_code, openai.json()) == (401, {"error": {
        "message": NEEDS_KEY, "type": "authentication_error", "param": None, "code": "invalid_api_key"}})
    assert (gemini.status_code, gemini.json()) == (401, {"error": {
        "code": 401, "message": "Missing or invalid API key for this proxy.", "status": "UNAUTHENTICATED",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "invalid_api_key",
                     "domain": "lip"}]}})
    assert (anthropic.status_code, anthropic.json()) == (401, {"type": "error", "error": {
        "type": "authentication_error", "message": NEEDS_KEY, "code": "invalid_api_key"}})
    assert usage.status_code == 401  # before it says that recording is off


def test_model_lists_show_only_what_the_tier_allows(tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.get("/v1/models", headers=ALICE), await client.get(f"/v1beta/models?key={ALICE_KEY}"),
                await client.get("/v1/models", headers=ROOT)]

    alice, alice_gemini, root = run(tmp_path, scenario)
    assert [m["id"] for m in alice.json()["data"]] == ["mock:mock-model", "other:gpt-4o-mini"]
    assert [m["name"] for m in alice_gemini.json()["models"]] == ["models/mock:mock-model", "models/other:gpt-4o-mini"]
    assert [m["id"] for m in root.json()["data"]] == ["main:gpt-4o", "mock:mock-model", "other:gpt-4o-mini"]


def test_metrics_are_for_admin_clients(tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.get("/metrics"), await client.get("/metrics", headers=ALICE),
                await client.get("/metrics", headers=ROOT)]

    anonymous, alice, root = run(tmp_path, scenario)
    assert anonymous.status_code == 401
    assert (alice.status_code, alice.json()) == (403, {"error": {
        "message": "Client 'alice' may not read /metrics: it is for admin clients (proxy.yaml metrics.access).",
        "type": "permission_error", "param": None, "code": "metrics_forbidden"}})
    assert root.status_code == 200 and root.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE lip_requests_total counter" in root.text


def test_metrics_access_clients_or_public(tmp_path: Path) -> None:
    async def statuses(access: str) -> list[int]:
        root = config_dir(tmp_path / access, PROXY + f"metrics: {{access: {access}}}\n")
        async with serve(root, {"ALICE_KEY": ALICE_KEY, "ROOT_KEY": ROOT_KEY}) as client:
            return [(await client.get("/metrics", headers=h)).status_code for h in ({}, ALICE, ROOT)]

    assert asyncio.run(statuses("clients")) == [401, 200, 200]
    assert asyncio.run(statuses("public")) == [200, 200, 200]


def test_health_needs_no_key(tmp_path: Path) -> None:
    response = run(tmp_path, lambda client: client.get("/health"))
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_a_stored_response_belongs_to_the_client_that_made_it(tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> tuple[str, list[httpx.Response]]:
        created = await client.post("/v1/responses", headers=ALICE, json={"model": "mock:mock-model", "input": "hi"})
        assert created.status_code == 200, created.text
        rid = created.json()["id"]
        path = f"/v1/responses/{rid}"
        return rid, [await client.get(path, headers=ROOT), await client.delete(path, headers=ROOT),
                     await client.get(path), await client.get(path, headers=ALICE)]

    rid, (root_get, root_delete, anonymous, alice) = run(tmp_path, scenario)
    assert root_get.status_code == root_delete.status_code == 404  # even an admin client: not its response
    assert root_get.json()["error"]["message"] == f"Response with id '{rid}' not found."
    assert anonymous.status_code == 401
    assert alice.status_code == 200 and alice.json()["id"] == rid


def test_a_tier_that_does_not_allow_the_model_is_a_403(tmp_path: Path) -> None:
    response = run(tmp_path, lambda client: client.post(
        "/v1/chat/completions", headers=ALICE, json={"model": "main:gpt-4o", "messages": [{"role": "user",
                                                                                          "content": "hi"}]}))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "model_not_allowed"
    assert response.json()["error"]["message"] == (
        "Client 'alice' (tier basic) may not use main:gpt-4o; its tier allows other:*, mock:*.")


def test_an_address_that_keeps_guessing_is_told_when_to_retry(tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.get("/v1/models", headers={"x-api-key": f"guess-{i}"}) for i in range(6)]

    responses = run(tmp_path, scenario)
    assert [r.status_code for r in responses] == [401] * 5 + [429]
    blocked = responses[-1]
    assert blocked.headers["Retry-After"] == "1"
    assert blocked.json()["error"]["code"] == "too_many_failed_keys"
    assert blocked.json()["error"]["type"] == "rate_limit_error"


def test_usage_shows_a_client_its_own_records_and_an_admin_everyones(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'usage.db'}"
    chat = {"model": "mock:mock-model", "messages": [{"role": "user", "content": "hi"}]}

    async def go() -> list[httpx.Response]:
        root = config_dir(tmp_path / "config", PROXY)
        async with serve(root, {"ALICE_KEY": ALICE_KEY, "ROOT_KEY": ROOT_KEY}, usage_store=store) as client:
            answers = [await client.post("/v1/chat/completions", headers=h, json=chat) for h in (ALICE, ROOT)]
            return [*answers, *[await client.get("/v1/usage" + query, headers=headers) for headers, query in (
                (ALICE, ""), (ALICE, "?client=root"), (ROOT, ""), (ROOT, "?group_by=client"), (ROOT, "?since=bogus"))]]

    alice_chat, _, alice, alice_asks_roots, root, grouped, bogus = asyncio.run(go())
    usage = alice_chat.json()["usage"]
    (record,) = alice.json()["records"]
    assert (record["client"], record["tier"], record["backend"], record["model"]) == ("alice", "basic", "mock",
                                                                                      "mock-model")
    assert (record["input_tokens"], record["output_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert (record["surface"], record["status"], record["stream"]) == ("openai", 200, False)
    assert alice_asks_roots.json() == alice.json()  # a client's own records only, whatever it asks
    assert sorted(r["client"] for r in root.json()["records"]) == ["alice", "root"]
    groups = grouped.json()
    assert [(g["key"], g["requests"]) for g in groups["groups"]] == [("alice", 1), ("root", 1)]
    assert groups["totals"]["requests"] == 2
    assert (bogus.status_code, bogus.json()["error"]["param"]) == (400, "since")
