"""Opening a SQLite file that several processes share: one busy time-out, WAL, and the pragmas.

Every SQLite store opens its file here: the shared-state stores (buckets, sessions, stored
Responses: state, fast over durable) and the usage records (``durable``, and a longer wait, as
they are written off the request path).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

BUSY_TIMEOUT = 2.0  # seconds a state store waits for another process's write (each one takes microseconds)


def connect(path: Path | str, *, durable: bool = False, busy_timeout: float = BUSY_TIMEOUT) -> sqlite3.Connection:
    """A connection to ``path`` in autocommit mode (``BEGIN`` explicitly), usable from any thread.

    WAL lets readers go on while one process writes; ``synchronous`` is OFF for state (a lost
    bucket level or session setting after a power cut is acceptable), NORMAL when ``durable``.
    """
    db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        _enable_wal(db, busy_timeout)
        db.execute(f"PRAGMA synchronous={'NORMAL' if durable else 'OFF'}")
    except BaseException:
        db.close()
        raise
    return db


def _enable_wal(db: sqlite3.Connection, busy_timeout: float) -> None:
    """WAL mode (kept in the file); switching ignores the busy timeout, so retry while others hold the file."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
