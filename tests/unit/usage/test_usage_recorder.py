"""UsageRecorder against an in-memory store: batching, never blocking, retries, drops, clean shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import pytest

from lip.core.errors import ProxyError
from lip.usage.recorder import UsageRecorder
from lip.usage.records import UsageQuery, UsageRecord
from unit.usage.usage_cases import DAY0, make


class MemoryStore:
    """Keeps batches in a list; can be slow (``delay``) and fail its next ``failures`` writes (-1: all)."""

    def __init__(self, *, delay: float = 0.0, failures: int = 0, slow: int = -1) -> None:
        self.delay = delay
        self.slow = slow  # how many writes take ``delay`` (-1: all)
        self.failures = failures
        self.batches: list[list[UsageRecord]] = []
        self.writes = 0
        self.started = 0
        self.closed = 0

    @property
    def url(self) -> str:
        return "memory://"

    @property
    def ids(self) -> list[str]:
        return [r.request_id for batch in self.batches for r in batch]

    async def start(self) -> None:
        self.started += 1

    async def write(self, records: Sequence[UsageRecord]) -> None:
        self.writes += 1
        if self.delay and self.slow:
            self.slow -= 1
            await asyncio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise ProxyError("store down", status=503, code="usage_store_unavailable")
        self.batches.append(list(records))

    async def query(self, q: UsageQuery) -> dict[str, Any]:
        return {"records": [r.to_json() for batch in self.batches for r in batch]}

    async def close(self) -> None:
        self.closed += 1


def records(n: int, start: int = 0) -> list[UsageRecord]:
    return [make(i, DAY0 + i) for i in range(start, start + n)]


async def until(condition: Any, within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def test_full_batches_are_written_at_once_and_close_writes_the_rest() -> None:
    store = MemoryStore()

    async def run() -> None:
        recorder = UsageRecorder(store, batch=10, interval=60)
        await recorder.start()
        assert store.started == 1
        batch = records(25)
        for r in batch[:9]:
            recorder.record(r)
        await asyncio.sleep(0.02)
        assert recorder.written == 0  # not a full batch, and the interval is long
        recorder.record(batch[9])
        await until(lambda: recorder.written == 10)
        for r in batch[10:22]:  # a full batch wakes the flusher, which writes all that waits, in batches
            recorder.record(r)
        await until(lambda: recorder.written == 22)
        for r in batch[22:]:
            recorder.record(r)
        await asyncio.sleep(0.02)
        assert [len(b) for b in store.batches] == [10, 10, 2] and recorder.pending == 3
        await recorder.close()
        await recorder.close()  # idempotent

    asyncio.run(run())
    assert store.ids == [f"req-{i}" for i in range(25)]
    assert store.closed == 1


def test_a_partial_batch_is_written_after_the_interval() -> None:
    store = MemoryStore()

    async def run() -> None:
        recorder = UsageRecorder(store, batch=1000, interval=0.02)
        await recorder.start()
        for r in records(3):
            recorder.record(r)
        await until(lambda: recorder.written == 3)
        await recorder.close()

    asyncio.run(run())
    assert store.batches and len(store.ids) == 3


def test_record_never_waits_for_a_slow_store() -> None:
    store = MemoryStore(delay=0.3, slow=1)

    async def run() -> list[str]:
        recorder = UsageRecorder(store, batch=100, interval=0.01)
        await recorder.start()
        batch = records(5000)
        recorder.record(batch[0])
        await until(lambda: store.writes == 1)  # the store is now busy with the first batch
        for r in batch[1:]:
            recorder.record(r)
        written_meanwhile = store.ids  # the loop above never yielded to the store: nothing waited for it
        await recorder.close()
        assert recorder.written == 5000
        return written_meanwhile

    assert asyncio.run(run()) == [], "all 5000 recorded while the store's first write was still under way"
    assert store.ids == [f"req-{i}" for i in range(5000)]


def test_close_without_start_writes_everything() -> None:
    store = MemoryStore()

    async def run() -> None:
        recorder = UsageRecorder(store, batch=7)
        for r in records(20):
            recorder.record(r)
        await recorder.close()
        recorder.record(make(99, DAY0))  # after close: counted as dropped, not kept
        assert recorder.dropped == 1 and recorder.pending == 0

    asyncio.run(run())
    assert [len(b) for b in store.batches] == [7, 7, 6] and store.closed == 1


def test_failed_writes_are_retried_in_order_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore(failures=3)

    async def run() -> None:
        recorder = UsageRecorder(store, batch=4, interval=0.005, retry_max=0.02)
        await recorder.start()
        for r in records(10):
            recorder.record(r)
        await until(lambda: recorder.written == 10)
        await recorder.close()

    with caplog.at_level(logging.WARNING, logger="lip.usage"):
        asyncio.run(run())
    assert store.ids == [f"req-{i}" for i in range(10)]
    failures = [m for m in caplog.messages if "unreachable" in m]
    assert len(failures) == 1 and "store down" in failures[0] and "written when it is back" in failures[0]
    assert [m for m in caplog.messages if "reachable again after 3 failed writes" in m] != []


def test_flush_raises_a_store_error_and_keeps_the_records() -> None:
    store = MemoryStore(failures=1)

    async def run() -> None:
        recorder = UsageRecorder(store, batch=3)
        for r in records(5):
            recorder.record(r)
        with pytest.raises(ProxyError):
            await recorder.flush()
        assert recorder.pending == 5 and recorder.written == 0
        await recorder.flush()
        assert recorder.pending == 0 and recorder.written == 5
        await recorder.close()

    asyncio.run(run())
    assert store.ids == [f"req-{i}" for i in range(5)]


def test_over_max_pending_the_oldest_are_dropped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()

    async def run() -> UsageRecorder:
        recorder = UsageRecorder(store, batch=100, max_pending=10)
        for r in records(25):
            recorder.record(r)
        assert recorder.pending == 10 and recorder.dropped == 15
        await recorder.close()
        return recorder

    with caplog.at_level(logging.WARNING, logger="lip.usage"):
        recorder = asyncio.run(run())
    assert store.ids == [f"req-{i}" for i in range(15, 25)]
    assert recorder.dropped == 15
    assert any("dropped 15 records" in m and "max_pending=10" in m for m in caplog.messages)


def test_a_failed_batch_put_back_into_a_full_queue_drops_its_oldest() -> None:
    store = MemoryStore(delay=0.05, failures=1)

    async def run() -> UsageRecorder:
        recorder = UsageRecorder(store, batch=5, max_pending=10)
        for r in records(10):
            recorder.record(r)
        flushing = asyncio.create_task(recorder.flush())  # takes req-0..4, then fails
        await until(lambda: store.writes == 1)
        for r in records(8, start=10):  # 5 waiting + 8 new: the 3 oldest waiting are dropped
            recorder.record(r)
        with pytest.raises(ProxyError):
            await flushing
        assert recorder.pending == 10 and recorder.dropped == 3 + 5  # no room for the failed batch
        await recorder.close()
        return recorder

    recorder = asyncio.run(run())
    assert store.ids == [f"req-{i}" for i in range(8, 18)]
    assert recorder.written == 10


def test_close_gives_up_on_a_dead_store_in_time(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore(failures=-1)

    async def run() -> UsageRecorder:
        recorder = UsageRecorder(store, batch=10, interval=0.01, retry_max=0.02, close_timeout=0.2)
        await recorder.start()
        for r in records(12):
            recorder.record(r)
        await recorder.close()  # the store fails forever: close returns only because it gives up
        return recorder

    with caplog.at_level(logging.WARNING, logger="lip.usage"):
        recorder = asyncio.run(run())
    assert store.closed == 1
    assert recorder.dropped == 12 and recorder.pending == 0
    assert any("could not write 12 records" in m for m in caplog.messages)
    assert not any("max_pending" in m for m in caplog.messages)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        UsageRecorder(MemoryStore(), batch=0)
