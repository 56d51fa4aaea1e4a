"""The command line as an operator runs it: `lip check`, `lip models`, `python -m lip serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from integration.conftest import write_backend

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "config"


def lip(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LIP_") and not k.endswith("_API_KEY")}
    return subprocess.run([sys.executable, "-m", "lip", *args], capture_output=True, text=True, timeout=60,
                          env={**base, "COLUMNS": "200", **(env or {})}, check=False)


def test_check_lists_backends_keys_and_limits_without_values() -> None:
    secret = "sk-internal-secret-value-123"
    result = lip("check", "--config-dir", str(EXAMPLES), env={"INTERNAL_LLM_API_KEY": secret})
    assert "internal-llm" in result.stdout
    assert "INTERNAL_LLM_API_KEY (set)" in result.stdout
    assert "internal-llm:company-gpt-large" in result.stdout
    assert "24000" in result.stdout  # max_input_tokens of the user's example
    assert secret not in result.stdout + result.stderr
    # Other example backends have no key in this environment: check says which, and fails.
    assert result.returncode == 2
    assert "cannot serve" in result.stdout


def test_check_fails_on_config_errors_naming_file_and_key(tmp_path: Path) -> None:
    write_backend(tmp_path, "bad", "backend_type: custom\napi_base_url: http://x/v1\ntimout: 5\n"
                                   "models:\n  m:\n    limits:\n      context_window: 10\n      max_input_tokens: 20\n")
    write_backend(tmp_path, "worse", "backend_type: custum\n")
    result = lip("check", "--config-dir", str(tmp_path))
    assert result.returncode == 1
    assert "2 configuration errors" not in result.stderr  # there are three
    assert "3 configuration errors" in result.stderr
    assert f"{tmp_path}/backends/bad/backend.yaml: timout: unknown key (did you mean 'timeout'?)" in result.stderr
    assert "models.m.limits: max_input_tokens (20) must not exceed context_window (10)" in result.stderr
    assert "backend_type: unknown type 'custum' (did you mean 'custom'?)" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_on_a_missing_explicit_directory_fails(tmp_path: Path) -> None:
    result = lip("check", "--config-dir", str(tmp_path / "nope"))
    assert result.returncode == 1
    assert "does not exist" in result.stderr


def test_models_lists_routable_selectors(tmp_path: Path) -> None:
    result = lip("models", "--config-dir", str(EXAMPLES), env={"INTERNAL_LLM_API_KEY": "k"})
    assert result.returncode == 0
    lines = result.stdout.split()
    assert "internal-llm:company-gpt-large" in lines
    assert "mock:mock-model" in lines
    assert not any(line.startswith("multi-model:") for line in lines), "no key set: not routable"


def test_serve_prints_where_it_listens_and_answers(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIP_")}
    env["LIP_CONFIG_DIR"] = str(EXAMPLES)
    process = subprocess.Popen(
        [sys.executable, "-m", "lip", "--port", str(port), "--default-backend", "mock"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                      json={"messages": [{"role": "user", "content": "ping"}]}, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "proxy did not come up"
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.headers["x-lip-backend"] == "mock"
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=10)
    assert f"on http://127.0.0.1:{port}" in output
    assert "backend mock ready" in output
    assert "backend internal-llm NOT ready: environment variable INTERNAL_LLM_API_KEY is not set" in output
