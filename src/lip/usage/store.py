"""The usage-store interface, and ``open_store`` that picks SQLite or PostgreSQL from a URL.

URLs: ``sqlite:///data/usage.db`` (relative to ``base_dir``, default the working directory; ``absolute``
makes such a URL absolute once, so every reader of a setting opens the same file),
``sqlite:////var/lib/lip/usage.db`` (absolute), ``sqlite:///:memory:`` (tests),
``postgresql://user:pass@host:5432/db`` or ``postgres://...`` (passed to asyncpg as given;
its ``url`` shows the password as ``***``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from lip.core.errors import ConfigError
from lip.usage.postgres import PostgresUsageStore
from lip.usage.records import UsageQuery, UsageRecord
from lip.usage.sqlite import SqliteUsageStore

SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql", "postgres")
UNPARSEABLE = "<unparseable URL>"


class UsageStore(Protocol):
    """Where usage records are kept. ``start`` and ``close`` are idempotent; ``write`` and ``query``
    start the store if needed and raise ProxyError (503, ``usage_store_unavailable``) when it fails.
    """

    @property
    def url(self) -> str:
        """The store's URL with any password hidden, for logs and start-up output."""
        ...

    async def start(self) -> None: ...

    async def write(self, records: Sequence[UsageRecord]) -> None: ...

    async def query(self, q: UsageQuery) -> dict[str, Any]: ...

    async def close(self) -> None: ...


def open_store(url: str, *, base_dir: Path | None = None, pool_size: int = 4) -> UsageStore:
    """The store for ``url`` (not started yet). A URL it cannot use raises ConfigError."""
    if url.startswith(SQLITE_PREFIX):
        rest = url[len(SQLITE_PREFIX) :]
        if not rest:
            raise ConfigError([f"usage.store: {url!r} names no file; expected sqlite:///path/usage.db"])
        if rest == ":memory:":
            return SqliteUsageStore(None, url=url)
        path = Path(rest)
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        return SqliteUsageStore(path, url=url)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in POSTGRES_SCHEMES:
        shown = redact(url)
        if shown == UNPARSEABLE:
            raise ConfigError(["usage.store: the postgresql:// URL does not parse (is the port a number?)"])
        return PostgresUsageStore(url, url=shown, pool_size=pool_size)
    raise ConfigError([
        f"usage.store: expected sqlite:///path/usage.db or postgresql://user@host/db; got {redact(url)!r}"
    ])


def absolute(url: str, base_dir: Path) -> str:
    """``url`` with a relative SQLite path made absolute under ``base_dir``; any other URL as it is."""
    rest = url.removeprefix(SQLITE_PREFIX)
    if rest == url or not rest or rest == ":memory:" or Path(rest).is_absolute():
        return url
    return SQLITE_PREFIX + str(base_dir.resolve() / rest)


def default_path(environ: Mapping[str, str]) -> Path:
    """The per-user usage file: ``$XDG_DATA_HOME/lip/usage.db``, else ``~/.local/share/lip/usage.db``.

    The XDG base-directory rule for user data: the same file whichever directory ``lip serve`` or
    ``lip usage`` runs in, and never inside a working tree. A relative XDG_DATA_HOME is ignored (the spec).
    """
    data_home = environ.get("XDG_DATA_HOME", "")
    if not data_home or not Path(data_home).is_absolute():
        home = environ.get("HOME")
        try:
            base = Path(home) if home else Path.home()
        except RuntimeError as exc:  # no HOME and no passwd entry
            raise ConfigError(["usage.store: no per-user data directory (HOME and XDG_DATA_HOME are unset); "
                               "set usage.store in proxy.yaml or --usage-store"]) from exc
        data_home = str(base / ".local" / "share")
    return Path(data_home) / "lip" / "usage.db"


def redact(url: str) -> str:
    """``url`` with the password (if any) replaced by ``***``; a URL that does not parse is hidden whole."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        return UNPARSEABLE
    if parts.password is None and "password" not in parts.query.lower():
        return url
    if "password" in parts.query.lower():
        parts = parts._replace(query="***")
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    return urlunsplit(parts)
