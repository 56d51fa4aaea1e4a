"""Stored Responses shared by replicas through Redis: a previous_response_id chain that alternates
between two proxies (each its own app, one real Redis) keeps its whole conversation, and GET and
DELETE act on what the other replica stored. Driven by the official openai SDK."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from fakes.openai_upstream import FakeOpenAI
from integration.conftest import serve_proxy, write_backend
from integration.test_shared_limits import redis_url  # noqa: F401  (the module's real redis-server fixture)


def _config(tmp_path: Path, fake: FakeOpenAI, store: str) -> Path:
    write_backend(tmp_path, "main", f"backend_type: custom\napi_base_url: {fake.base_url}\nmodels:\n  gpt-4o: {{}}\n")
    (tmp_path / "proxy.yaml").write_text(f"default_backend: main\nlimits:\n  store: {store}\n")
    return tmp_path


@pytest.mark.parametrize("stream", [False, True])
def test_a_chain_alternating_between_replicas_keeps_its_conversation(
    tmp_path: Path, fake: FakeOpenAI, redis_url: str, stream: bool  # noqa: F811
) -> None:
    config = _config(tmp_path, fake, redis_url)
    with serve_proxy(config) as first, serve_proxy(config) as second:
        clients = [openai.OpenAI(base_url=p.url + "/v1", api_key="x", max_retries=0) for p in (first, second)]
        previous: str | None = None
        for turn in range(6):
            client = clients[turn % 2]
            extra = {"previous_response_id": previous} if previous else {}
            if stream:
                with client.responses.stream(model="gpt-4o", input=f"turn {turn}", **extra) as events:
                    previous = events.get_final_response().id
            else:
                previous = client.responses.create(model="gpt-4o", input=f"turn {turn}", **extra).id
        assert previous is not None
        read_back = [httpx.get(f"{p.url}/v1/responses/{previous}") for p in (first, second)]
        deleted = httpx.delete(f"{first.url}/v1/responses/{previous}")
        after = httpx.get(f"{second.url}/v1/responses/{previous}")
        continued = httpx.post(second.url + "/v1/responses", json={"model": "gpt-4o", "input": "again",
                                                                   "previous_response_id": previous})
    last = fake.chat_requests()[-1].body["messages"]
    users = [m["content"] for m in last if m["role"] == "user"]
    assert users == [f"turn {n}" for n in range(6)], "a turn lost the conversation another replica stored"
    assert [m["role"] for m in last].count("assistant") == 5
    assert [r.status_code for r in read_back] == [200, 200]
    assert read_back[0].json() == read_back[1].json() and read_back[0].json()["id"] == previous
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert after.status_code == 404
    assert continued.status_code == 404 and continued.json()["error"]["code"] == "previous_response_not_found"


def test_an_unreachable_redis_answers_the_turn_and_reports_the_chain_missing(tmp_path: Path, fake: FakeOpenAI) -> None:
    from integration.test_shared_limits import free_port  # noqa: PLC0415

    config = _config(tmp_path, fake, f"redis://127.0.0.1:{free_port()}/0")
    with serve_proxy(config) as proxy:
        first = httpx.post(proxy.url + "/v1/responses", json={"model": "gpt-4o", "input": "hi"}, timeout=10)
        second = httpx.post(proxy.url + "/v1/responses", timeout=10, json={
            "model": "gpt-4o", "input": "more", "previous_response_id": first.json()["id"]})
    assert first.status_code == 200
    assert second.status_code == 404 and second.json()["error"]["code"] == "previous_response_not_found"
