"""Shared state over PostgreSQL (``limits.store: postgresql://...``) against a real server (the usage
tests' fixture: initdb + pg_ctl on 127.0.0.1): two ``SharedState`` objects opened on one URL stand for
two replicas, sharing buckets, sessions and stored Responses; an unreachable database is reported
without its password and follows ``on_store_error``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from fakes.openai_upstream import Behaviour, FakeOpenAI
from integration.conftest import serve_proxy, write_backend
from integration.test_shared_limits import ask, limited_config
from integration.test_usage_store import free_port, new_database, postgres  # noqa: F401  (the real server)
from lip.core.errors import BackendUnavailable
from lip.core.model import Message, Usage
from lip.limits.ratelimit import Quota
from lip.routing.breaker import GO
from lip.state import urls
from lip.state.postgres_client import APPLICATION, PostgresConnection
from lip.state.postgres_responses import PostgresResponseStore
from lip.state.sessions import Session
from lip.state.shared import SharedState, open_state
from lip.state.shared_responses import PRUNE_EVERY

QUOTA = Quota(requests_per_minute=2, tokens_per_minute=1000)


async def _replicas(url: str, **options: Any) -> tuple[SharedState, SharedState]:
    a, b = open_state(url, **options), open_state(url, **options)
    await asyncio.gather(a.warm(), b.warm())  # replicas starting together create the tables once
    return a, b


async def _query(url: str, sql: str, *args: object) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def pool_of(state: SharedState) -> PostgresConnection:
    """The one pool a PostgreSQL URL's stores share."""
    assert isinstance(state.server, PostgresConnection)
    return state.server


def test_two_replicas_share_one_bucket_and_adjust_gives_tokens_back(new_database: Any) -> None:  # noqa: F811
    url = new_database()

    async def run() -> None:
        a, b = await _replicas(url)
        try:
            assert a.kind == "postgresql"
            first = await a.limiter.acquire("b:m", QUOTA, 600)
            assert first.allowed and first.remaining_requests == 1 and 400 <= (first.remaining_tokens or 0) <= 410
            refused = await b.limiter.acquire("b:m", QUOTA, 600)  # 400 tokens left: the other replica took them
            assert not refused.allowed and 11.0 < refused.retry_after <= 12.0
            await a.limiter.adjust("b:m", QUOTA, -500)  # the upstream used 100 of the 600 reserved
            second = await b.limiter.acquire("b:m", QUOTA, 600)
            assert second.allowed and second.remaining_requests == 0 and 300 <= (second.remaining_tokens or 0) <= 320
            out_of_requests = await a.limiter.acquire("b:m", QUOTA, 1)
            assert not out_of_requests.allowed and 25.0 < out_of_requests.retry_after <= 30.0
            skew = await _query(url, "SELECT abs(updated_at - extract(epoch FROM clock_timestamp())) "
                                "FROM lip_state_buckets WHERE key = 'b:m'")
            assert skew < 5  # the levels are dated by the database server's clock
        finally:
            await asyncio.gather(a.close(), b.close())

    asyncio.run(asyncio.wait_for(run(), 30))


def test_concurrent_admissions_of_two_replicas_never_exceed_the_limit(new_database: Any) -> None:  # noqa: F811
    url = new_database()
    quota = Quota(requests_per_minute=10)

    async def run() -> list[bool]:
        a, b = await _replicas(url)
        try:  # a new bucket: both replicas insert it at once, then queue on its row
            decisions = await asyncio.gather(*(s.limiter.acquire("new", quota, 0) for _ in range(15) for s in (a, b)))
        finally:
            await asyncio.gather(a.close(), b.close())
        return [d.allowed for d in decisions]

    assert sum(asyncio.run(asyncio.wait_for(run(), 30))) == 10


def test_a_circuit_opened_by_one_replica_is_open_for_the_other_and_one_of_them_probes(new_database: Any) -> None:  # noqa: F811
    url = new_database()

    async def run() -> None:
        a, b = await _replicas(url, breaker_failures=2, breaker_cooldown=0.5)
        try:
            assert (await b.breakers.allow("b:m")) == GO  # nothing known: go (and healthy for a second)
            await a.breakers.failure("b:m")
            assert (await a.breakers.allow("b:m")) == GO and a.breakers.snapshot() == {"b:m": "troubled"}
            await a.breakers.failure("b:m")  # the threshold: open for the cooldown
            assert a.breakers.snapshot() == {"b:m": "open"}
            fresh = open_state(url, breaker_failures=2, breaker_cooldown=0.5)  # a replica that saw nothing
            wait = (await fresh.breakers.allow("b:m")).wait
            assert wait is not None and 0 < wait <= 0.5
            await fresh.close()
            await asyncio.sleep(0.6)
            probes = await asyncio.gather(a.breakers.allow("b:m"), b.breakers.allow("c:n"), a.breakers.allow("b:m"))
            assert [p.probe for p in (probes[0], probes[2])].count(True) == 1  # one probe at a time
            await a.breakers.success("b:m")  # the probe came back well: closed for everyone
            assert (await a.breakers.allow("b:m")) == GO and a.breakers.snapshot() == {}
            assert await _query(url, "SELECT count(*) FROM lip_state_breakers") == 0
        finally:
            await asyncio.gather(a.close(), b.close())

    asyncio.run(asyncio.wait_for(run(), 30))


def test_a_session_saved_by_one_replica_is_loaded_and_counted_by_the_other(new_database: Any) -> None:  # noqa: F811
    url = new_database()

    async def run() -> None:
        a, b = await _replicas(url)
        try:
            assert await b.sessions.load("s1") == Session()  # no command yet: no row
            b.sessions.tally("s1", Usage(input_tokens=5))  # nothing to count it in
            assert await a.sessions.save("s1", Session(model="b:m", parameters={"temperature": 0.2}, oneoff="x:y"))
            loaded = await b.sessions.load("s1")
            assert (loaded.model, loaded.parameters, loaded.oneoff, loaded.requests) == (
                "b:m", {"temperature": 0.2}, "x:y", 0)
            b.sessions.tally("s1", Usage(input_tokens=7, output_tokens=3))
            await b.sessions.close()  # waits for the tally sent in the background
            again = await a.sessions.load("s1")
            assert (again.requests, again.input_tokens, again.output_tokens) == (1, 7, 3)
            assert await a.sessions.save("s1", Session(model="c:n"))  # new settings keep the counts
            latest = await b.sessions.load("s1")
            assert (latest.model, latest.parameters, latest.requests) == ("c:n", {}, 1)
        finally:
            await asyncio.gather(a.close(), b.close())

    asyncio.run(asyncio.wait_for(run(), 30))


def test_a_response_put_by_one_replica_is_fetched_and_deleted_by_the_other(new_database: Any) -> None:  # noqa: F811
    url = new_database()
    conversation = (Message("user", "hi"), Message("assistant", "hello"))

    async def run() -> None:
        a, b = await _replicas(url)
        try:
            a.responses.put("resp_1", conversation, b'{"id":"resp_1"}')
            await a.responses.settle()
            assert await b.responses.fetch("resp_1") == conversation
            assert await b.responses.fetch_response("resp_1") == b'{"id":"resp_1"}'
            assert await b.responses.forget("resp_1") is True
            assert await a.responses.fetch("resp_1") is None and await a.responses.forget("resp_1") is False
        finally:
            await asyncio.gather(a.close(), b.close())

    asyncio.run(asyncio.wait_for(run(), 30))


def test_stored_responses_expire_when_idle_and_are_bounded(new_database: Any) -> None:  # noqa: F811
    url = new_database()
    conversation = (Message("user", "hi"),)

    async def run() -> None:
        state = open_state(url)
        short = PostgresResponseStore(pool_of(state), ttl_seconds=0.6, max_responses=3)
        try:
            await state.warm()
            short.put("r", conversation)
            await short.settle()
            await asyncio.sleep(0.4)
            assert await short.fetch("r") == conversation  # a read renews it
            await asyncio.sleep(0.4)
            assert await short.fetch_response("r") == b""
            await asyncio.sleep(1.0)
            assert await short.fetch("r") is None and await short.forget("r") is False  # idle too long
            for i in range(PRUNE_EVERY - 1):  # with "r", PRUNE_EVERY puts: the last sweeps all beyond max_responses
                short.put(f"n{i}", conversation)
                await short.settle()
            assert await _query(url, "SELECT count(*) FROM lip_state_responses") == 3
            assert await short.fetch(f"n{PRUNE_EVERY - 2}") == conversation and await short.fetch("n0") is None
        finally:
            await short.close()
            await state.close()

    asyncio.run(asyncio.wait_for(run(), 30))


def test_check_answers_none_when_up_and_close_closes_the_pool(new_database: Any) -> None:  # noqa: F811
    url = new_database()
    database = url.rsplit("/", 1)[1]
    connections = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = $2"

    async def run() -> None:
        state = open_state(url)
        assert not pool_of(state).open  # nothing connects before the warm-up
        assert await state.check() is None
        assert pool_of(state).open and await _query(url, connections, APPLICATION, database) >= 1
        await state.close()
        assert not pool_of(state).open
        left = [await _query(url, connections, APPLICATION, database)]
        for _ in range(100):  # a closed connection's server process ends a moment later
            if not left[-1]:
                break
            await asyncio.sleep(0.05)
            left.append(await _query(url, connections, APPLICATION, database))
        assert left[-1] == 0
        assert await state.check() is not None and await state.sessions.load("s") == Session()  # no new pool
        assert not pool_of(state).open
        await state.close()  # idempotent

    asyncio.run(asyncio.wait_for(run(), 30))


def test_a_database_lost_after_start_up_is_reported_then_found_again(postgres: str, new_database: Any) -> None:  # noqa: F811
    url = new_database()
    database = url.rsplit("/", 1)[1]

    async def run() -> tuple[str | None, str | None, str | None]:
        state = open_state(url)
        try:
            up = await state.check()
            # the database goes away for the pool: its connections are cut and no new one is let in
            await _query(postgres, f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
            await _query(postgres, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                         "WHERE application_name = $1 AND datname = $2", APPLICATION, database)
            down = await state.check()
            await _query(postgres, f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
            return up, down, await state.check()
        finally:
            await state.close()

    up, down, back = asyncio.run(asyncio.wait_for(run(), 30))
    assert up is None and back is None
    assert down is not None and down.startswith(f"{urls.display(url)} unreachable (")  # no user-info


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_an_unreachable_database_is_named_without_its_password_and_follows_on_store_error(scheme: str) -> None:
    port = free_port()  # nothing listens there
    url = f"{scheme}://postgres:hunter2@127.0.0.1:{port}/postgres"

    async def run() -> None:
        allow, deny = open_state(url), open_state(url, on_store_error="deny")
        try:
            problem = await allow.check()
            assert problem is not None and problem.startswith(f"{scheme}://127.0.0.1:{port}/postgres unreachable (")
            assert "hunter2" not in problem
            admitted = await allow.limiter.acquire("b:m", QUOTA, 10)
            assert admitted.allowed and getattr(allow.limiter, "uncounted", 0) == 1
            with pytest.raises(BackendUnavailable):
                await deny.limiter.acquire("b:m", QUOTA, 10)
            await allow.limiter.adjust("b:m", QUOTA, 5)  # lost, quietly
            assert await allow.sessions.load("s") == Session() and not await allow.sessions.save("s", Session())
            allow.responses.put("r", (Message("user", "hi"),))
            await allow.responses.settle()
            assert await allow.responses.fetch("r") is None and not await allow.responses.forget("r")
        finally:
            await asyncio.gather(allow.close(), deny.close())

    asyncio.run(asyncio.wait_for(run(), 30))


def test_two_proxies_on_one_database_admit_no_more_than_the_limit(tmp_path: Path, fake: FakeOpenAI,
                                                                   new_database: Any) -> None:  # noqa: F811
    config = limited_config(tmp_path, fake, new_database(), rpm=5)
    with serve_proxy(config) as first, serve_proxy(config) as second:
        ready = httpx.get(first.url + "/ready", timeout=10).json()
        statuses = [ask(url) for _ in range(6) for url in (first.url, second.url)]
    assert "ok (postgresql)" in str(ready), ready
    assert statuses.count(200) == 5 and statuses.count(429) == 7, statuses
    assert len(fake.chat_requests()) == 5


def test_two_proxies_on_one_database_share_a_circuit_and_a_session(tmp_path: Path, fake: FakeOpenAI,
                                                                    new_database: Any) -> None:  # noqa: F811
    for name, model, retries in (("flaky", "gpt-4o", "max_retries: 0\n"), ("steady", "gpt-4o-mini", "")):
        write_backend(tmp_path, name, f"backend_type: custom\napi_base_url: {fake.base_url}\n{retries}"
                                      f"models:\n  {model}: {{}}\n")
    (tmp_path / "proxy.yaml").write_text(f"limits:\n  store: {new_database()}\n"
                                         "routing:\n  breaker_failures: 2\n  breaker_cooldown: 30\n")
    fake.enqueue(Behaviour(status=500), Behaviour(), Behaviour(status=500), Behaviour())
    body = {"model": "flaky:gpt-4o|steady:gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    session = {"x-session-id": "shared-1"}

    def say(url: str, text: str) -> httpx.Response:
        return httpx.post(url + "/v1/chat/completions", headers=session, timeout=10,
                          json={"model": "flaky:gpt-4o", "messages": [{"role": "user", "content": text}]})

    with serve_proxy(tmp_path) as first, serve_proxy(tmp_path) as second:
        one = httpx.post(first.url + "/v1/chat/completions", json=body, timeout=10)
        two = httpx.post(second.url + "/v1/chat/completions", json=body, timeout=10)
        calls = len(fake.chat_requests())
        time.sleep(1.1)  # past the local "recently healthy" cache
        three = httpx.post(first.url + "/v1/chat/completions", json=body, timeout=10)
        assert [r.headers["x-lip-backend"] for r in (one, two, three)] == ["steady"] * 3
        assert calls == 4 and len(fake.chat_requests()) == 5, "two failures on two proxies opened the circuit"
        say(first.url, "!/set(model=steady:gpt-4o-mini, temperature=0.2)")
        answered = say(second.url, "hello")
    assert answered.headers["x-lip-backend"] == "steady"
    assert fake.chat_requests()[-1].body["temperature"] == 0.2
