"""Writes usage records behind the request path: ``record`` only appends; a background task writes batches.

``record`` never blocks and never raises. The flusher writes whenever ``batch`` records wait or
``interval`` seconds have passed. A failed write puts its batch back at the head of the queue and
is retried with exponential back-off (up to ``retry_max`` seconds); an outage is one log line when
it starts and one when a write succeeds again (``pending`` and ``dropped`` are in /metrics). When
more than ``max_pending`` records wait, the oldest are dropped and counted, and the log says how
many (at most once every ``log_every`` seconds). ``close`` stops the
flusher and writes everything still waiting (retrying for up to ``close_timeout`` seconds), then
closes the store: nothing recorded before a clean shutdown is lost while the store is reachable.

The recorder owns its store's life: ``start`` starts the store (a store that cannot be opened
raises ConfigError there) and ``close`` closes it. Call every method from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque

from lip.core.errors import ProxyError
from lip.usage.records import UsageRecord
from lip.usage.store import UsageStore

log = logging.getLogger("lip.usage")


class UsageRecorder:
    """Buffers records and writes them to ``store`` in batches from a background task."""

    def __init__(
        self,
        store: UsageStore,
        *,
        batch: int = 500,
        interval: float = 0.5,
        max_pending: int = 100_000,
        retry_max: float = 30.0,
        close_timeout: float = 10.0,
        log_every: float = 30.0,
    ) -> None:
        if batch < 1 or max_pending < 1 or interval <= 0 or retry_max <= 0 or close_timeout <= 0:
            raise ValueError("batch, max_pending, interval, retry_max and close_timeout must be positive")
        self.store = store
        self._batch = batch
        self._interval = interval
        self._max_pending = max_pending
        self._retry_max = max(retry_max, interval)
        self._close_timeout = close_timeout
        self._log_every = log_every
        self._pending: deque[UsageRecord] = deque()
        self._lock = asyncio.Lock()  # one write at a time, so batches land in order
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._failures = 0  # consecutive failed writes
        self._written = 0
        self._dropped = 0
        self._dropped_logged = 0
        self._last_drop_log = -math.inf

    @property
    def pending(self) -> int:
        """Records waiting to be written (a batch being written is not counted)."""
        return len(self._pending)

    @property
    def failures(self) -> int:
        """Consecutive failed writes (0: the store is taking records)."""
        return self._failures

    @property
    def written(self) -> int:
        return self._written

    @property
    def dropped(self) -> int:
        """Records lost: over ``max_pending``, recorded after ``close``, or unwritable at shutdown."""
        return self._dropped

    def record(self, record: UsageRecord) -> None:
        """Queue one record; O(1), never blocks, never raises."""
        if self._closed:
            self._dropped += 1
            return
        pending = self._pending
        if len(pending) >= self._max_pending:
            pending.popleft()
            self._dropped += 1
        pending.append(record)
        if len(pending) >= self._batch and self._wake is not None:
            self._wake.set()

    async def start(self) -> None:
        """Start the store and the background flusher in the running loop; idempotent."""
        if self._task is not None or self._closed:
            return
        await self.store.start()
        self._wake, self._stop = asyncio.Event(), asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="lip-usage-recorder")

    async def flush(self) -> None:
        """Write everything pending now; a store error is raised (the records stay queued)."""
        await self._drain(raise_errors=True)

    async def close(self) -> None:
        """Stop the flusher, write everything pending, close the store; idempotent, never raises."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wait_for(self._shutdown(), self._close_timeout)
        except TimeoutError:
            lost = len(self._pending)
            self._pending.clear()
            self._dropped += lost
            self._dropped_logged += lost  # reported here, not as an overflow
            log.error(
                "usage store %s: could not write %d records within %.0fs of shutdown; they are lost",
                self.store.url, lost, self._close_timeout,
            )  # fmt: skip
        finally:
            self._report_drops(force=True)
            try:
                await self.store.close()
            except Exception:  # shutting down: say so, and go on
                log.warning("usage store %s: close failed", self.store.url, exc_info=True)

    async def _shutdown(self) -> None:
        task, self._task = self._task, None
        if task is not None and self._stop is not None and self._wake is not None:
            self._stop.set()
            self._wake.set()
            await task
        while self._pending:
            if not await self._drain(raise_errors=False):
                await asyncio.sleep(self._backoff())

    async def _run(self) -> None:
        assert self._wake is not None and self._stop is not None
        while not self._stop.is_set():
            if self._failures:
                event, delay = self._stop, self._backoff()
            else:
                event, delay = self._wake, self._interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), delay)
            self._wake.clear()
            if self._stop.is_set():
                break
            await self._drain(raise_errors=False)
            self._report_drops()

    def _backoff(self) -> float:
        return float(min(self._retry_max, self._interval * 2 ** min(self._failures, 30)))

    async def _drain(self, *, raise_errors: bool) -> bool:
        """Write pending records in batches until none are left (True) or the store fails (False)."""
        async with self._lock:
            while self._pending:
                chunk = [self._pending.popleft() for _ in range(min(self._batch, len(self._pending)))]
                try:
                    await self.store.write(chunk)
                except asyncio.CancelledError:
                    self._put_back(chunk)
                    raise
                except Exception as exc:  # any store failure: logged and retried, never reaches a request
                    self._put_back(chunk)
                    self._failures += 1
                    self._log_failure(exc)
                    if raise_errors:
                        raise
                    return False
                self._written += len(chunk)
                if self._failures:
                    log.warning("usage store %s reachable again after %d failed writes; writing the %d records "
                                "that waited", self.store.url, self._failures, len(chunk) + len(self._pending))
                    self._failures = 0
            return True

    def _put_back(self, chunk: list[UsageRecord]) -> None:
        """Return a batch to the head of the queue, dropping its oldest records if the queue is full."""
        room = max(0, self._max_pending - len(self._pending))
        kept = chunk[len(chunk) - room :] if room < len(chunk) else chunk
        self._dropped += len(chunk) - len(kept)
        self._pending.extendleft(reversed(kept))

    def _log_failure(self, exc: Exception) -> None:
        """One line when an outage starts (the failed writes after it are not logged: /metrics counts
        the records waiting); the first successful write logs its end."""
        if self._failures > 1:
            return
        reason = exc.__cause__ if isinstance(exc, ProxyError) and exc.__cause__ is not None else exc
        log.warning(
            "usage store %s unreachable (%s: %s); records wait in memory (%d now, at most %d) and are written "
            "when it is back", self.store.url, type(reason).__name__, reason, len(self._pending), self._max_pending,
        )  # fmt: skip

    def _report_drops(self, *, force: bool = False) -> None:
        new = self._dropped - self._dropped_logged
        now = time.monotonic()
        if new <= 0 or (not force and now - self._last_drop_log < self._log_every):
            return
        log.warning(
            "usage recorder dropped %d records (more than max_pending=%d waiting for %s); %d dropped in all",
            new, self._max_pending, self.store.url, self._dropped,
        )  # fmt: skip
        self._dropped_logged = self._dropped
        self._last_drop_log = now
