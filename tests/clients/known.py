"""Cells that fail today because of the proxy (issue 15, being fixed in src/lip/wire and src/lip/frontends).

{(test, upstream protocol): what fails}. Each is marked xfail (not strict: the fix may land any moment), still
runs, and shows as XPASS once fixed; then its entry is deleted here. An entry is a known bug, never a way
to hide a new one: a cell not listed must pass.
"""

from __future__ import annotations

ISSUE = "issue 15"
KNOWN: dict[tuple[str, str], str] = {
    ("claude", "openai"): "400 messages.1.role: Claude Code's mid-conversation system message",
    ("claude", "gemini"): "400 messages.1.role: Claude Code's mid-conversation system message",
    ("codex", "anthropic"): "400 'namespace' tools are not supported (Codex's multi_agent_v1)",
    ("codex", "openai"): "400 'namespace' tools are not supported (Codex's multi_agent_v1)",
    ("codex", "gemini"): "400 'namespace' tools are not supported (Codex's multi_agent_v1)",
}
