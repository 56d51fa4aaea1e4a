"""The real proxy as a user starts it: ``lip serve`` in its own process on an ephemeral 127.0.0.1 port,
configured by a temp config dir whose one backend (``up``) speaks ``protocol:`` to a fake upstream."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fakes import anthropic_upstream

UPSTREAM_KEY_ENV = "LIP_AGENTS_UPSTREAM_KEY"
MODELS = {"anthropic": "claude-sonnet-4-5", "openai": "gpt-5.5", "gemini": "gemini-3-pro",
          "openai-responses": "gpt-5.5"}
BACKEND = "up"
_LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def backend_yaml(protocol: str, base_url: str) -> str:
    extra = f'headers:\n  anthropic-version: "{anthropic_upstream.VERSION}"\n' if protocol == "anthropic" else ""
    return (f"backend_type: custom\nprotocol: {protocol}\napi_base_url: {base_url}\n"
            f"api_key_env_var: {UPSTREAM_KEY_ENV}\n{extra}max_retries: 0\ntimeout: 60\n"
            f"models:\n  {MODELS[protocol]}: {{}}\n")


def write_config(config_dir: Path, protocol: str, base_url: str) -> Path:
    path = config_dir / "backends" / BACKEND / "backend.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(backend_yaml(protocol, base_url))
    return config_dir


@dataclass
class Served:
    url: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @property
    def log(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def lip_serve(config_dir: Path | None, usage_db: Path, *, rewrite_to: str | None = None,
              start_timeout: float = 30) -> Iterator[Served]:
    """``config_dir`` None: no configuration at all, as on a fresh machine (the built-in mock is the default
    route; run in ``usage_db``'s directory, which has no ./config). ``rewrite_to``: a ``--model-rewrite`` rule
    sending every model name there (the agents keep their own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIP_")}
    env[UPSTREAM_KEY_ENV] = "upstream-test-key"
    argv = [sys.executable, "-m", "lip", "serve", *(["--config-dir", str(config_dir)] if config_dir else []),
            "--host", "127.0.0.1", "--port", "0", "--usage-store", f"sqlite:///{usage_db}", "--log-level", "info"]
    if rewrite_to is not None:
        argv += ["--model-rewrite", f".*={rewrite_to}"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               cwd=config_dir or usage_db.parent, stdin=subprocess.DEVNULL)
    assert process.stdout is not None
    served = Served("", process)
    found = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            served.lines.append(line.rstrip("\n"))
            match = _LISTENING.search(line)
            if match and not found.is_set():
                served.url = f"http://127.0.0.1:{match.group(1)}"
                found.set()
        found.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + start_timeout
    while not found.wait(0.1):
        if time.monotonic() > deadline:
            break
    try:
        if not served.url:
            raise RuntimeError(f"lip serve did not start:\n{served.log}")
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
