"""Cells that fail today because of the proxy (a known bug, fixed in src/lip/protocols/).

{(test, upstream protocol): what fails}. Each is marked xfail (not strict: the fix may land any moment), still
runs, and shows as XPASS once fixed; then its entry is deleted here. An entry is a known bug, never a way
to hide a new one: a cell not listed must pass.
"""

from __future__ import annotations

ISSUE = "issue 15"
KNOWN: dict[tuple[str, str], str] = {}

# Replayed fixtures: {(fixture id, upstream protocol): what fails} (test_replay_fixtures.py).
KNOWN_REPLAY: dict[tuple[str, str], str] = {}
