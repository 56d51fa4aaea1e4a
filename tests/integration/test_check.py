"""`lip check` as an operator reads it: a 100-column terminal (a real pty) or a pipe, the backend_type each
file declares, and the tokenizer, margin and output policy of every model."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

from integration.conftest import write_backend
from shared_data import write_tokenizer_json

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "config"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def environment(extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("LIP_") and not k.endswith("_API_KEY") and k not in ("COLUMNS", "LINES")}
    return {**base, **extra}


def piped(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lip", "check", *args], capture_output=True, text=True,
                          timeout=60, env=environment(env or {}), check=False)


def in_terminal(*args: str, columns: int = 100, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run `lip check` with its output on a pseudo-terminal of ``columns`` columns (no COLUMNS variable)."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "lip", "check", *args], stdout=follower, stderr=follower,
                               stdin=subprocess.DEVNULL, env=environment({"TERM": "xterm", **(env or {})}))
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the follower side closed: the program ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    code = process.wait(timeout=60)
    return code, ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


def widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_fits_100_columns_when_piped_with_columns_100() -> None:
    result = piped("--config-dir", str(EXAMPLES), env={"COLUMNS": "100"})
    assert result.returncode == 2, result.stderr  # the examples' keys are not set here
    assert widest(result.stdout) <= 100
    assert "…" not in result.stdout, "nothing is cut off"
    assert "large-context:large-context-model" in result.stdout


def test_fits_100_columns_when_piped_without_columns() -> None:
    result = piped("--config-dir", str(EXAMPLES))
    assert 80 < widest(result.stdout) <= 100
    assert "\x1b[" not in result.stdout, "no colour codes into a pipe"


def test_fits_a_100_column_terminal() -> None:
    code, text = in_terminal("--config-dir", str(EXAMPLES))
    assert code == 2
    assert widest(text) <= 100
    assert "large-context:large-context-model" in text
    assert "Traceback" not in text


def row(text: str, first: str) -> list[str]:
    """The cells of the table row that starts with ``first``."""
    for line in text.splitlines():
        if line.startswith(first + " "):
            return line.split()
    raise AssertionError(f"no row {first!r} in:\n{text}")


def test_type_is_the_backend_type_a_file_declares() -> None:
    text = piped("--config-dir", str(EXAMPLES), env={"COLUMNS": "100"}).stdout
    assert row(text, "openai")[:4] == ["openai", "openai", "openai", "NOT"], "a preset is named by its own name"
    assert row(text, "anthropic")[:3] == ["anthropic", "anthropic", "anthropic"]
    assert row(text, "mock")[:4] == ["mock", "mock", "mock", "ready"]
    assert row(text, "internal-llm")[:3] == ["internal-llm", "custom", "openai"]


def test_a_file_extending_a_preset_shows_the_preset_it_names(tmp_path: Path) -> None:
    write_backend(tmp_path, "work-openai", "backend_type: openai\napi_key_env_var: WORK_KEY\n")
    text = piped("--config-dir", str(tmp_path), env={"COLUMNS": "100", "WORK_KEY": "k"}).stdout
    assert row(text, "work-openai")[:4] == ["work-openai", "openai", "openai", "ready"]
    assert "WORK_KEY (set)" in text


def test_tokenizer_margin_and_policy_of_each_model(tmp_path: Path) -> None:
    write_tokenizer_json(str(tmp_path / "tok.json"))
    write_backend(tmp_path, "b", f"""\
        backend_type: custom
        api_base_url: http://127.0.0.1:9/v1
        models:
          plain:
            limits: {{max_input_tokens: 1000}}
          gpt-4-turbo:
            limits: {{max_input_tokens: 1000, token_count_margin: 0.1, output_policy: reject}}
          tekken:
            tokenizer: mistral_tekken
          counted:
            tokenizer: upstream
          local-file:
            tokenizer: {tmp_path / "tok.json"}
        """)
    (tmp_path / "proxy.yaml").write_text("limits:\n  token_count_margin: 0.05\n")
    result = piped("--config-dir", str(tmp_path), env={"COLUMNS": "100"})
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    assert widest(text) <= 100
    assert row(text, "b:plain")[-3:] == ["o200k_base", "5%", "clamp"], "proxy.yaml's margin, the default policy"
    assert row(text, "b:gpt-4-turbo")[-3:] == ["cl100k_base", "10%", "reject"]
    assert row(text, "b:tekken")[-3:] == ["mistral_tekken", "5%", "clamp"]
    assert row(text, "b:counted")[-5:] == ["upstream", "(else", "o200k_base)", "5%", "clamp"]
    assert str(tmp_path / "tok.json")[:20] in text
