"""lip.state.mapped: buckets in a memory-mapped file, shared by processes; same arithmetic as in memory."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path

import pytest

from lip.core.errors import ConfigError
from lip.limits.ratelimit import Decision, MemoryRateLimiter, Quota
from lip.state.mapped import MappedRateLimiter

KEY = "backend:model"


class Clock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def acquire(rl: MappedRateLimiter | MemoryRateLimiter, quota: Quota, tokens: int = 0, key: str = KEY) -> Decision:
    return asyncio.run(rl.acquire(key, quota, tokens))


def test_the_same_sequence_decides_like_the_in_process_limiter(tmp_path: Path) -> None:
    clock = Clock()
    mapped = MappedRateLimiter(tmp_path / "rl.map", clock=clock)
    memory = MemoryRateLimiter(clock=clock)
    quota = Quota(requests_per_minute=3, tokens_per_minute=1000)
    steps = [(0, 400), (0, 400), (0, 400), (10, 100), (0, 5), (30, 700), (60, 1000), (0, 1), (1, 1)]
    for advance, tokens in steps:
        clock.now += advance
        got, want = acquire(mapped, quota, tokens), acquire(memory, quota, tokens)
        assert got == want, (advance, tokens)
    asyncio.run(mapped.adjust(KEY, quota, -300))
    asyncio.run(memory.adjust(KEY, quota, -300))
    assert acquire(mapped, quota, 10) == acquire(memory, quota, 10)


def test_two_openers_of_one_file_share_the_buckets_and_keys_stay_apart(tmp_path: Path) -> None:
    clock = Clock()
    first = MappedRateLimiter(tmp_path / "rl.map", clock=clock)
    second = MappedRateLimiter(tmp_path / "rl.map", clock=clock)
    quota = Quota(requests_per_minute=2)
    assert acquire(first, quota).allowed and acquire(second, quota).allowed
    assert not acquire(first, quota).allowed and not acquire(second, quota).allowed
    assert acquire(second, quota, key="other:model").allowed  # another key has its own bucket


def test_a_full_table_falls_back_to_limits_per_process(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rl = MappedRateLimiter(tmp_path / "rl.map", slots=2, clock=Clock())
    quota = Quota(requests_per_minute=1)
    assert acquire(rl, quota, key="a").allowed and acquire(rl, quota, key="b").allowed
    assert acquire(rl, quota, key="c").allowed  # no slot left: counted in this process
    assert not acquire(rl, quota, key="c").allowed
    assert "slots are taken" in caplog.text


def test_a_file_that_is_not_a_table_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ConfigError, match=r"notes\.txt"):
        MappedRateLimiter(path)


def _hammer(path: str, attempts: int, results: multiprocessing.Queue[int]) -> None:
    rl = MappedRateLimiter(Path(path))
    quota = Quota(requests_per_minute=50)

    async def run() -> int:
        return sum([(await rl.acquire(KEY, quota, 0)).allowed for _ in range(attempts)])

    results.put(asyncio.run(run()))


def test_processes_racing_on_one_file_admit_exactly_the_limit(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[int] = ctx.Queue()
    workers = [ctx.Process(target=_hammer, args=(str(tmp_path / "rl.map"), 200, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    admitted = sum(results.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=10)
    # 800 attempts in well under a second: 50 in the bucket, plus what refilled meanwhile (50/min)
    assert 50 <= admitted <= 51
