"""Every model list advertises only routes that can serve: no key-less local preset nobody configured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from fakes.openai_upstream import FakeOpenAI
from integration.conftest import serve_proxy, write_backend
from integration.processes import clean_env


def listed(url: str) -> dict[str, set[str]]:
    openai = {m["id"] for m in httpx.get(url + "/v1/models").json()["data"]}
    gemini = {m["name"].removeprefix("models/") for m in httpx.get(url + "/v1beta/models").json()["models"]}
    google = {m["name"].removeprefix("models/")
              for m in httpx.get(url + "/v1/models", headers={"x-goog-api-key": "x"}).json()["models"]}
    return {"openai": openai, "gemini": gemini, "google at /v1": google}


def test_unconfigured_ollama_is_neither_listed_nor_tried(tmp_path: Path) -> None:
    with serve_proxy(tmp_path, environ={"OPENAI_API_KEY": "sk-test"}) as proxy:
        lists = listed(proxy.url)
        refused = httpx.post(proxy.url + "/v1/chat/completions", json={
            "model": "ollama:llama3.2", "messages": [{"role": "user", "content": "hi"}]})
        health = httpx.get(proxy.url + "/health").json()
    for name, models in lists.items():
        assert "mock:mock-model" in models and "openai:gpt-4o" in models, name
        assert not any(m.startswith(("ollama:", "anthropic:", "gemini:")) for m in models), name
    assert lists["openai"] == lists["gemini"] == lists["google at /v1"]
    assert refused.status_code == 503
    assert "config/backends/ollama/backend.yaml" in refused.json()["error"]["message"]
    assert "ollama" in health["backends"]["unavailable"]


def test_ollama_configured_in_the_config_directory_is_listed_and_serves(tmp_path: Path, fake: FakeOpenAI) -> None:
    write_backend(tmp_path, "ollama", f"backend_type: ollama\napi_base_url: {fake.base_url}\n")
    with serve_proxy(tmp_path) as proxy:
        lists = listed(proxy.url)
        reply = httpx.post(proxy.url + "/v1/chat/completions", json={
            "model": "ollama:llama3.2", "messages": [{"role": "user", "content": "hi"}]})
    assert all("ollama:llama3.2" in models for models in lists.values())
    assert reply.status_code == 200 and reply.headers["x-lip-backend"] == "ollama"
    assert fake.chat_requests()[0].body["model"] == "llama3.2"


def test_lip_models_prints_the_same_rule(tmp_path: Path) -> None:
    def models(*args: str) -> list[str]:
        result = subprocess.run([sys.executable, "-m", "lip", "models", *args], cwd=tmp_path, env=clean_env(tmp_path),
                                capture_output=True, text=True, timeout=60, check=True)
        return result.stdout.split()

    assert models() == ["mock:mock-model"]
    assert "ollama:llama3.2" in models("--default-backend", "ollama")
