"""Secrets never reach logs, error bodies, usage records or metrics; upstream keys in prompts are redacted."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from fakes.anthropic_upstream import Behaviour as AnthropicBehaviour
from fakes.anthropic_upstream import FakeAnthropic
from fakes.gemini_upstream import FakeGemini, GeminiBehaviour
from fakes.openai_upstream import Behaviour, FakeOpenAI
from fakes.responses_upstream import FakeResponses, ResponsesBehaviour
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


# ---- every field of every upstream error shape, on every surface ---------------------------------------------------

KEY = "sk-CANARY-errfields-4c1d8e2b7a"  # the upstream key
HEADER_SECRET = "hdr-CANARY-tenant-5e9b3f7d1c"  # a ${ENV} value in a backend's headers:
BOTH = f"{KEY}|{HEADER_SECRET}"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def openai_error(code_is_text: bool) -> dict[str, object]:
    # code not text: the proxy falls back to `type` for the code, so both are tried
    return {"error": {"message": f"bad key {BOTH}", "type": f"type_{BOTH}", "param": f"param_{BOTH}",
                      "code": f"code_{BOTH}" if code_is_text else 401}}


ANTHROPIC_ERROR = {"type": "error", "error": {"type": f"kind_{BOTH}", "message": f"bad key {BOTH}"},
                   "request_id": BOTH}
GEMINI_ERROR = {"error": {"code": 401, "message": f"bad key {BOTH}", "status": f"STATUS_{BOTH}", "details": [
    {"@type": ERROR_INFO, "reason": BOTH, "domain": BOTH, "metadata": {"key": BOTH}},
    {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": BOTH, "description": BOTH}]},
]}}


def canary_config(tmp_path: Path, oa: FakeOpenAI, an: FakeAnthropic, gm: FakeGemini, rs: FakeResponses) -> Settings:
    headers = "headers:\n  X-Tenant: \"${HDR_SECRET}\"\n"
    for name, protocol, url in (("oa", "openai", oa.base_url), ("an", "anthropic", an.base_url),
                                ("gm", "gemini", gm.base_url), ("rs", "openai-responses", rs.base_url)):
        write_backend(tmp_path, name, f"backend_type: custom\nprotocol: {protocol}\napi_base_url: {url}\n"
                                      f"api_key_env_var: UP_KEY\nmax_retries: 0\n{headers}models:\n  m: {{}}\n")
    (tmp_path / "proxy.yaml").write_text(
        "clients:\n  - {name: c, key_env_var: CLIENT_KEY}\n  - {name: ops, key_env_var: ADMIN_KEY, admin: true}\n"
        "logging: {format: json}\n")
    return Settings(config_dir=tmp_path, config_dir_required=True, usage_store=f"sqlite:///{tmp_path}/u.db")


def surface_request(surface: str, model: str, stream: bool) -> tuple[str, dict[str, object]]:
    text = f"keep {KEY} and {HEADER_SECRET} safe"
    if surface == "openai":
        return "/v1/chat/completions", {"model": model, "stream": stream,
                                        "messages": [{"role": "user", "content": text}]}
    if surface == "responses":
        return "/v1/responses", {"model": model, "stream": stream, "input": text}
    if surface == "anthropic":
        return "/v1/messages", {"model": model, "stream": stream, "max_tokens": 50,
                                "messages": [{"role": "user", "content": text}]}
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"/v1beta/models/{model}:{method}", {"contents": [{"role": "user", "parts": [{"text": text}]}]}


SURFACES = ("openai", "responses", "anthropic", "gemini")


def test_no_field_of_any_upstream_error_leaks_a_secret(tmp_path: Path, fake: FakeOpenAI,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """An upstream error with the key (and a header secret) in every field it has: status errors,
    errors in a 200 body and mid-stream error events, of each upstream protocol, through each client
    surface, streaming and not; then the usage records, /v1/usage, /metrics, the log and `lip check`."""
    caplog.set_level(logging.DEBUG)
    env = {"UP_KEY": KEY, "HDR_SECRET": HEADER_SECRET, "CLIENT_KEY": CLIENT, "ADMIN_KEY": ADMIN}
    seen: list[str] = []
    with FakeAnthropic() as an, FakeGemini() as gm, FakeResponses() as rs:
        settings = canary_config(tmp_path, fake, an, gm, rs)
        # (backend, queue a behaviour for it, streams?) — each request consumes one queued behaviour
        cases: list[tuple[str, Callable[[], None], tuple[bool, ...]]] = [
            ("oa", lambda: fake.enqueue(Behaviour(status=401, error_body=openai_error(True))), (False, True)),
            ("oa", lambda: fake.enqueue(Behaviour(status=401, error_body=openai_error(False))), (False, True)),
            ("oa", lambda: fake.enqueue(Behaviour(error_after_chunks=2, error_body=openai_error(True))), (True,)),
            ("an", lambda: an.enqueue(AnthropicBehaviour(status=401, error_body=ANTHROPIC_ERROR)), (False, True)),
            ("an", lambda: an.enqueue(AnthropicBehaviour(error_in_body=True, error_body=ANTHROPIC_ERROR)), (False,)),
            ("an", lambda: an.enqueue(AnthropicBehaviour(error_after_events=3, error_body=ANTHROPIC_ERROR)), (True,)),
            ("gm", lambda: gm.enqueue(GeminiBehaviour(status=401, error_body=GEMINI_ERROR)), (False, True)),
            ("gm", lambda: gm.enqueue(GeminiBehaviour(error_in_body=True, error_body=GEMINI_ERROR)), (False,)),
            ("gm", lambda: gm.enqueue(GeminiBehaviour(error_after_chunks=1, error_body=GEMINI_ERROR)), (True,)),
            ("rs", lambda: rs.enqueue(ResponsesBehaviour(status=401, error_body=openai_error(True))), (False, True)),
            ("rs", lambda: rs.enqueue(ResponsesBehaviour(error_after=2, error_body=openai_error(True))), (True,)),
        ]
        statuses = []
        with serve_proxy(tmp_path, environ=env, settings=settings) as proxy:
            for backend, queue, streams in cases:
                for stream in streams:
                    for surface in SURFACES:
                        queue()
                        path, body = surface_request(surface, f"{backend}:m", stream)
                        response = httpx.post(proxy.url + path, json=body, timeout=10, headers={
                            "Authorization": f"Bearer {CLIENT}", "x-goog-api-key": CLIENT})
                        statuses.append(response.status_code)
                        seen.append(response.text + str(response.headers))
            metrics = httpx.get(proxy.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
            assert metrics.status_code == 200 and 'status="401"' in metrics.text  # the failures were counted
            seen.append(metrics.text)
            seen.append(httpx.get(proxy.url + "/v1/usage", headers={"Authorization": f"Bearer {ADMIN}"}).text)
            seen.append(httpx.get(proxy.url + "/v1/usage?group_by=model",
                                  headers={"Authorization": f"Bearer {ADMIN}"}).text)
        upstream_bodies = [str(r.body) for r in fake.requests + an.requests + gm.requests + rs.requests]
    check = subprocess.run([sys.executable, "-m", "lip", "check", "--config-dir", str(tmp_path)], env={
        **{k: v for k, v in os.environ.items() if not k.startswith("LIP_")}, **env, "COLUMNS": "200"},
        capture_output=True, text=True, timeout=60, check=False)
    assert "oa" in check.stdout and "gm" in check.stdout, check.stdout + check.stderr
    assert len(statuses) == 64 and 401 in statuses and 200 in statuses  # error statuses, and streams that began
    assert all("kind_***" in s or "code_***" in s or "STATUS_***" in s or "bad key ***" in s for s in seen[:64])
    assert len(upstream_bodies) == 64 and all(KEY not in b and HEADER_SECRET not in b for b in upstream_bodies)
    stored = (tmp_path / "u.db").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("u.db-*"))
    everything = "\n".join(seen) + caplog.text + stored.decode("latin-1") + check.stdout + check.stderr
    assert '"error_code"' in caplog.text, "the json request log ran"
    for canary in (KEY, HEADER_SECRET, CLIENT, ADMIN):
        assert canary not in everything


def test_secrets_in_tools_parameters_and_escaped_json_are_redacted(tmp_path: Path, fake: FakeOpenAI) -> None:
    """Tool descriptions, parameter names and enum values, tool-call arguments and other body keys never
    carry a key to the upstream; a `${ENV}` header value counts as a key."""
    write_backend(tmp_path, "up", f"backend_type: custom\napi_base_url: {fake.base_url}\napi_key_env_var: UP_KEY\n"
                                  "headers:\n  X-Tenant: \"${HDR_SECRET}\"\nmodels:\n  m: {}\n")
    tool = {"type": "function", "function": {
        "name": "lookup", "description": f"uses {KEY} to look things up",
        "parameters": {"type": "object", "properties": {f"by_{HEADER_SECRET}": {"type": "string",
                                                                               "enum": [KEY, "plain"]}}}}}
    with serve_proxy(tmp_path, environ={"UP_KEY": KEY, "HDR_SECRET": HEADER_SECRET}) as proxy:
        ok = httpx.post(proxy.url + "/v1/chat/completions", json={
            "model": "up:m", "tools": [tool], "user": f"user-{KEY}",
            "messages": [{"role": "user", "content": "hi"}]}, timeout=10)
        assert ok.status_code == 200, ok.text
        ok = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "up:m", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
                "name": "lookup", "arguments": '{"token": "' + HEADER_SECRET + '"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": f"mine: {KEY}"}]}, timeout=10)
        assert ok.status_code == 200, ok.text
    first, second = (r.body for r in fake.chat_requests())
    assert first["tools"][0]["function"]["description"] == "uses [redacted key] to look things up"
    assert list(first["tools"][0]["function"]["parameters"]["properties"]) == ["by_[redacted key]"]
    assert first["user"] == "user-[redacted key]"
    assert second["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"token": "[redacted key]"}'
    assert second["messages"][2]["content"] == "mine: [redacted key]"
    assert first["tools"][0]["function"]["name"] == "lookup"
    sent = str(first) + str(second)
    assert KEY not in sent and HEADER_SECRET not in sent
