"""The shared-state URL (``limits.store``, ``--limits-store``), read in this one place.

``memory`` (this process); ``mmap:///path`` or ``sqlite:///path`` (a file the processes of one
machine share: three slashes, then a relative path or /an/absolute/one; sessions and stored
Responses go in files beside it); ``redis://``, ``rediss://`` or ``unix://`` (every replica);
``postgresql://`` or ``postgres://`` (every replica, in tables of a database they share).
"""

from __future__ import annotations

import re
from pathlib import Path

MEMORY = "memory"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
MACHINE_SCHEMES = ("mmap:///", "sqlite:///")
STORE_URL = re.compile(r"^(memory|(redis|rediss|unix|postgresql|postgres)://\S+|(sqlite|mmap):///\S+)$")
EXPECTED = ("expected memory, redis://host:6379/0 (or rediss://, unix://), postgresql://user@host/db "
            "(or postgres://), mmap:///path or sqlite:///path")


def check(url: str) -> str:
    """``url`` when it names a shared-state store; else ValueError saying what is expected."""
    if not STORE_URL.match(url):
        raise ValueError(EXPECTED)
    return url


def is_redis(url: str) -> bool:
    return url.startswith(REDIS_SCHEMES)


def is_postgres(url: str) -> bool:
    return url.startswith(POSTGRES_SCHEMES)


def kind(url: str) -> str:
    """``memory``, ``mmap``, ``sqlite``, ``redis`` or ``postgresql`` (for metrics labels and readiness)."""
    if is_redis(url):
        return "redis"
    return "postgresql" if is_postgres(url) else url.partition(":")[0]


def machine_file(url: str, suffix: str = "") -> Path | None:
    """The limits file of a machine-wide ``url`` (with ``suffix``: a file beside it); None otherwise."""
    for scheme in MACHINE_SCHEMES:
        if url.startswith(scheme):
            path = Path(url.removeprefix(scheme))
            return path.with_name(path.stem + suffix) if suffix else path
    return None


def mmap_url(path: Path) -> str:
    """The shared-state URL of a memory-mapped limits file at ``path``."""
    return f"mmap:///{path}"


def display(url: str) -> str:
    """``url`` without user-info (a password never reaches a log or a readiness answer)."""
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rpartition("@")[2]
