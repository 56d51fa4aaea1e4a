"""The real coding agents (Claude Code, Codex CLI) as the tests run them: found, isolated, bounded.

The versions are pinned in ONE place, ``tests/clients/package.json`` (``package-lock.json`` follows it);
``scripts/install-agents.sh`` installs them into ``tests/clients/node_modules`` (``.ci/run`` calls it, and
fails when it fails). ``LIP_AGENTS_BIN`` points the tests at another directory holding ``claude`` and
``codex``. Without the binaries a test is skipped with a loud reason, except under CI (``CI`` set), where
it fails: there they must run.

Every run gets a fresh HOME (and CODEX_HOME), the vendors' switches for telemetry, update checks and
other non-essential traffic off, and HTTP(S)_PROXY pointed at a :class:`Guard` on 127.0.0.1 that refuses
and records every connection an agent tries to open anywhere but 127.0.0.1 (NO_PROXY): a test asserts
the guard saw nothing, so no vendor is ever reached and nothing waits on one.
"""

from __future__ import annotations

import json
import os
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "package.json"
PINS: dict[str, str] = json.loads(PACKAGE.read_text())["dependencies"]
CLAUDE_PACKAGE = "@anthropic-ai/claude-code"
CODEX_PACKAGE = "@openai/codex"
RUN_TIMEOUT = 120  # seconds one agent run may take (a tool round trip is two model turns)


def bin_dir() -> Path:
    override = os.environ.get("LIP_AGENTS_BIN")
    return Path(override) if override else HERE / "node_modules" / ".bin"


def require(name: str) -> Path:
    """The agent's executable; skipped loudly where absent, a failure under CI."""
    path = bin_dir() / name
    if path.exists():
        return path
    reason = (f"!!! {name} is not installed at {path}: the real-agent tests did NOT run. Install the pinned "
              f"agents with scripts/install-agents.sh (or set LIP_AGENTS_BIN) !!!")
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI must run them)")
    pytest.skip(reason)


def version_of(executable: Path) -> str:
    out = subprocess.run([str(executable), "--version"], capture_output=True, text=True, timeout=60,
                         env=_base_env(Path("/nonexistent")), check=False)
    return out.stdout.strip()


# ---- the guard: where an agent would have gone beyond 127.0.0.1 -----------------------------------------


class _GuardHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(4096).decode("latin-1").strip()
        server = self.server
        assert isinstance(server, _GuardServer)
        with server.lock:
            server.attempts.append(line)
        self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


class _GuardServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _GuardHandler)
        self.lock = threading.Lock()
        self.attempts: list[str] = []


@dataclass
class Guard:
    url: str
    server: _GuardServer

    @property
    def attempts(self) -> list[str]:
        """The request lines (``CONNECT host:443 HTTP/1.1``, ``GET http://... HTTP/1.1``) it refused."""
        with self.server.lock:
            return list(self.server.attempts)


@contextmanager
def guard() -> Iterator[Guard]:
    server = _GuardServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Guard(f"http://127.0.0.1:{server.server_address[1]}", server)
    finally:
        server.shutdown()
        server.server_close()


# ---- running an agent ----------------------------------------------------------------------------------


@dataclass
class Run:
    returncode: int | None  # None: killed at the time-out
    stdout: str
    stderr: str
    final: str  # the agent's last message as it reports it


def _base_env(home: Path, proxy: str = "http://127.0.0.1:9") -> dict[str, str]:
    """No variable of the calling shell leaks in (keys, configs): PATH, a fresh HOME, the proxy guard."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TERM": "dumb", "LANG": "C.UTF-8",
        "HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "ALL_PROXY": proxy,
        "https_proxy": proxy, "http_proxy": proxy, "all_proxy": proxy,
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        "NO_COLOR": "1", "CI": "1",
    }


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int | None, str, str]:
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
        return process.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        out, err = process.communicate(timeout=10)
        return None, out, err + f"\n[killed after {timeout} s]"


def run_claude(executable: Path, *, base_url: str, model: str | None, prompt: str, workdir: Path, home: Path,
               guard_url: str, allowed_tools: str = "Read", max_turns: int = 3,
               timeout: float = RUN_TIMEOUT) -> Run:
    """``claude -p PROMPT [--model MODEL] --output-format json`` against ``base_url`` (the proxy); without a
    model, Claude Code's own default, as a user who only sets ANTHROPIC_BASE_URL runs it."""
    env = _base_env(home, guard_url) | {
        "ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": "sk-ant-client-test-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1", "DISABLE_BUG_COMMAND": "1", "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
        "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1", "API_TIMEOUT_MS": str(int(timeout * 1000)),
    }
    argv = [str(executable), "-p", prompt, *(["--model", model] if model else []), "--output-format", "json",
            "--allowedTools", allowed_tools, "--max-turns", str(max_turns)]
    code, out, err = _run(argv, workdir, env, timeout)
    final = ""
    try:
        final = str(json.loads(out.strip().splitlines()[-1]).get("result", ""))
    except (ValueError, IndexError, AttributeError):
        final = out
    return Run(code, out, err, final)


CODEX_CONFIG = """\
{model}model_provider = "lip"
check_for_update_on_startup = false

[analytics]
enabled = false

# Without these Codex 0.171 syncs its curated plugins at start-up (github.com, api.github.com, chatgpt.com).
[features]
plugins = false
apps = false
plugin_sharing = false

[model_providers.lip]
name = "LLM Interactive Proxy"
base_url = "{base_url}"
wire_api = "responses"
env_key = "LIP_CLIENT_KEY"
request_max_retries = 0
stream_max_retries = 0
"""


def run_codex(executable: Path, *, base_url: str, model: str | None, prompt: str, workdir: Path, home: Path,
              guard_url: str, timeout: float = RUN_TIMEOUT) -> Run:
    """``codex exec PROMPT`` with a model provider whose base_url is ``base_url`` (the proxy's /v1); without a
    model, Codex's own default."""
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    chosen = f'model = "{model}"\n' if model else ""
    (codex_home / "config.toml").write_text(CODEX_CONFIG.format(model=chosen, base_url=base_url))
    last = home / "last-message.txt"
    env = _base_env(home, guard_url) | {"CODEX_HOME": str(codex_home), "LIP_CLIENT_KEY": "sk-client-test-key"}
    argv = [str(executable), "exec", "--skip-git-repo-check", "--sandbox", "danger-full-access",
            "--output-last-message", str(last), prompt]
    code, out, err = _run(argv, workdir, env, timeout)
    final = last.read_text() if last.exists() else out
    return Run(code, out, err, final)
