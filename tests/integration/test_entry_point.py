"""The user guide's start command, ``python -m src.core.cli --default-backend internal-llm``, as it is written.

It runs with the project's Python from a directory holding the repository's ``src/`` and a ``./config``
(the repository root once the operator has put the guide's backend.yaml in ``config/``); it is ``lip serve``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx

from fakes.openai_upstream import FakeOpenAI
from integration.conftest import write_backend
from integration.processes import ROOT, clean_env, free_port, running


def guide_root(tmp_path: Path, fake: FakeOpenAI) -> Path:
    """A repository root as the guide's reader has it: the project's src/ and config/backends/internal-llm."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "src").symlink_to(ROOT / "src")
    write_backend(root / "config", "internal-llm", f"""\
        backend_type: "custom"
        api_base_url: "{fake.base_url}"
        api_key_env_var: "INTERNAL_LLM_API_KEY"
        models:
          "company-gpt-large":
            limits:
              context_window: 32000
              max_input_tokens: 24000
              max_output_tokens: 8000
              requests_per_minute: 100
        """)
    return root


def test_the_guides_start_command_serves_the_guides_backend(tmp_path: Path, fake: FakeOpenAI) -> None:
    root, port = guide_root(tmp_path, fake), free_port()
    env = clean_env(tmp_path, INTERNAL_LLM_API_KEY="your-key")
    argv = [sys.executable, "-m", "src.core.cli", "--default-backend", "internal-llm", "--port", str(port)]
    with running(argv, port=port, env=env, cwd=root, log=tmp_path / "out.log") as proxy:
        reply = httpx.post(proxy.url + "/v1/chat/completions", timeout=10,
                           json={"model": "company-gpt-large", "messages": [{"role": "user", "content": "hi"}]})
        models = httpx.get(proxy.url + "/v1/models", timeout=10).json()
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-lip-backend"] == "internal-llm"
    assert reply.json()["choices"][0]["message"]["content"] == "Hello from the fake upstream."
    (request,) = fake.chat_requests()
    assert request.headers["authorization"] == "Bearer your-key"
    assert request.body["model"] == "company-gpt-large"
    assert "internal-llm:company-gpt-large" in [m["id"] for m in models["data"]]
    output = proxy.output()
    assert f"on http://127.0.0.1:{port}" in output
    assert "default route: internal-llm" in output
    for surface in ("OpenAI Chat Completions: POST /v1/chat/completions", "OpenAI Responses: POST /v1/responses",
                    "Anthropic Messages: POST /v1/messages", "POST /v1beta/models/{model}:generateContent",
                    "Models: GET /v1/models", "Usage: GET /v1/usage", "Dashboard: GET /dashboard",
                    "Metrics (Prometheus): GET /metrics"):
        assert surface in output, f"the banner lists every surface: {surface}"
    assert "backend internal-llm ready" in output
    assert "your-key" not in output


def test_it_takes_lips_flags_and_help(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "src.core.cli", "serve", "--help"], cwd=ROOT,
                            env=clean_env(tmp_path), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    for flag in ("--config-dir", "--default-backend", "--port", "--workers", "--log-level", "--usage-store"):
        assert flag in result.stdout


def test_an_unknown_default_backend_is_lips_error_not_a_traceback(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "src").symlink_to(ROOT / "src")
    result = subprocess.run([sys.executable, "-m", "src.core.cli", "--default-backend", "internal-llm"], cwd=root,
                            env=clean_env(tmp_path), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "--default-backend: unknown backend 'internal-llm'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_wheel_ships_lip_only(tmp_path: Path) -> None:
    """src/core exists for the guide's command; it must not become a top-level ``core`` package of the wheel."""
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(tree)],
                   check=True, capture_output=True, timeout=300, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"lip"}
    assert "lip/cli.py" in names
