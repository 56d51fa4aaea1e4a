"""Rate-limit buckets in a memory-mapped file that the workers of one machine share (``lip serve --workers``).

Each operation takes an exclusive ``flock`` on the file, reads and writes one slot of the mapping and
lets go: two system calls and a few struct operations, about 3 µs. The SQLite store took two
transactions a request (about 50 µs, more under load), which cost more than the rest of the proxy's
pipeline and kept ``--workers`` from scaling (docs/performance.md). The arithmetic is the in-process
limiter's (``take`` / ``refill``), so every store behaves alike.

The file is a header and a fixed table of slots ``(key hash, requests, tokens, updated at)``, found
by open addressing on a 64-bit blake2b hash of the key (the same in every process). Slots are never
freed, so a process remembers where each of its keys lives. A full table (more than ``slots`` keys)
is a configuration far outside what a proxy has (keys are ``backend:model`` and client quotas); the
key is then limited in this process alone, and the log says so once.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import mmap
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

from lip.core.errors import ConfigError
from lip.limits.ratelimit import Decision, MemoryRateLimiter, Quota, decision, refill, take

log = logging.getLogger("lip.limits")

MAGIC = b"LIPRL001"
HEADER = struct.Struct("<8sI4x")  # magic, number of slots
SLOT = struct.Struct("<Qddd")  # key hash (0: free), requests left, tokens left, updated at (0: never)
HASH = struct.Struct("<Q")
SLOTS = 4096


class MappedRateLimiter:
    """Token buckets in ``path``, shared by every process that opens it. ``clock`` is injectable for tests."""

    def __init__(self, path: Path, *, slots: int = SLOTS, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError([f"limits.store: cannot open {path}: {exc}"]) from exc
        try:
            self._slots = self._prepare(slots)
            self._map = mmap.mmap(self._fd, HEADER.size + self._slots * SLOT.size)
        except BaseException:
            os.close(self._fd)
            raise
        self._where: dict[str, tuple[int, int]] = {}  # key -> (offset, hash), once found
        self._overflow: MemoryRateLimiter | None = None

    def _prepare(self, slots: int) -> int:
        """Create the table if the file is new (under the lock: workers start together); check it if not."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(self._fd).st_size
            if size == 0:
                os.ftruncate(self._fd, HEADER.size + slots * SLOT.size)  # zero-filled: every slot free
                os.pwrite(self._fd, HEADER.pack(MAGIC, slots), 0)
                return slots
            head = os.pread(self._fd, HEADER.size, 0)
            magic, found = HEADER.unpack(head) if len(head) == HEADER.size else (b"", 0)
            if magic != MAGIC or size != HEADER.size + found * SLOT.size:
                raise ConfigError([f"limits.store: {self._path} is not a rate-limit table of this proxy "
                                   f"(expected a file it created; remove it or name another path)"])
            return int(found)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _find(self, key: str) -> tuple[int, int] | None:
        """The slot of ``key`` (claimed if new); None when the table is full. Call under the lock."""
        digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1
        index = digest % self._slots
        for _ in range(self._slots):
            offset = HEADER.size + index * SLOT.size
            (owner,) = HASH.unpack_from(self._map, offset)
            if owner == 0:
                SLOT.pack_into(self._map, offset, digest, 0.0, 0.0, 0.0)
                return offset, digest
            if owner == digest:
                return offset, digest
            index = (index + 1) % self._slots
        return None

    def _update(self, key: str, quota: Quota, want: int, adjust: bool) -> tuple[bool, float, float, float] | None:
        fd = self._fd
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            where = self._where.get(key)
            if where is None:
                where = self._find(key)
                if where is None:
                    return None
                self._where[key] = where
            offset, digest = where
            _, requests, tokens, at = SLOT.unpack_from(self._map, offset)
            now = self._clock()
            if at == 0.0:
                requests, tokens, at = float(quota.requests_per_minute or 0), float(quota.tokens_per_minute or 0), now
            elapsed = max(0.0, now - at)
            if adjust:
                allowed, wait = True, 0.0
                requests, tokens = refill(requests, tokens, elapsed, quota)
                if quota.tokens_per_minute is not None:
                    tokens = min(float(quota.tokens_per_minute), tokens - want)
            else:
                allowed, requests, tokens, wait = take(requests, tokens, elapsed, quota, want)
            SLOT.pack_into(self._map, offset, digest, requests, tokens, now)
            return allowed, requests, tokens, wait
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _local(self) -> MemoryRateLimiter:
        if self._overflow is None:
            log.error("limits.store %s: its %d slots are taken; further keys are limited per process",
                      self._path, self._slots)
            self._overflow = MemoryRateLimiter(clock=self._clock)
        return self._overflow

    async def acquire(self, key: str, quota: Quota, tokens: int) -> Decision:
        result = self._update(key, quota, tokens, adjust=False)
        if result is None:
            return await self._local().acquire(key, quota, tokens)
        allowed, requests, level, wait = result
        return decision(allowed, wait, quota, requests, level)

    async def adjust(self, key: str, quota: Quota, tokens: int) -> None:
        if self._update(key, quota, tokens, adjust=True) is None:
            await self._local().adjust(key, quota, tokens)

    async def close(self) -> None:
        if not self._map.closed:
            self._map.close()
            os.close(self._fd)
