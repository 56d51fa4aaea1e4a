"""Secrets never reach logs, error bodies, usage records or metrics; upstream keys in prompts are redacted."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import httpx
import pytest

from fakes.openai_upstream import Behaviour, FakeOpenAI
from integration.conftest import serve_proxy, write_backend
from lip.app import Settings

UPSTREAM = "sk-CANARY-upstream-7f3a9c1e5d"
CLIENT = "lip-CANARY-client-2b8d4f6a0c"
ADMIN = "lip-CANARY-admin-91e7c3b5d2"


def test_canaries_appear_nowhere(tmp_path: Path, fake: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    write_backend(tmp_path, "up", f"backend_type: custom\napi_base_url: {fake.base_url}\napi_key_env_var: UP_KEY\n"
                                  "max_retries: 0\nmodels:\n  m:\n    limits: {max_output_tokens: 50}\n")
    write_backend(tmp_path, "dead", f"backend_type: custom\napi_base_url: http://127.0.0.1:{dead_port}/v1\n"
                                    "api_key_env_var: UP_KEY\nmax_retries: 0\nconnect_timeout: 1\nmodels:\n  m: {}\n")
    (tmp_path / "proxy.yaml").write_text(
        "clients:\n  - {name: c, key_env_var: CLIENT_KEY}\n  - {name: ops, key_env_var: ADMIN_KEY, admin: true}\n"
        "logging: {format: json}\n"
    )
    settings = Settings(config_dir=tmp_path, config_dir_required=True, usage_store=f"sqlite:///{tmp_path}/u.db")
    env = {"UP_KEY": UPSTREAM, "CLIENT_KEY": CLIENT, "ADMIN_KEY": ADMIN}
    fake.enqueue(Behaviour(), Behaviour(status=401, error_message=f"Incorrect API key provided: {UPSTREAM}"),
                 Behaviour(chunks=6, cut_after_chunks=2))
    seen: list[str] = []
    with serve_proxy(tmp_path, environ=env, settings=settings) as proxy:
        def ask(model: str, key: str = CLIENT, **extra: object) -> None:
            body = {"model": model, "messages": [{"role": "user", "content": f"my key is {UPSTREAM}, keep it"}],
                    **extra}
            response = httpx.post(proxy.url + "/v1/chat/completions", json=body,
                                  headers={"Authorization": f"Bearer {key}"}, timeout=10)
            seen.append(response.text + str(response.headers))

        ask("up:m")  # ok, with the upstream key inside the prompt
        ask("up:m")  # the upstream's 401 echoes the key
        ask("up:m", stream=True)  # cut mid-stream
        ask("dead:m")  # unreachable
        ask("up:m", max_tokens=500)  # limit error
        ask("up:m", key="not-the-key")  # wrong client key
        seen.append(httpx.get(proxy.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).text)
        seen.append(httpx.get(proxy.url + "/v1/usage", headers={"Authorization": f"Bearer {ADMIN}"}).text)
        seen.append(httpx.get(proxy.url + "/health").text)
    forwarded = fake.chat_requests()[0].body["messages"][0]["content"]
    assert forwarded == "my key is [redacted key], keep it"
    assert all(UPSTREAM not in str(r.body) for r in fake.chat_requests())
    assert all(CLIENT not in str(r.headers) for r in fake.chat_requests())
    stored = (tmp_path / "u.db").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("u.db-*"))
    everything = "\n".join(seen) + caplog.text + stored.decode("latin-1")
    assert '"request_id"' in caplog.text, "the json request log ran"
    for canary in (UPSTREAM, CLIENT, ADMIN):
        assert canary not in everything
