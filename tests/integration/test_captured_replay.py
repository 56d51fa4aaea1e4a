"""Recorded requests of Claude Code and Codex CLI (tests/fixtures/captures/) replayed through the proxy
over real sockets, to fake upstreams of each protocol.

To an upstream of the client's own protocol the body arrives as the client sent it (nothing lost); to
another protocol the answer is a normal one and ``x-lip-dropped`` names what that protocol could not be
given (never a 400 for an optional field).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fakes.anthropic_upstream import FakeAnthropic
from fakes.gemini_upstream import FakeGemini
from fakes.openai_upstream import FakeOpenAI
from fakes.responses_upstream import CallSpec, FakeResponses, ResponsesBehaviour
from integration.conftest import ProxyServer, serve_proxy, write_backend

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "captures"
CLAUDE = CAPTURES / "claude-code-2.1.332" / "default" / "002-v1_messages.json"
CODEX = CAPTURES / "codex-0.171.0" / "default-model" / "002-v1_responses.json"
ENV = {"UP_KEY": "sk-upstream-key-000"}
DROP = "x-lip-dropped"


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProxyServer, FakeAnthropic, FakeOpenAI,
                                                                            FakeGemini]]:
    config = tmp_path_factory.mktemp("replay")
    with FakeAnthropic() as anthropic, FakeOpenAI() as openai, FakeGemini() as gemini:
        for name, protocol, fake in (("ant", "anthropic", anthropic), ("oai", "openai", openai),
                                     ("gem", "gemini", gemini)):
            write_backend(config, name, f"""\
                backend_type: custom
                protocol: {protocol}
                api_base_url: {fake.base_url}
                api_key_env_var: UP_KEY
                max_retries: 0
                passthrough_models: true
                """)
        with serve_proxy(config, environ=ENV) as proxy:
            yield proxy, anthropic, openai, gemini


def post(proxy: ProxyServer, doc: dict[str, Any], model: str, *, stream: bool = False) -> httpx.Response:
    body = {**doc["body"], "model": model, "stream": stream}
    headers = {k: v for k, v in doc["headers"].items()
               if k in ("anthropic-beta", "anthropic-version", "x-app", "originator", "content-type")}
    return httpx.post(proxy.url + doc["path"], params=doc["query"], json=body, headers=headers, timeout=20)


def test_claude_code_to_an_anthropic_upstream_arrives_as_sent(upstreams: Any) -> None:
    proxy, anthropic, _, _ = upstreams
    doc = load(CLAUDE)
    before = len(anthropic.message_requests())
    response = post(proxy, doc, "ant:claude-opus-5-5", stream=True)
    assert response.status_code == 200, response.text
    assert DROP not in response.headers
    assert "event: message_stop" in response.text
    (seen,) = anthropic.message_requests()[before:]
    assert seen.body == {**doc["body"], "model": "claude-opus-5-5"}
    assert seen.headers["anthropic-beta"] == doc["headers"]["anthropic-beta"]


def test_claude_code_to_an_openai_upstream(upstreams: Any) -> None:
    proxy, _, openai, _ = upstreams
    doc = load(CLAUDE)
    before = len(openai.chat_requests())
    response = post(proxy, doc, "oai:gpt-4o")
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "message"
    # messages.output_config: the effort Claude Code sets per turn on its system message
    assert set(response.headers[DROP].split(", ")) == {"context_management", "metadata", "output_config",
                                                       "thinking", "messages.output_config"}
    (seen,) = openai.chat_requests()[before:]
    roles = [m["role"] for m in seen.body["messages"]]
    assert roles.count("system") >= 2 and roles[0] == "system"
    assert roles.index("user") < len(roles) - 1 - roles[::-1].index("system"), "the later system message in place"
    assert len(seen.body["tools"]) == len(doc["body"]["tools"])
    assert "reasoning_effort" not in seen.body
    records = httpx.get(proxy.url + "/v1/usage", timeout=10).json()["records"]
    (record,) = [r for r in records if r["request_id"] == response.headers["x-request-id"]]
    assert record["dropped"] == response.headers[DROP], "the usage record says what was left out"


def test_claude_code_to_a_gemini_upstream(upstreams: Any) -> None:
    proxy, _, _, gemini = upstreams
    doc = load(CLAUDE)
    response = post(proxy, doc, "gem:gemini-2.5-flash", stream=True)
    assert response.status_code == 200, response.text
    assert set(response.headers[DROP].split(", ")) == {"context_management", "metadata", "messages.output_config"}
    seen = gemini.generate_requests()[-1].body
    assert seen["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 8192}  # effort medium


def test_codex_to_an_openai_upstream(upstreams: Any) -> None:
    proxy, _, openai, _ = upstreams
    doc = load(CODEX)
    before = len(openai.chat_requests())
    response = post(proxy, doc, "oai:gpt-4o", stream=True)
    assert response.status_code == 200, response.text
    assert "response.completed" in response.text
    dropped = set(response.headers[DROP].split(", "))
    assert {"web_search", "include", "prompt_cache_key", "client_metadata", "reasoning.summary"} <= dropped
    (seen,) = openai.chat_requests()[before:]
    names = [t["function"]["name"] for t in seen.body["tools"]]
    assert "multi_agent_v1__spawn_agent" in names and "exec_command" in names
    assert seen.body["messages"][-1] == {"role": "tool", "tool_call_id": "call_capture",
                                         "content": doc["body"]["input"][-1]["output"]}


def test_codex_to_an_anthropic_upstream(upstreams: Any) -> None:
    proxy, anthropic, _, _ = upstreams
    doc = load(CODEX)
    before = len(anthropic.message_requests())
    response = post(proxy, doc, "ant:claude-sonnet-4-5")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
    assert "web_search" not in response.headers.get(DROP, "")
    (seen,) = anthropic.message_requests()[before:]
    assert {"type": "web_search_20250305", "name": "web_search"} in seen.body["tools"]


# ---- an OpenAI Responses upstream (protocol: openai-responses) -------------------------------------


@pytest.fixture(scope="module")
def responses_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProxyServer, FakeResponses]]:
    config = tmp_path_factory.mktemp("replay-responses")
    with FakeResponses() as fake:
        write_backend(config, "rsp", f"""\
            backend_type: custom
            protocol: openai-responses
            api_base_url: {fake.base_url}
            api_key_env_var: UP_KEY
            max_retries: 0
            passthrough_models: true
            """)
        with serve_proxy(config, environ=ENV) as proxy:
            yield proxy, fake


def sse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[len("data: "):]) for line in text.splitlines() if line.startswith("data: ")]


def test_codex_to_a_responses_upstream_keeps_everything(responses_up: Any) -> None:
    proxy, fake = responses_up
    doc = load(CODEX)
    fake.default = ResponsesBehaviour(reply="The magic word is xyzzy.", chunks=3, reasoning="enc-abc",
                                      hosted_item={"id": "ws_1", "type": "web_search_call", "status": "completed",
                                                   "action": {"type": "search", "query": "magic"}})
    before = len(fake.response_requests())
    response = post(proxy, doc, "rsp:gpt-5-codex", stream=True)
    assert response.status_code == 200, response.text
    assert DROP not in response.headers
    (seen,) = fake.response_requests()[before:]
    sent = doc["body"]
    assert seen.headers["authorization"] == "Bearer " + ENV["UP_KEY"]
    for key in ("tools", "include", "store", "prompt_cache_key", "client_metadata", "reasoning",
                "parallel_tool_calls", "tool_choice"):
        assert seen.body[key] == sent[key], key
    assert seen.body["model"] == "gpt-5-codex" and seen.body["stream"] is True
    assert [i.get("type", "message") for i in seen.body["input"]] == [i["type"] for i in sent["input"]]
    assert seen.body["input"][-1] == {"type": "function_call_output", "call_id": "call_capture",
                                      "output": sent["input"][-1]["output"]}
    events = sse_events(response.text)
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [i["type"] for i in done] == ["reasoning", "web_search_call", "message"]
    assert done[0]["encrypted_content"] == "enc-abc", "encrypted reasoning reaches the client"
    assert done[1] == {"id": "ws_1", "type": "web_search_call", "status": "completed",
                       "action": {"type": "search", "query": "magic"}}
    assert events[-1]["type"] == "response.completed"


def test_codex_namespaced_and_custom_calls_from_a_responses_upstream(responses_up: Any) -> None:
    proxy, fake = responses_up
    doc = load(CAPTURES / "codex-0.171.0" / "model-gpt-5.5" / "001-v1_responses.json")
    patch = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch\n"
    fake.default = ResponsesBehaviour(call=CallSpec("apply_patch", patch, call_id="call_p", pieces=4, custom=True))
    response = post(proxy, doc, "rsp:gpt-5.5", stream=True)
    assert response.status_code == 200, response.text
    done = [e["item"] for e in sse_events(response.text) if e["type"] == "response.output_item.done"]
    assert done[-1]["type"] == "custom_tool_call" and done[-1]["input"] == patch and done[-1]["name"] == "apply_patch"
    multi = load(CODEX)
    fake.default = ResponsesBehaviour(call=CallSpec("spawn_agent", '{"message": "go"}', call_id="call_s",
                                                    namespace="multi_agent_v1"))
    whole = post(proxy, multi, "rsp:gpt-5-codex")
    assert whole.status_code == 200, whole.text
    (call,) = [i for i in whole.json()["output"] if i["type"] == "function_call"]
    assert (call["name"], call["namespace"], call["arguments"]) == ("spawn_agent", "multi_agent_v1",
                                                                    '{"message": "go"}')


def test_claude_code_to_a_responses_upstream(responses_up: Any) -> None:
    proxy, fake = responses_up
    doc = load(CLAUDE)
    fake.default = ResponsesBehaviour(reply="Done.")
    before = len(fake.response_requests())
    response = post(proxy, doc, "rsp:gpt-5.5", stream=True)
    assert response.status_code == 200, response.text
    assert "event: message_stop" in response.text
    (seen,) = fake.response_requests()[before:]
    assert seen.body["reasoning"] == {"effort": "medium"}
    roles = [i.get("role") for i in seen.body["input"] if i.get("type", "message") == "message"]
    assert roles[0] == "system" and "system" in roles[1:]
    assert {t["name"] for t in seen.body["tools"]} == {t["name"] for t in doc["body"]["tools"]}
    assert set(response.headers[DROP].split(", ")) == {"context_management", "metadata", "messages.output_config"}


def test_responses_upstream_errors_reach_the_client(responses_up: Any) -> None:
    proxy, fake = responses_up
    fake.default = ResponsesBehaviour(status=429, error_message="slow down")
    body = {"model": "rsp:gpt-5", "input": "hi"}
    response = httpx.post(proxy.url + "/v1/responses", json=body, timeout=20)
    assert response.status_code == 429
    assert "slow down" in response.json()["error"]["message"]
    fake.default = ResponsesBehaviour(reply="one two three four", chunks=4, error_after=4)
    streamed = httpx.post(proxy.url + "/v1/responses", json={**body, "stream": True}, timeout=20)
    kinds = [e["type"] for e in sse_events(streamed.text)]
    assert kinds[-2:] == ["response.failed", "error"], kinds
