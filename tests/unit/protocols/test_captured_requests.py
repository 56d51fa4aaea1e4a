"""Real requests of real clients, recorded (tests/fixtures/captures/, see its README), read by the surfaces.

Every capture must parse; rendered for an upstream of the client's own protocol it must come out as the
client sent it (nothing lost); rendered for every other protocol it must be a valid body, and what that
protocol has no equivalent of must be named by ``portable.dropped`` (the ``x-lip-dropped`` header).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lip.core.model import ChatRequest, ProviderItem, ProviderPart, ToolCall
from lip.protocols import portable
from lip.protocols.anthropic.codec import AnthropicCodec
from lip.protocols.anthropic.stream import StreamParser, StreamWriter
from lip.protocols.anthropic.surface import AnthropicMessages
from lip.protocols.base import Incoming
from lip.protocols.gemini.codec import GeminiCodec
from lip.protocols.gemini.surface import GeminiGenerate
from lip.protocols.openai_chat.codec import OpenAICodec
from lip.protocols.openai_chat.surface import OpenAIChat
from lip.protocols.openai_responses import tools as tools_wire
from lip.protocols.openai_responses.codec import ResponsesCodec
from lip.protocols.openai_responses.surface import OpenAIResponses
from lip.state.responses import ResponseStore

CAPTURES = Path(__file__).resolve().parents[2] / "fixtures" / "captures"
FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI and Gemini accept as a function name


def captures(client: str) -> list[Path]:
    found = sorted((CAPTURES).glob(f"{client}*/**/*.json"))
    assert found, f"no captures of {client} under {CAPTURES}"
    return found


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def incoming(doc: dict[str, Any], **path: str) -> Incoming:
    return Incoming(body=json.dumps(doc["body"]).encode(), path=path, query=doc["query"], headers=doc["headers"])


def ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(CAPTURES)) for p in paths]


CLAUDE = captures("claude-code") + [p for p in captures("anthropic-python") if "count_tokens" not in p.name]
CODEX = captures("codex")


@pytest.mark.parametrize("path", CLAUDE, ids=ids(CLAUDE))
def test_anthropic_capture_to_an_anthropic_upstream_is_what_the_client_sent(path: Path) -> None:
    doc = load(path)
    request = AnthropicMessages().parse(incoming(doc))
    body = AnthropicCodec().body(request, doc["body"]["model"])
    assert body == doc["body"]
    beta = doc["headers"].get("anthropic-beta")
    if beta:
        assert AnthropicCodec().request_headers(request) == {"anthropic-beta": beta}
    assert portable.dropped(request, "anthropic") == ()


@pytest.mark.parametrize("path", captures("claude-code"), ids=ids(captures("claude-code")))
def test_claude_code_to_other_protocols(path: Path) -> None:
    doc = load(path)
    request = AnthropicMessages().parse(incoming(doc))
    roles = [m.role for m in request.messages]
    sent_roles = [m["role"] for m in doc["body"]["messages"]]
    if "system" in sent_roles:
        assert "system" in roles[roles.index("user"):], "the mid-conversation system message is kept in its place"
    per_turn = {f"messages.{k}" for m in doc["body"]["messages"] for k in m if k not in ("role", "content")}
    chat = OpenAICodec().body(request, "gpt-4o")
    assert all(FUNCTION_NAME.match(t["function"]["name"]) for t in chat["tools"])
    assert [m["role"] for m in chat["messages"]].count("system") == roles.count("system")
    assert "reasoning_effort" not in chat, "gpt-4o rejects reasoning_effort"
    dropped = set(portable.dropped(request, "openai"))
    assert {"thinking", "output_config", "context_management", "metadata"} & doc["body"].keys() <= dropped
    if "output_config" in doc["body"]:
        reasoning = OpenAICodec().body(request, "gpt-5.5")
        assert reasoning["reasoning_effort"] == doc["body"]["output_config"]["effort"]
        assert "output_config" not in portable.dropped(request, "openai", "gpt-5.5")
        gemini = GeminiCodec().body(request, "gemini-3-pro")
        assert gemini["generationConfig"]["thinkingConfig"]["thinkingBudget"] > 0
    gemini = GeminiCodec().body(request, "gemini-3-pro")
    assert len(gemini["tools"][0]["functionDeclarations"]) == len(doc["body"]["tools"])
    assert set(portable.dropped(request, "gemini")) == ({"context_management", "metadata"} & doc["body"].keys()
                                                        ) | per_turn


@pytest.mark.parametrize("path", CODEX, ids=ids(CODEX))
def test_codex_capture_reads_and_maps_to_function_only_upstreams(path: Path) -> None:
    doc = load(path)
    body = doc["body"]
    request = OpenAIResponses(ResponseStore()).parse(incoming(doc))
    listed = [*body.get("tools", []), *(t for i in body["input"] if i.get("type") == "additional_tools"
                                        for t in i["tools"])]
    sent = {t["type"] for t in listed} | {m["type"] for t in listed for m in t.get("tools", [])}
    kinds = {t.kind for t in request.tools}
    assert ("hosted" in kinds) == ("web_search" in sent)
    assert ("custom" in kinds) == ("custom" in sent)
    namespaced = [t for t in request.tools if t.namespace]
    assert bool(namespaced) == ("namespace" in sent)
    for codec, name_of in ((OpenAICodec(), lambda t: t["function"]["name"]), (GeminiCodec(), None)):
        rendered = codec.body(request, "some-model")
        if name_of is not None:
            names = [name_of(t) for t in rendered["tools"]]
            assert all(FUNCTION_NAME.match(n) for n in names), names
            assert len(names) == sum(1 for t in request.tools if t.callable)
    anthropic = AnthropicCodec().body(request, "claude-sonnet-4-5")
    assert ({"type": "web_search_20250305", "name": "web_search"} in anthropic["tools"]) == ("web_search" in sent)
    assert anthropic["system"][0]["text"].startswith(("You are", "You are Codex"))
    dropped = set(portable.dropped(request, "openai"))
    assert {"include", "prompt_cache_key"} <= dropped
    assert ("web_search" in dropped) == ("web_search" in sent)
    assert "web_search" not in portable.dropped(request, "anthropic")
    responses = ResponsesCodec().body(request, "gpt-5.5")
    assert {k: v for k, v in responses.items() if k not in ("model", "input")} == {
        k: v for k, v in body.items() if k not in ("model", "input")}, "a Responses upstream gets what Codex sent"
    assert [i.get("type", "message") for i in responses["input"]] == [i["type"] for i in body["input"]]
    assert portable.dropped(request, "openai-responses") == ()


def test_codex_namespaced_and_custom_calls_come_back_in_the_clients_shape() -> None:
    doc = load(CAPTURES / "codex-0.171.0/default-model/001-v1_responses.json")
    request = OpenAIResponses(ResponseStore()).parse(incoming(doc))
    spawn = next(t for t in request.tools if t.name == "multi_agent_v1__spawn_agent")
    assert spawn.namespace == "multi_agent_v1"
    item = tools_wire.call_item("fc_1", ToolCall("call_1", spawn.name, '{"message": "hi"}'), spawn, "completed")
    assert (item["type"], item["name"], item["namespace"]) == ("function_call", "spawn_agent", "multi_agent_v1")
    patch_doc = load(CAPTURES / "codex-0.171.0/model-gpt-5.5/001-v1_responses.json")
    patch_request = OpenAIResponses(ResponseStore()).parse(incoming(patch_doc))
    apply_patch = next(t for t in patch_request.tools if t.name == "apply_patch")
    assert apply_patch.kind == "custom" and "lark" in (apply_patch.description or "")
    custom = tools_wire.call_item("ct_1", ToolCall("call_2", "apply_patch", '{"input": "*** Begin Patch\\n"}'),
                                  apply_patch, "completed")
    assert (custom["type"], custom["input"]) == ("custom_tool_call", "*** Begin Patch\n")
    # and the call read back from the client's next turn is the same canonical call
    again = OpenAIResponses(ResponseStore()).parse(Incoming(body=json.dumps({
        "model": "m", "tools": patch_doc["body"]["tools"], "input": [custom, {
            "type": "custom_tool_call_output", "call_id": "call_2", "output": "Done"}]}).encode(),
        path={}, query={}, headers={}))
    assert again.messages[0].tool_calls == (ToolCall("call_2", "apply_patch", '{"input":"*** Begin Patch\\n"}'),)
    assert again.messages[1].role == "tool" and again.messages[1].content == "Done"


def test_google_genai_capture_reads_at_v1() -> None:
    for path in captures("google-genai"):
        doc = load(path)
        method = doc["path"].rpartition(":")[2]
        model = doc["path"].split("/models/")[1].rpartition(":")[0]
        request = GeminiGenerate().parse(Incoming(body=json.dumps(doc["body"]).encode(), path={"model": model},
                                                  query=doc["query"], headers=doc["headers"], method=method))
        assert request.model == "gemini-3-pro"
        assert isinstance(GeminiCodec().body(request, "gemini-3-pro"), dict)


def test_openai_sdk_captures_read() -> None:
    for path in captures("openai-python"):
        doc = load(path)
        surface = OpenAIChat() if "chat" in path.name else OpenAIResponses(ResponseStore())
        request: ChatRequest = surface.parse(incoming(doc))
        assert request.messages


def test_server_tool_blocks_are_carried_to_anthropic_only() -> None:
    search_use = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}}
    results = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
               "content": [{"type": "web_search_result", "url": "https://example.com", "title": "E",
                            "encrypted_content": "abc"}]}
    body = {"model": "m", "max_tokens": 10, "tools": [{"type": "web_search_20250305", "name": "web_search",
                                                        "max_uses": 3}],
            "messages": [{"role": "user", "content": "search"},
                         {"role": "assistant", "content": [search_use, results, {"type": "text", "text": "Found."}]},
                         {"role": "user", "content": [{"type": "document", "title": "Spec", "source": {
                             "type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
                             {"type": "text", "text": "and this?"}]}]}
    request = AnthropicMessages().parse(Incoming(body=json.dumps(body).encode(), path={}, query={}, headers={}))
    assert isinstance(request.messages[1].content, tuple)
    assert any(isinstance(p, ProviderPart) for p in request.messages[1].content)
    assert AnthropicCodec().body(request, "m") == body
    chat = OpenAICodec().body(request, "gpt-4o")
    assert "tools" not in chat
    assert chat["messages"][1] == {"role": "assistant", "content": "Found."}
    assert chat["messages"][2]["content"][0] == {"type": "file", "file": {
        "file_data": "data:application/pdf;base64,JVBERi0x", "filename": "Spec"}}
    assert portable.dropped(request, "openai") == ("server_tool_use", "web_search", "web_search_tool_result")
    gemini = GeminiCodec().body(request, "g")
    assert {"googleSearch": {}} in gemini["tools"]
    assert {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0x"}} in gemini["contents"][2]["parts"]


def test_server_tool_output_and_pause_turn_reach_an_anthropic_client_whole() -> None:
    """An Anthropic upstream's web search blocks and its pause_turn pass through the canonical stream."""
    use = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}
    result = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
        {"type": "web_search_result", "url": "https://example.com", "title": "E", "encrypted_content": "x"}]}
    parser = StreamParser("m")
    stream = [
        ("message_start", {"message": {"id": "msg_1", "model": "claude", "usage": {"input_tokens": 5}}}),
        ("content_block_start", {"index": 0, "content_block": use}),
        ("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"query": '}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": '"lip"}'}}),
        ("content_block_stop", {"index": 0}),
        ("content_block_start", {"index": 1, "content_block": result}),
        ("content_block_stop", {"index": 1}),
        ("message_delta", {"delta": {"stop_reason": "pause_turn"}, "usage": {"output_tokens": 3}}),
    ]
    events = [e for kind, data in stream for e in parser.feed(kind, data)]
    items = [e for e in events if isinstance(e, ProviderItem)]
    assert [i.data for i in items] == [{**use, "input": {"query": "lip"}}, result]
    writer = StreamWriter("m")
    out = b"".join(b for e in events for b in writer.feed(e)) + b"".join(writer.end())
    frames = [json.loads(line[6:]) for line in out.decode().splitlines() if line.startswith("data: ")]
    starts = [f["content_block"] for f in frames if f["type"] == "content_block_start"]
    assert starts == [{**use, "input": {"query": "lip"}}, result]
    (delta,) = [f for f in frames if f["type"] == "message_delta"]
    assert delta["delta"]["stop_reason"] == "pause_turn", "the client sends the turn again to let the search go on"


def test_a_failed_tools_is_error_reaches_an_anthropic_upstream() -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": "run it"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"cmd": "x"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "command not found",
                                      "is_error": True}]}]}
    request = AnthropicMessages().parse(Incoming(body=json.dumps(body).encode(), path={}, query={}, headers={}))
    assert AnthropicCodec().body(request, "m") == body
    assert OpenAICodec().body(request, "gpt-4o")["messages"][-1] == {"role": "tool", "tool_call_id": "t1",
                                                                      "content": "command not found"}
    assert portable.dropped(request, "openai") == ("tool_result.is_error",)
