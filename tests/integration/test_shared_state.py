"""lip.state.shared over a real redis-server: the four stores of one URL send their commands through
one client (one connection pool), and ``close`` lets every connection go."""

from __future__ import annotations

import asyncio

import redis

from integration.test_shared_limits import redis_url  # noqa: F401  (the module's real redis-server fixture)
from lip.core.model import Message
from lip.limits.ratelimit import Quota
from lip.state.sessions import Session
from lip.state.shared import open_state


def connections(url: str) -> int:
    """Connections redis-server has, apart from the one asking."""
    with redis.Redis.from_url(url) as admin:
        return len(admin.client_list()) - 1


def test_the_four_stores_of_one_url_share_one_connection_and_close_it(redis_url: str) -> None:  # noqa: F811
    before = connections(redis_url)

    async def use_every_store() -> tuple[int, Session, tuple[Message, ...] | None, int]:
        state = open_state(redis_url, breaker_failures=1)
        await state.warm()
        decision = await state.limiter.acquire("one:m", Quota(requests_per_minute=10), 1)
        assert decision.allowed
        await state.breakers.failure("one:m")
        assert (await state.breakers.allow("one:m")).wait is not None  # opened at the first failure
        assert await state.sessions.save("s1", Session(model="one:m", parameters={"temperature": 0.5}))
        state.responses.put("resp_1", (Message("user", "hi"),), b'{"id":"resp_1"}')
        await state.responses.settle()
        during = connections(redis_url) - before  # taken one after another: one connection is enough
        session = await state.sessions.load("s1", fresh=True)  # read back through the same client (bytes)
        stored = await state.responses.fetch("resp_1")
        await state.close()
        return during, session, stored, connections(redis_url) - before

    during, session, stored, after = asyncio.run(use_every_store())
    assert during == 1  # one each of four before (three clients of their own, one for the responses)
    assert session.model == "one:m" and session.parameters == {"temperature": 0.5}
    assert stored == (Message("user", "hi"),)
    assert after == 0
