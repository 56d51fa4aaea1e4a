"""Which routes the proxy advertises and serves: only those that can serve (lip.app's rule for presets)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lip.app import Settings, build_runtime
from shared_data import shared_encoding


def labels(tmp_path: Path, environ: Mapping[str, str] | None = None, default_backend: str | None = None,
           files: Mapping[str, str] | None = None) -> set[str]:
    for relative, text in (files or {}).items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    settings = Settings(config_dir=tmp_path, default_backend=default_backend, environ=dict(environ or {}),
                        encodings=shared_encoding, usage_store="none")
    return {route.label for route in build_runtime(settings).router.routable()}


def backends_of(routes: set[str]) -> set[str]:
    return {label.split(":", 1)[0] for label in routes}


def test_with_nothing_set_only_the_offline_mock_is_routable(tmp_path: Path) -> None:
    assert backends_of(labels(tmp_path)) == {"mock"}


def test_a_preset_is_routable_once_its_key_variable_is_set(tmp_path: Path) -> None:
    assert backends_of(labels(tmp_path, {"OPENAI_API_KEY": "k", "GEMINI_API_KEY": ""})) == {"mock", "openai"}


def test_the_keyless_ollama_preset_serves_once_configured_or_named_as_default(tmp_path: Path) -> None:
    assert "ollama:llama3.2" in labels(tmp_path / "a", default_backend="ollama")
    assert "ollama:llama3.2" in labels(tmp_path / "b", files={"backends/ollama/backend.yaml": "backend_type: ollama\n"})
    assert "ollama:llama3.2" in labels(tmp_path / "c", files={"proxy.yaml": "default_backend: ollama:qwen2.5\n"})
    tier = "tiers:\n  local:\n    default_backend: ollama\n"
    assert "ollama:llama3.2" in labels(tmp_path / "d", files={"proxy.yaml": tier})
    assert "ollama:llama3.2" not in labels(tmp_path / "e", default_backend="mock")


def test_a_keyless_backend_of_the_operators_own_is_routable(tmp_path: Path) -> None:
    own = "backend_type: custom\napi_base_url: http://127.0.0.1:9/v1\nmodels:\n  local-model: {}\n"
    assert "local:local-model" in labels(tmp_path, files={"backends/local/backend.yaml": own})
