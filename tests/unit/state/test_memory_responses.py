"""lip.state.responses: the ResponseStore of one process (bounds, idle TTL, LRU)."""

from __future__ import annotations

import pytest

from lip.core.model import Message
from lip.state.responses import IDLE_TTL_SECONDS, MAX_RESPONSES, ResponseStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def turn(text: str) -> tuple[Message, ...]:
    return (Message(role="user", content=text),)


def test_defaults_are_documented_bounds() -> None:
    store = ResponseStore()
    assert store.max_responses == MAX_RESPONSES == 10_000
    assert store.ttl_seconds == IDLE_TTL_SECONDS == 3600.0
    with pytest.raises(ValueError, match="max_responses"):
        ResponseStore(max_responses=0)
    with pytest.raises(ValueError, match="ttl_seconds"):
        ResponseStore(ttl_seconds=0)


def test_put_and_get() -> None:
    store = ResponseStore()
    store.put("resp_a", turn("a"))
    assert store.get("resp_a") == turn("a")
    assert store.get("resp_b") is None
    assert "resp_a" in store and "resp_b" not in store
    assert len(store) == 1


def test_bounded_by_count_evicting_the_least_recently_used() -> None:
    store = ResponseStore(max_responses=3)
    for name in "abc":
        store.put(name, turn(name))
    assert store.get("a") is not None  # a is now the most recently used; b the least
    store.put("d", turn("d"))
    assert len(store) == 3
    assert store.get("b") is None
    assert [n for n in "acd" if store.get(n) is not None] == ["a", "c", "d"]


def test_idle_ttl_with_an_injected_clock() -> None:
    clock = Clock()
    store = ResponseStore(ttl_seconds=60, clock=clock)
    store.put("a", turn("a"))
    store.put("b", turn("b"))
    clock.now += 50
    assert store.get("a") is not None  # use refreshes a, not b
    clock.now += 20  # b idle 70 s, a idle 20 s
    assert store.get("b") is None
    assert store.get("a") is not None
    clock.now += 60.5
    assert store.get("a") is None
    assert len(store) == 0


def test_put_purges_expired_entries() -> None:
    clock = Clock()
    store = ResponseStore(ttl_seconds=10, clock=clock)
    for name in "abc":
        store.put(name, turn(name))
    clock.now += 11
    store.put("d", turn("d"))
    assert len(store._entries) == 1  # the expired ones went at once, not only when looked up


def test_stores_are_independent() -> None:
    one, two = ResponseStore(), ResponseStore()
    one.put("a", turn("a"))
    assert two.get("a") is None
