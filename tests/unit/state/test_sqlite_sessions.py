"""lip.state.sessions.SqliteSessionStore: what one worker's commands set, another worker reads."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lip.core.model import Usage
from lip.state.sessions import Session, SqliteSessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_settings_saved_by_one_process_are_loaded_by_another(tmp_path: Path) -> None:
    clock = Clock()
    first = SqliteSessionStore(tmp_path / "s.db", clock=clock)
    second = SqliteSessionStore(tmp_path / "s.db", clock=clock)

    async def run() -> Session:
        await first.save("d:abc", Session(model="other:m", parameters={"temperature": 0.2}, oneoff="x:y"))
        return await second.load("d:abc")

    loaded = asyncio.run(run())
    assert (loaded.model, loaded.parameters, loaded.oneoff) == ("other:m", {"temperature": 0.2}, "x:y")


def test_only_sessions_a_command_touched_are_counted_and_idle_ones_are_gone(tmp_path: Path) -> None:
    clock = Clock()
    store = SqliteSessionStore(tmp_path / "s.db", idle=60, clock=clock)
    usage = Usage(input_tokens=10, output_tokens=5)

    async def run() -> tuple[Session, Session, Session]:
        store.tally("d:untouched", usage)  # no row: nothing to count in, nothing written
        await store.save("d:set", Session(model="a:b"))
        store.tally("d:set", usage)
        store.tally("d:set", usage)
        counted, untouched = await store.load("d:set"), await store.load("d:untouched")
        clock.now += 61
        return counted, untouched, await store.load("d:set")

    counted, untouched, expired = asyncio.run(run())
    assert (counted.requests, counted.input_tokens, counted.output_tokens) == (2, 20, 10)
    assert untouched == Session()
    assert expired.model is None  # idle longer than `idle`: a fresh session


def test_a_broken_file_never_fails_a_request(tmp_path: Path) -> None:
    store = SqliteSessionStore(tmp_path / "s.db")
    asyncio.run(store.close())  # every call now fails inside sqlite3

    async def run() -> Session:
        await store.save("d:x", Session(model="a:b"))
        return await store.load("d:x")

    assert asyncio.run(run()) == Session()
