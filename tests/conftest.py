"""Suite-wide guard: the tests never write into the working tree's data/ nor into the user's own usage store.

Every test that starts a proxy chooses its store (a temporary directory, ``:memory:`` or none). As a
second line, the suite runs with ``XDG_DATA_HOME`` pointing at a temporary directory, so a process that
falls back on the default store (``$XDG_DATA_HOME/lip/usage.db``) writes there, never into the user's
``~/.local/share/lip``. When the suite ends, the guard fails it if the repository's ``data/`` changed.
(The user's own store is kept out by the redirect rather than watched: on a machine shared by several
runs of the same user, a proxy the user runs meanwhile may write there.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def snapshot(path: Path) -> dict[str, tuple[int, int]] | None:
    """Every file under ``path`` with its size and modification time; None if ``path`` is absent."""
    if not path.exists():
        return None
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return {str(f): (f.stat().st_size, f.stat().st_mtime_ns) for f in files}


@pytest.fixture(scope="session", autouse=True)
def nothing_written_into_the_tree_or_the_users_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    data = ROOT / "data"
    before_data = snapshot(data)
    before = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
    try:
        yield
    finally:
        if before is None:
            del os.environ["XDG_DATA_HOME"]
        else:
            os.environ["XDG_DATA_HOME"] = before
    assert snapshot(data) == before_data, f"the tests wrote into {data}: give every proxy a store of the test's own"
