"""scripts/clients_table.py: the tables of docs/clients.md from the client tests' report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("clients_table", ROOT / "scripts" / "clients_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RECORDS = [
    {"kind": "agent", "client": "codex", "version": "0.171.0", "surface": "OpenAI /v1/responses", "upstream": "openai",
     "ok": True, "note": "tool round trip (exec_command)"},
    {"kind": "agent", "client": "codex", "version": "0.171.0", "surface": "OpenAI /v1/responses",
     "upstream": "gemini", "ok": False, "note": "400 a | b"},
    {"kind": "replay", "client": "claude-code", "version": "2.1.332", "surface": "Anthropic /v1/messages",
     "upstream": "openai", "ok": True, "note": "", "dropped": "metadata",
     "fates": {"metadata": "dropped", "max_tokens": "as max_completion_tokens"}},
]


def test_tables_show_each_cell_and_each_feature_fate(tmp_path: Path) -> None:
    script = _script()
    report = tmp_path / "report.jsonl"
    report.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    table = script.render(script.load(report))
    assert ("| Codex CLI | 0.171.0 | OpenAI /v1/responses | — | works: tool round trip (exec_command) | "
            "**fails** (1/1): 400 a \\| b | — | — |") in table
    assert "| Claude Code | 2.1.332 | Anthropic /v1/messages | — | works (1/1) | — | — |" in table
    assert "| Anthropic /v1/messages | `max_tokens` | — | as max_completion_tokens | — | — |" in table
    assert "| Anthropic /v1/messages | `metadata` | — | dropped | — | — |" in table


def test_rewrite_replaces_only_the_generated_part_and_the_page_has_the_markers() -> None:
    script = _script()
    page = f"intro\n{script.BEGIN}\nold\n{script.END}\noutro\n"
    new = f"{script.BEGIN}\nnew\n{script.END}"
    assert script.rewrite(page, new) == f"intro\n{new}\noutro\n"
    doc = (ROOT / "docs" / "clients.md").read_text()
    assert doc.index(script.BEGIN) < doc.index(script.END)
