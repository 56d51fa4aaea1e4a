"""The access log as an operator reads it: `lip serve --access-log` (or proxy.yaml, or debug) on stderr."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import httpx
import pytest

from integration.processes import clean_env, free_port, running

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\S+) (\S+) (\S+) (\S+) (\S+) (\d+\.\d)ms (\S+)$")
SECRET_PROMPT = "the-prompt-text-must-never-be-logged"


def serve(tmp_path: Path, *flags: str, proxy_yaml: str = "") -> tuple[list[str], list[str], str]:
    """Serve with ``flags``, send a fixed set of requests; (access lines, request ids, the whole output)."""
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "proxy.yaml").write_text("clients:\n  - name: acme\n    key_env_var: ACME_KEY\n" + proxy_yaml)
    port = free_port()
    argv = [sys.executable, "-m", "lip", "serve", "--config-dir", str(config), "--port", str(port),
            "--usage-store", "none", *flags]
    env = clean_env(tmp_path, ACME_KEY="sk-acme-client-key")
    auth = {"authorization": "Bearer sk-acme-client-key"}
    chat = {"model": "mock:mock-model", "messages": [{"role": "user", "content": SECRET_PROMPT}]}
    with running(argv, port=port, env=env, cwd=tmp_path, log=tmp_path / "out.log") as proxy:
        ids = [
            httpx.post(proxy.url + "/v1/chat/completions", json=chat, headers=auth).headers["x-request-id"],
            httpx.post(proxy.url + "/v1/chat/completions", json={**chat, "stream": True},
                       headers=auth).headers["x-request-id"],
            httpx.post(proxy.url + "/v1beta/models/mock-model:generateContent?key=sk-acme-client-key",
                       json={"contents": [{"parts": [{"text": SECRET_PROMPT}]}]}).headers["x-request-id"],
            httpx.post(proxy.url + "/v1/chat/completions", json={**chat, "model": "mock:evil 200 root"},
                       headers=auth).headers["x-request-id"],
            httpx.get(proxy.url + "/v1/models", headers=auth).headers["x-request-id"],
            httpx.get(proxy.url + "/nowhere%0d%0a2026-01-01T00:00:00.000Z%20GET").headers["x-request-id"],
            httpx.post(proxy.url + "/v1/chat/completions", json=chat).headers["x-request-id"],  # no key: 401
        ]
    output = proxy.output()
    lines = [line for line in output.splitlines() if line[:4].isdigit() and line[4] == "-" and "Z " in line[:25]
             and " GET /health " not in line]  # the start-up probe of running()
    return lines, ids, output


def test_one_escaped_line_per_request_with_client_route_and_id(tmp_path: Path) -> None:
    lines, ids, output = serve(tmp_path, "--access-log")
    fields = [LINE.match(line) for line in lines]
    assert all(fields), lines
    got = [m.groups() for m in fields if m]
    assert [g[6] for g in got] == ids, "one line per request, in order, with its request id"
    assert [g[:5] for g in got] == [
        ("POST", "/v1/chat/completions", "200", "acme", "mock:mock-model"),
        ("POST", "/v1/chat/completions", "200", "acme", "mock:mock-model"),
        ("POST", "/v1beta/models/mock-model:generateContent", "200", "acme", "mock:mock-model"),
        ("POST", "/v1/chat/completions", "200", "acme", "mock:evil\\x20200\\x20root"),
        ("GET", "/v1/models", "200", "acme", "-"),
        ("GET", "/nowhere\\x0d\\x0a2026-01-01T00:00:00.000Z\\x20GET", "404", "-", "-"),
        ("POST", "/v1/chat/completions", "401", "-", "-"),
    ]
    assert SECRET_PROMPT not in output and "sk-acme-client-key" not in output, "never bodies or keys"
    assert "?key=" not in output


def test_proxy_yaml_turns_it_on_as_json(tmp_path: Path) -> None:
    _, ids, output = serve(tmp_path, proxy_yaml="logging:\n  access: true\n  format: json\n")
    records = [json.loads(line) for line in output.splitlines() if line.startswith('{"event":"access"')
               and '"path":"/health"' not in line]
    assert [r["request_id"] for r in records] == ids
    assert records[0]["client"] == "acme" and records[0]["route"] == "mock:mock-model"
    assert records[3]["route"] == "mock:evil 200 root"
    assert records[5]["path"] == "/nowhere\r\n2026-01-01T00:00:00.000Z GET", "JSON escapes it: one line still"
    assert SECRET_PROMPT not in output


def test_debug_shows_the_access_line_and_a_detail_line_per_request(tmp_path: Path) -> None:
    lines, ids, output = serve(tmp_path, "--log-level", "debug")
    assert [LINE.match(line).group(7) for line in lines if LINE.match(line)] == ids  # type: ignore[union-attr]
    detail = [line for line in output.splitlines() if " lip.requests: " in line]
    assert any(f"{ids[0]} openai mock:mock-model -> mock:mock-model 200" in line for line in detail), detail
    forged = [line for line in detail if ids[3] in line]
    assert forged and "mock:evil\\x20200\\x20root -> mock:evil\\x20200\\x20root" in forged[0]
    assert not any(line.startswith("2026-01-01T00:00:00.000Z") for line in output.splitlines())
    assert SECRET_PROMPT not in output


@pytest.mark.parametrize("flags", [(), ("--log-level", "info")])
def test_off_by_default(tmp_path: Path, flags: tuple[str, ...]) -> None:
    lines, _, output = serve(tmp_path, *flags)
    assert lines == []
    assert " lip.requests: " not in output
