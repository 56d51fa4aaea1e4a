"""Stores of the per-session settings in-chat commands set: in the process (bounded by size and idle
time), shared by the workers of one machine through a SQLite file, or shared by every replica through
Redis (a hash per session that expires when idle). Which session a request is: ``lip.commands.sessions``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
from redis.exceptions import RedisError

from lip.core.model import Usage
from lip.state import sqlite
from lip.state.redis_client import REDIS_ERRORS, RedisConnection

log = logging.getLogger("lip.commands")


@dataclass(slots=True)
class Session:
    model: str | None = None  # a selector that replaces the client's model
    parameters: dict[str, Any] = field(default_factory=dict)  # win over URI, body and model defaults
    oneoff: str | None = None  # a selector for the next request only
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seen: float = 0.0


class SessionStore(Protocol):
    async def load(self, session_id: str, *, fresh: bool = False) -> Session:
        """The session's settings (``fresh``: read from the shared store even if remembered)."""
        ...

    async def save(self, session_id: str, session: Session) -> bool:
        """Keep the session's settings (model, one-off, parameters); False when the store failed."""
        ...

    def tally(self, session_id: str, usage: Usage | None) -> None:
        """Count one forwarded request and its usage (never blocks)."""
        ...

    async def close(self) -> None: ...


class MemorySessionStore:
    """At most ``size`` sessions; one idle for ``idle`` seconds is forgotten."""

    def __init__(self, size: int = 10_000, idle: float = 24 * 3600, clock: Callable[[], float] = time.monotonic):
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._size = size
        self._idle = idle
        self._clock = clock

    async def load(self, session_id: str, *, fresh: bool = False) -> Session:
        return self.get(session_id)

    async def save(self, session_id: str, session: Session) -> bool:
        """Nothing to do: the session object itself lives here."""
        return True

    def tally(self, session_id: str, usage: Usage | None) -> None:
        session = self.peek(session_id)
        if session is not None:
            add_usage(session, usage)

    async def close(self) -> None:
        self._sessions.clear()

    def get(self, session_id: str) -> Session:
        now = self._clock()
        session = self._sessions.get(session_id)
        if session is None or now - session.seen > self._idle:
            session = Session()
            self._sessions[session_id] = session
            while len(self._sessions) > self._size:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(session_id)
        session.seen = now
        return session

    def peek(self, session_id: str) -> Session | None:
        """The session if it exists and is live, without creating or refreshing it."""
        session = self._sessions.get(session_id)
        if session is None or self._clock() - session.seen > self._idle:
            return None
        return session

    def __len__(self) -> int:
        return len(self._sessions)


def from_row(row: Sequence[Any]) -> Session:
    """A session from its row in a table (SQLite, PostgreSQL): the columns of ``ROW_COLUMNS``."""
    model, oneoff, parameters, requests, input_tokens, output_tokens, seen = row
    return Session(model=model, parameters=orjson.loads(parameters) if parameters else {}, oneoff=oneoff,
                   requests=requests, input_tokens=input_tokens, output_tokens=output_tokens, seen=seen)


ROW_COLUMNS = "model, oneoff, parameters, requests, input_tokens, output_tokens, seen"


class KnownRows:
    """Sessions this process saw a row of (so ``tally`` has one to update), at most ``size`` of them."""

    def __init__(self, size: int = 100_000) -> None:
        self._ids: set[str] = set()
        self._size = size

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._ids

    def add(self, session_id: str) -> None:
        if len(self._ids) >= self._size:
            self._ids.clear()
        self._ids.add(session_id)

    def discard(self, session_id: str) -> None:
        self._ids.discard(session_id)


def add_usage(session: Session, usage: Usage | None) -> None:
    session.requests += 1
    if usage is not None:
        session.input_tokens += usage.input_tokens
        session.output_tokens += usage.output_tokens


class RedisSessionStore:
    """Sessions shared by every replica: one Redis hash each, expiring ``idle`` seconds after last use.

    Only sessions a command has touched have a hash. What each replica read is remembered here
    (including "no such session", the common case), so a request without commands costs no Redis
    command at all: a replica that saves a session publishes its id on ``lip:session:changed``
    (before the command's answer is sent) and every replica forgets what it remembered of it. The
    memory is used only while this replica's subscription is live (otherwise every request reads
    through), and a request with commands always reads afresh. Usage is counted only in sessions
    that exist, so a conversation without commands leaves no key behind. An unreachable Redis never
    fails a request: the session then starts empty and is not kept.
    """

    def __init__(self, redis: RedisConnection, *, idle: float = 24 * 3600, prefix: str = "lip:session:",
                 remember: int = 100_000) -> None:
        self._client: Any = redis.client  # answers bytes: decoded here
        self._guard = redis.guard  # a hung Redis is waited for once, then skipped for a while
        self._idle = int(idle)
        self._prefix = prefix
        self._channel = prefix.rstrip(":") + ":changed"
        self._pending: set[asyncio.Task[None]] = set()
        self._known: OrderedDict[str, Session | None] = OrderedDict()  # None: no such session
        self._remember = remember
        self._live = False  # subscribed: what is in _known is current
        self._listener: asyncio.Task[None] | None = None

    async def load(self, session_id: str, *, fresh: bool = False) -> Session:
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        if self._live and not fresh and session_id in self._known:
            known = self._known[session_id]
            return Session() if known is None else dataclasses.replace(known, parameters=dict(known.parameters))
        try:
            found = await self._guard.run(lambda: self._client.hgetall(self._prefix + session_id), REDIS_ERRORS)
        except (RedisError, OSError) as exc:
            log.debug("session store unreachable (%s)", type(exc).__name__)
            return Session()
        raw = {key.decode(): value.decode() for key, value in found.items()}
        session = Session(
            model=raw.get("model") or None,
            parameters=orjson.loads(raw["parameters"]) if raw.get("parameters") else {},
            oneoff=raw.get("oneoff") or None,
            requests=int(raw.get("requests", 0)),
            input_tokens=int(raw.get("input_tokens", 0)),
            output_tokens=int(raw.get("output_tokens", 0)),
        )
        self._note(session_id, session if raw else None)
        return session

    def _note(self, session_id: str, session: Session | None) -> None:
        if not self._live:
            return
        self._known[session_id] = session
        self._known.move_to_end(session_id)
        while len(self._known) > self._remember:
            self._known.popitem(last=False)

    async def save(self, session_id: str, session: Session) -> bool:
        key = self._prefix + session_id
        fields = {"model": session.model or "", "oneoff": session.oneoff or "",
                  "parameters": orjson.dumps(session.parameters).decode()}

        async def write() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                await (pipe.hset(key, mapping=fields).hsetnx(key, "requests", 0).expire(key, self._idle)
                       .publish(self._channel, session_id).execute())

        try:
            await self._guard.run(write, REDIS_ERRORS)
        except (RedisError, OSError) as exc:
            log.warning("session settings not kept: the session store is unreachable (%s)", type(exc).__name__)
            self._known.pop(session_id, None)
            return False
        self._note(session_id, dataclasses.replace(session, parameters=dict(session.parameters)))
        return True

    def tally(self, session_id: str, usage: Usage | None) -> None:
        if self._live and self._known.get(session_id, "?") is None:
            return  # no command has touched this conversation: nothing to count it in
        task = asyncio.get_running_loop().create_task(self._tally(self._prefix + session_id, usage))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _tally(self, key: str, usage: Usage | None) -> None:
        counts = (1, usage.input_tokens if usage else 0, usage.output_tokens if usage else 0)
        try:
            await self._guard.run(lambda: self._client.eval(TALLY_SCRIPT, 1, key, *counts, self._idle), REDIS_ERRORS)
        except (RedisError, OSError):
            return

    async def _listen(self) -> None:
        """Forget what other replicas changed; while not subscribed, remember nothing."""
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=5.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self._known.clear()
                        self._live = True
                    elif message["type"] == "message":
                        self._known.pop(message["data"].decode(), None)
            except (RedisError, OSError) as exc:
                log.debug("session change feed lost (%s); reading every session through", type(exc).__name__)
            finally:
                self._live = False
                self._known.clear()
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        """Stop listening for changes (the client is the state's, closed after every store).

        A cancellation that reaches the listener while redis-py subscribes is swallowed there (the
        listener then went on reading for ever, and the shutdown waited for it), so it is repeated
        until the listener ends."""
        listener = self._listener
        while listener is not None and not listener.done():
            listener.cancel()
            await asyncio.wait({listener}, timeout=0.1)
        if listener is not None:
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await listener


# KEYS[1]: a session's hash. ARGV: requests, input tokens, output tokens, idle seconds. Counts only
# into a session that exists (one a command made), so a conversation without commands leaves no key.
TALLY_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'requests', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'input_tokens', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'output_tokens', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


class SqliteSessionStore:
    """Sessions shared by the workers of one machine (``lip serve --workers``), in a SQLite file.

    A worker's connections are not the conversation's: the next turn may reach another worker, which
    must see the settings a command made. Only sessions a command has touched have a row, so a
    request costs one indexed read, and only those conversations are written to (their settings, and
    the counts ``!/usage`` shows, which start at the first command). An unreadable or busy file never
    fails a request: the session then starts empty (logged).
    """

    def __init__(self, path: Path, *, idle: float = 24 * 3600, clock: Callable[[], float] = time.time) -> None:
        self._idle = idle
        self._clock = clock
        self._db = sqlite.connect(path)  # settings of chats, not records: speed over durability
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, model TEXT, oneoff TEXT, parameters TEXT, "
            "requests INTEGER NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, "
            "seen REAL NOT NULL) WITHOUT ROWID"
        )
        self._rows = KnownRows()

    async def load(self, session_id: str, *, fresh: bool = False) -> Session:
        try:
            row = self._db.execute(
                f"SELECT {ROW_COLUMNS} FROM sessions WHERE id = ?", (session_id,)).fetchone()
        except sqlite3.Error as exc:
            log.warning("session store unreadable (%s); this request starts a fresh session", exc)
            return Session()
        if row is None or self._clock() - row[6] > self._idle:
            self._rows.discard(session_id)
            return Session()
        self._rows.add(session_id)
        return from_row(row)

    async def save(self, session_id: str, session: Session) -> bool:
        try:
            self._db.execute(
                "INSERT INTO sessions (id, model, oneoff, parameters, requests, input_tokens, output_tokens, seen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET model = excluded.model, "
                "oneoff = excluded.oneoff, parameters = excluded.parameters, seen = excluded.seen",
                (session_id, session.model, session.oneoff, orjson.dumps(session.parameters).decode(),
                 session.requests, session.input_tokens, session.output_tokens, self._clock()))
        except sqlite3.Error as exc:
            log.warning("session settings not kept: the session store failed (%s)", exc)
            return False
        self._rows.add(session_id)
        return True

    def tally(self, session_id: str, usage: Usage | None) -> None:
        if session_id not in self._rows:
            return  # no command has touched this conversation: nothing to count it in
        try:
            self._db.execute(
                "UPDATE sessions SET requests = requests + 1, input_tokens = input_tokens + ?, "
                "output_tokens = output_tokens + ?, seen = ? WHERE id = ?",
                (usage.input_tokens if usage else 0, usage.output_tokens if usage else 0, self._clock(), session_id))
        except sqlite3.Error as exc:
            log.debug("session usage not counted (%s)", exc)

    async def close(self) -> None:
        self._db.close()
