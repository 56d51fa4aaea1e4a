"""Reasoning signatures across protocols, through each surface and codec: an upstream's answer to a client of
another protocol (the signature folded, naming its protocol), the client's next turn read back, and only an
upstream of the signature's protocol given it; a client of the upstream's own protocol sees it unchanged."""

from __future__ import annotations

from typing import Any

import orjson

from edge_answers import answer_for
from lip.core.model import ChatRequest, Message, ProviderState, StreamEvent
from lip.core.opaque import fold_signature
from lip.protocols.anthropic.codec import AnthropicCodec
from lip.protocols.anthropic.surface import AnthropicMessages
from lip.protocols.base import Incoming
from lip.protocols.gemini.codec import GeminiCodec
from lip.protocols.gemini.surface import GeminiGenerate
from lip.protocols.openai_responses.codec import ResponsesCodec
from lip.protocols.openai_responses.surface import OpenAIResponses

GEMINI_ANSWER = {
    "candidates": [{"content": {"role": "model", "parts": [
        {"text": "Look it up.", "thought": True, "thoughtSignature": "dGhvdWdodA=="}, {"text": "Sunny."},
    ]}, "finishReason": "STOP", "index": 0}],
    "modelVersion": "gemini-2.5-flash", "responseId": "r-1",
}
ANTHROPIC_ANSWER = {
    "id": "msg_1", "type": "message", "model": "claude-x", "stop_reason": "end_turn",
    "content": [{"type": "thinking", "thinking": "Hmm.", "signature": "EqQBCgIYAhIM"},
                {"type": "text", "text": "Done."}],
    "usage": {"input_tokens": 3, "output_tokens": 4},
}
RESPONSES_ANSWER = {
    "id": "resp_1", "object": "response", "model": "gpt-5", "status": "completed",
    "output": [{"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": "gAAAAB-enc_0123=="},
               {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": "Done.", "annotations": []}]}],
    "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
}
THOUGHT = ProviderState("gemini", "dGhvdWdodA==")
SIGNED = ProviderState("anthropic", "EqQBCgIYAhIM")


class _NoStore:
    def put(self, response_id: str, messages: tuple[Message, ...], response: bytes = b"") -> None:
        raise AssertionError("store: false")


def incoming(body: dict[str, Any] | None = None, model: str = "m") -> Incoming:
    return Incoming(orjson.dumps(body) if body is not None else b"", {"model": model}, {}, {})


def anthropic_turn(events: list[StreamEvent]) -> tuple[list[dict[str, Any]], ChatRequest]:
    """An Anthropic client's answer from ``events``, and its next request, which gives that answer back."""
    surface = AnthropicMessages()
    first: dict[str, Any] = {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "Weather?"}]}
    content = orjson.loads(surface.render_response(answer_for(events, surface.name), surface.parse(incoming(first)),
                                                   incoming()))["content"]
    first["messages"] += [{"role": "assistant", "content": content}, {"role": "user", "content": "Thanks."}]
    return content, surface.parse(incoming(first))


def responses_turn(events: list[StreamEvent]) -> tuple[list[dict[str, Any]], ChatRequest]:
    """A Responses client's output from ``events``, and its next request, which gives that output back."""
    surface = OpenAIResponses(_NoStore())  # type: ignore[arg-type]
    first: dict[str, Any] = {"model": "m", "input": "Weather?", "store": False}
    output = orjson.loads(surface.render_response(answer_for(events, surface.name), surface.parse(incoming(first)),
                                                  incoming()))["output"]
    first["input"] = [{"role": "user", "content": "Weather?"}, *output, {"role": "user", "content": "Thanks."}]
    return output, surface.parse(incoming(first))


def anthropic_assistant(request: ChatRequest) -> dict[str, Any]:
    return dict(AnthropicCodec().body(request, "claude-x")["messages"][1])


def responses_input(request: ChatRequest) -> list[dict[str, Any]]:
    return list(ResponsesCodec().body(request, "gpt-5")["input"])


def test_an_anthropic_clients_thinking_from_gemini_is_not_given_to_an_anthropic_upstream() -> None:
    content, request = anthropic_turn(GeminiCodec().events(GEMINI_ANSWER, "gemini-2.5-flash"))
    assert content[0] == {"type": "thinking", "thinking": "Look it up.", "signature": fold_signature(THOUGHT)}
    assert request.messages[1].content[0].signature == THOUGHT  # type: ignore[index, union-attr]
    assert anthropic_assistant(request) == {"role": "assistant", "content": [{"type": "text", "text": "Sunny."}]}


def test_an_anthropic_clients_thinking_from_anthropic_goes_back_unchanged() -> None:
    content, request = anthropic_turn(AnthropicCodec().events(ANTHROPIC_ANSWER, "claude-x"))
    assert content == ANTHROPIC_ANSWER["content"], "same protocol: the wire as before"
    assert anthropic_assistant(request)["content"] == ANTHROPIC_ANSWER["content"]
    assert [i.get("type", "message") for i in responses_input(request)] == ["message", "message", "message"]


def test_a_responses_clients_reasoning_from_anthropic_goes_back_to_anthropic_only() -> None:
    output, request = responses_turn(AnthropicCodec().events(ANTHROPIC_ANSWER, "claude-x"))
    assert output[0]["encrypted_content"] == fold_signature(SIGNED)
    assert anthropic_assistant(request)["content"] == ANTHROPIC_ANSWER["content"]
    assert [i.get("type", "message") for i in responses_input(request)] == ["message", "message", "message"], \
        "no reasoning item: a Responses upstream would refuse Anthropic's signature as encrypted_content"


def test_a_responses_clients_reasoning_from_a_responses_upstream_goes_back_unchanged() -> None:
    output, request = responses_turn(ResponsesCodec().events(RESPONSES_ANSWER, "gpt-5"))
    assert output[0]["encrypted_content"] == "gAAAAB-enc_0123==", "same protocol: the wire as before"
    reasoning = [i for i in responses_input(request) if i.get("type") == "reasoning"]
    assert [i["encrypted_content"] for i in reasoning] == ["gAAAAB-enc_0123=="]
    assert anthropic_assistant(request)["content"] == [{"type": "text", "text": "Done."}]


def test_a_gemini_clients_thought_from_anthropic_goes_back_to_anthropic() -> None:
    surface = GeminiGenerate()
    first: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "Weather?"}]}]}
    answer = answer_for(AnthropicCodec().events(ANTHROPIC_ANSWER, "claude-x"), surface.name)
    parts = orjson.loads(surface.render_response(answer, surface.parse(incoming(first)), incoming()))[
        "candidates"][0]["content"]["parts"]
    assert parts[0] == {"text": "Hmm.", "thought": True, "thoughtSignature": fold_signature(SIGNED)}
    first["contents"] += [{"role": "model", "parts": parts}, {"role": "user", "parts": [{"text": "Thanks."}]}]
    assert anthropic_assistant(surface.parse(incoming(first)))["content"] == ANTHROPIC_ANSWER["content"]


def test_a_gemini_clients_own_thought_keeps_its_signature() -> None:
    surface = GeminiGenerate()
    answer = answer_for(GeminiCodec().events(GEMINI_ANSWER, "gemini-2.5-flash"), surface.name)
    parts = orjson.loads(surface.render_response(answer, ChatRequest("m", (Message("user", "x"),)), incoming()))[
        "candidates"][0]["content"]["parts"]
    assert parts[0] == GEMINI_ANSWER["candidates"][0]["content"]["parts"][0]  # type: ignore[index]


def test_a_gemini_clients_whole_answer_keeps_redacted_thinking_for_the_next_anthropic_turn() -> None:
    surface = GeminiGenerate()
    redacted = {**ANTHROPIC_ANSWER, "content": [{"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
                                                {"type": "text", "text": "Done."}]}
    first: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "Weather?"}]}]}
    answer = answer_for(AnthropicCodec().events(redacted, "claude-x"), surface.name)
    parts = orjson.loads(surface.render_response(answer, surface.parse(incoming(first)), incoming()))[
        "candidates"][0]["content"]["parts"]
    assert parts[0]["thought"] is True and parts[0]["text"] == ""
    assert parts[0]["thoughtSignature"].startswith("lipSignature")
    first["contents"] += [{"role": "model", "parts": parts}, {"role": "user", "parts": [{"text": "Thanks."}]}]
    assert anthropic_assistant(surface.parse(incoming(first)))["content"] == redacted["content"]
