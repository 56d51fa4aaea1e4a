#!/usr/bin/env python3
"""Render the compatibility tables of docs/clients.md from a run of tests/clients.

    python scripts/clients_table.py --run              # run tests/clients, then rewrite docs/clients.md
    python scripts/clients_table.py --report FILE      # from a report the tests wrote (LIP_CLIENTS_REPORT=FILE)
    ... --check                                        # exit 1 if docs/clients.md would change

Everything between the ``<!-- generated:begin -->`` and ``<!-- generated:end -->`` markers is replaced; the
rest of the page is hand-written. ``.ci/run`` runs it with ``--report`` after the suite (whose client tests
wrote the report) and says loudly when the committed table is stale.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "clients.md"
BEGIN, END = "<!-- generated:begin -->", "<!-- generated:end -->"
UPSTREAMS = ("anthropic", "openai", "gemini", "openai-responses")  # the protocols a backend may speak
AGENT_UPSTREAMS = (*UPSTREAMS, "mock")
UPSTREAM_TITLES = {"anthropic": "`protocol: anthropic`", "openai": "`protocol: openai`",
                   "gemini": "`protocol: gemini`", "openai-responses": "`protocol: openai-responses`",
                   "mock": "built-in mock (no config)"}
NAMES = {"claude-code": "Claude Code", "codex": "Codex CLI", "google-genai": "google-genai (Python)",
         "openai-python": "openai (Python)", "anthropic-python": "anthropic (Python)"}
FATE_ORDER = ("unchanged", "as", "honoured", "default", "dropped", "LOST")


def load(report: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in report.read_text().splitlines() if line.strip()]


def _cell(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "—"
    failed = [r for r in rows if not r["ok"]]
    if failed:
        notes = sorted({r["note"] for r in failed})
        return f"**fails** ({len(failed)}/{len(rows)}): " + "; ".join(n.replace("|", "\\|") for n in notes)
    notes = sorted({r["note"] for r in rows if r.get("kind") == "agent"})
    return "works" + (f": {'; '.join(notes)}" if notes else f" ({len(rows)}/{len(rows)})")


def _grid(records: list[dict[str, Any]], kind: str, upstreams: tuple[str, ...] = UPSTREAMS) -> list[str]:
    grouped: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.get("kind") == kind:
            grouped[(r["client"], r["version"], r["surface"])][r["upstream"]].append(r)
    head = ["| client | version | surface | " + " | ".join(UPSTREAM_TITLES[u] for u in upstreams) + " |",
            "| --- | --- | --- | " + " | ".join("---" for _ in upstreams) + " |"]
    body = [f"| {NAMES.get(c, c)} | {v} | {s} | " + " | ".join(_cell(cells[u]) for u in upstreams) + " |"
            for (c, v, s), cells in sorted(grouped.items())]
    return head + body


def _fates(records: list[dict[str, Any]]) -> list[str]:
    """Per client surface and upstream: what became of each feature the recorded clients set."""
    seen: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in records:
        if r.get("kind") == "replay":
            for feature, fate in (r.get("fates") or {}).items():
                seen[(r["surface"], feature)][r["upstream"]].add(fate)
    head = ["| client surface | feature | " + " | ".join(UPSTREAM_TITLES[u] for u in UPSTREAMS) + " |",
            "| --- | --- | " + " | ".join("---" for _ in UPSTREAMS) + " |"]

    def show(fates: set[str]) -> str:
        if not fates:
            return "—"
        return ", ".join(sorted(fates, key=lambda f: (FATE_ORDER.index(f.split(" ")[0]), f))).replace("|", "\\|")

    body = [f"| {surface} | `{feature}` | " + " | ".join(show(by[u]) for u in UPSTREAMS) + " |"
            for (surface, feature), by in sorted(seen.items())]
    return head + body


def render(records: list[dict[str, Any]]) -> str:
    agents = sorted({f"{NAMES.get(r['client'], r['client'])} {r['version']}" for r in records
                     if r.get("kind") == "agent"})
    lines = [BEGIN, "", "### The real programs: a tool round trip through the proxy", "",
             f"Agents: {', '.join(agents) or 'none ran'} (tests/clients/test_agent_round_trip.py).", "",
             *_grid(records, "agent", AGENT_UPSTREAMS), "",
             "### Recorded requests replayed to every upstream protocol", "",
             "Each recorded request (tests/fixtures/captures/, tests/clients/fixtures/) sent as the client sent it; "
             "works = answered, and nothing it sent was silently lost (tests/clients/test_replay_fixtures.py).", "",
             *_grid(records, "replay"), "",
             "### What becomes of each feature the recorded clients set", "",
             "`unchanged`: reaches an upstream of the client's own protocol as sent; `as X`: mapped to the "
             "upstream's field X; `dropped`: the upstream's protocol has no equivalent, and the proxy names it in "
             "the `x-lip-dropped` response header; `honoured`: the proxy acts on it itself (routing, streaming, "
             "its response store); `default`: the value asks for nothing. Content (messages, system prompt, "
             "tools and their parameters, tool results) is checked apart: all of it must arrive.", "",
             *_fates(records), "", END]
    return "\n".join(lines)


def rewrite(doc: str, table: str) -> str:
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{DOC}: the {BEGIN} / {END} markers are missing")
    return doc[:doc.index(BEGIN)] + table + doc[doc.index(END) + len(END):]


def run_tests(report: Path) -> int:
    env = {**os.environ, "LIP_CLIENTS_REPORT": str(report)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/clients"],
                          cwd=ROOT, env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", action="store_true", help="run tests/clients first")
    source.add_argument("--report", type=Path, help="a report written by tests/clients (LIP_CLIENTS_REPORT)")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if docs/clients.md is stale")
    args = parser.parse_args(argv)
    report = args.report
    if args.run:
        report = Path(tempfile.mkdtemp(prefix="lip-clients-")) / "report.jsonl"
        code = run_tests(report)
        if code not in (0, 1):
            return code
    assert report is not None
    if not report.exists():
        print(f"{report}: no report (did tests/clients run with LIP_CLIENTS_REPORT set?)", file=sys.stderr)
        return 2
    old = DOC.read_text()
    new = rewrite(old, render(load(report)))
    if args.check:
        if new != old:
            print(f"{DOC} is stale: run `python scripts/clients_table.py --run` and commit it", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new)
    print(f"{DOC}: tables rewritten from {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
