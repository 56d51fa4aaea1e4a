"""The real Claude Code and Codex CLI, pinned in tests/clients/package.json, through the real proxy.

For each agent x upstream protocol (Anthropic Messages, OpenAI Chat Completions, Gemini generateContent):
``lip serve`` on an ephemeral port with one backend of that protocol pointed at a fake upstream whose
scripted conversation (conversation.py) first answers with a tool call reading ``secret.txt`` in the
agent's temp work dir, then in text quoting the tool result. The agent runs non-interactively
(``claude -p``, ``codex exec``); the test asserts its final answer carries the file's secret (which is
nowhere else: not in the prompt, not in the script), that the upstream saw the tool offered, the call's
result come back, and that the agent tried to reach nothing but 127.0.0.1.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clients import agents
from clients.conversation import FILE, REPLY_PREFIX, Conversation
from clients.known import ISSUE, KNOWN
from clients.proxy import BACKEND, MODELS, lip_serve, write_config
from clients.report import record_result
from fakes.anthropic_upstream import FakeAnthropic
from fakes.gemini_upstream import FakeGemini
from fakes.openai_upstream import FakeOpenAI
from fakes.responses_upstream import FakeResponses

PROTOCOLS = ("anthropic", "openai", "gemini", "openai-responses")
PROMPT = f"Read the file {FILE} in the current directory and tell me the magic word it contains."
FAKES: dict[str, Callable[[], Any]] = {"anthropic": FakeAnthropic, "openai": FakeOpenAI, "gemini": FakeGemini,
                                       "openai-responses": FakeResponses}
pytestmark = pytest.mark.timeout(agents.RUN_TIMEOUT + 60)


@dataclass
class Stack:
    protocol: str
    fake: Any
    conversation: Conversation
    url: str
    log: Callable[[], str]
    workdir: Path
    home: Path
    usage_db: Path
    secret: str

    def generate_bodies(self) -> list[dict[str, Any]]:
        fetch = {"anthropic": "message_requests", "openai": "chat_requests", "gemini": "generate_requests",
                 "openai-responses": "response_requests"}
        return [r.body for r in getattr(self.fake, fetch[self.protocol])()]


@pytest.fixture(params=PROTOCOLS)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    protocol: str = request.param
    workdir, home, config = tmp_path / "work", tmp_path / "home", tmp_path / "config"
    for d in (workdir, home, config):
        d.mkdir()
    secret = f"PAPAYA-{secrets.token_hex(4).upper()}"
    (workdir / FILE).write_text(f"the magic word is {secret}\n")
    conversation = Conversation(protocol, workdir)
    with FAKES[protocol]() as fake:
        fake.responder = conversation
        write_config(config, protocol, fake.base_url)
        with lip_serve(config, tmp_path / "usage.db", rewrite_to=f"{BACKEND}:{MODELS[protocol]}") as served:
            yield Stack(protocol, fake, conversation, served.url, lambda: served.log, workdir, home,
                        tmp_path / "usage.db", secret)


def _explain(stack: Stack, run: agents.Run) -> str:
    errors = [line for line in (run.final + "\n" + run.stderr).splitlines() if "error" in line.lower()]
    summary = (errors[0] if errors else run.final.strip().splitlines()[0] if run.final.strip() else "no answer")
    return (f"agent exit {run.returncode}: {summary[:160]}\n--- final ---\n{run.final}\n"
            f"--- stdout ---\n{run.stdout[-3000:]}\n"
            f"--- stderr ---\n{run.stderr[-3000:]}\n--- upstream turns ---\n{stack.conversation.turns}\n"
            f"--- proxy log ---\n{stack.log()[-4000:]}")


def _check_round_trip(stack: Stack, run: agents.Run, guard: agents.Guard, tools: tuple[str, ...]) -> None:
    why = _explain(stack, run)
    assert run.returncode == 0, why
    assert stack.secret in run.final, why
    turns = stack.conversation.turns
    calls = [i for i, t in enumerate(turns) if t.startswith("call:")]
    assert calls and turns[calls[0]].removeprefix("call:").rsplit("__", 1)[-1] in tools, why
    assert any(t.startswith("text:" + REPLY_PREFIX) and stack.secret in t for t in turns), why
    assert calls[0] < next(i for i, t in enumerate(turns) if stack.secret in t), why
    bodies = stack.generate_bodies()
    assert any(stack.secret in r for b in bodies for r in stack.conversation.tool_results(b)), \
        "the tool result never reached the upstream\n" + why
    # every request the upstream got was accepted (a refused one would let an agent silently retry with less)
    assert len(stack.conversation.offered) == len(bodies), f"the upstream refused a request\n{why}"
    assert guard.attempts == [], f"the agent tried to leave 127.0.0.1: {guard.attempts}"
    assert "Traceback" not in stack.log(), why
    assert _usage_rows(stack.usage_db) >= 2, f"fewer than two usage records of the backend\n{why}"


def _usage_rows(db_path: Path) -> int:
    """Successful usage records of the backend, once the proxy has written them (it batches)."""
    rows = 0
    for _ in range(100):
        if db_path.exists():
            with sqlite3.connect(db_path) as db:
                rows = db.execute("select count(*) from usage_records where status = 200 and backend = ?",
                                  (BACKEND,)).fetchone()[0]
            if rows >= 2:
                return int(rows)
        time.sleep(0.1)
    return int(rows)


def _checked(stack: Stack, run: agents.Run, guard: agents.Guard, *, tools: tuple[str, ...], client: str, package: str,
             surface: str, known: str | None) -> None:
    """Check the round trip and record the cell's result for docs/clients.md (clients/report.py)."""
    cell = {"kind": "agent", "client": client, "version": agents.PINS[package], "surface": surface,
            "upstream": stack.protocol}
    try:
        _check_round_trip(stack, run, guard, tools)
    except AssertionError as exc:
        record_result(**cell, ok=False, note=known or (str(exc).splitlines() or ["assertion failed"])[0])
        raise
    call = next(t for t in stack.conversation.turns if t.startswith("call:")).removeprefix("call:")
    record_result(**cell, ok=True, note=f"tool round trip ({call})")


def _known(request: pytest.FixtureRequest, agent: str, protocol: str) -> str | None:
    reason = KNOWN.get((agent, protocol))
    if reason is not None:
        request.applymarker(pytest.mark.xfail(reason=f"{ISSUE}: {reason}", strict=False))
    return reason


def test_claude_code_tool_round_trip(stack: Stack, request: pytest.FixtureRequest) -> None:
    known = _known(request, "claude", stack.protocol)
    claude = agents.require("claude")
    with agents.guard() as guard:
        run = agents.run_claude(claude, base_url=stack.url, model=None, prompt=PROMPT,
                                workdir=stack.workdir, home=stack.home, guard_url=guard.url)
    _checked(stack, run, guard, tools=("Read",), client="claude-code", package=agents.CLAUDE_PACKAGE,
             surface="Anthropic /v1/messages (default model)", known=known)


# Codex's tool set depends on the model it believes it talks to: its default (code mode: one custom `exec` tool
# over nested tools, declared in an `additional_tools` input item) and gpt-5.5 (functions, a custom apply_patch,
# tool_search, web_search). The proxy's rewrite rule sends both to the upstream's model.
CODEX_MODELS = {"default": None, "gpt-5.5": "gpt-5.5"}


@pytest.mark.parametrize("codex_model", list(CODEX_MODELS))
def test_codex_tool_round_trip(stack: Stack, codex_model: str, request: pytest.FixtureRequest) -> None:
    known = _known(request, f"codex:{codex_model}", stack.protocol)
    codex = agents.require("codex")
    with agents.guard() as guard:
        run = agents.run_codex(codex, base_url=f"{stack.url}/v1", model=CODEX_MODELS[codex_model], prompt=PROMPT,
                               workdir=stack.workdir, home=stack.home, guard_url=guard.url)
    _checked(stack, run, guard, tools=("exec_command", "exec"), client="codex", package=agents.CODEX_PACKAGE,
             surface=f"OpenAI /v1/responses ({codex_model} model)", known=known)


@pytest.mark.parametrize(("name", "package"), [("claude", agents.CLAUDE_PACKAGE), ("codex", agents.CODEX_PACKAGE)])
def test_installed_agents_are_the_pinned_versions(name: str, package: str) -> None:
    version = agents.version_of(agents.require(name))
    assert agents.PINS[package] in version, f"{name} --version says {version!r}; pinned {agents.PINS[package]}"


@pytest.mark.parametrize("agent", ["claude-code", "codex"])
def test_agent_on_the_built_in_mock_backend(agent: str, tmp_path: Path) -> None:
    """As a new user tries it first: ``lip serve`` with no configuration, the agent asking for ``mock-model``
    (issue 15's table: both failed with a 400). The mock answers text and never calls a tool."""
    executable = agents.require("claude" if agent == "claude-code" else "codex")
    workdir, home = tmp_path / "work", tmp_path / "home"
    workdir.mkdir()
    home.mkdir()
    package = agents.CLAUDE_PACKAGE if agent == "claude-code" else agents.CODEX_PACKAGE
    with lip_serve(None, tmp_path / "usage.db") as served, agents.guard() as guard:
        if agent == "claude-code":
            run = agents.run_claude(executable, base_url=served.url, model="mock-model", prompt="Say hello.",
                                    workdir=workdir, home=home, guard_url=guard.url, max_turns=1)
        else:
            run = agents.run_codex(executable, base_url=f"{served.url}/v1", model="mock-model",
                                   prompt="Say hello.", workdir=workdir, home=home, guard_url=guard.url)
        log = served.log
    cell = {"kind": "agent", "client": agent, "version": agents.PINS[package],
            "surface": "Anthropic /v1/messages (mock-model)" if agent == "claude-code"
            else "OpenAI /v1/responses (mock-model)", "upstream": "mock"}
    ok = run.returncode == 0 and bool(run.final.strip()) and not guard.attempts
    record_result(**cell, ok=ok, note="answered" if ok else f"exit {run.returncode}: {run.final[:120]}")
    assert run.returncode == 0, f"{run.final}\n{run.stderr[-2000:]}\n{log[-2000:]}"
    assert run.final.strip(), run.stdout
    assert guard.attempts == [], f"the agent tried to leave 127.0.0.1: {guard.attempts}"
    assert "x-lip-backend" not in run.final  # the answer is the model's text, not an error page
    assert "backend mock ready" in log
