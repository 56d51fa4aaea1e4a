"""Which paths serve chat, in which protocol, whole or streamed, and the envelope of a bad body on each:
the route table as clients see it, in-process against the offline mock backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from asgi_harness import config_dir, serve

from lip.commands.processor import HELP

MODEL = "mock:mock-model"
SAID = "Hello there"
MESSAGES = [{"role": "user", "content": SAID}]
CONTENTS = {"contents": [{"role": "user", "parts": [{"text": SAID}]}]}
OPENAI = {"model": MODEL, "messages": MESSAGES}
ANTHROPIC = {"model": MODEL, "max_tokens": 100, "messages": MESSAGES}
RESPONSES = {"model": MODEL, "input": SAID}


def post_all(tmp_path: Path, calls: list[tuple[str, Any]], **settings: Any) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        async with serve(config_dir(tmp_path), **settings) as client:
            return [await client.post(path, content=body if isinstance(body, bytes) else orjson.dumps(body),
                                      headers={"content-type": "application/json"}) for path, body in calls]

    return asyncio.run(go())


def openai_text(body: dict[str, Any]) -> str:
    return str(body["choices"][0]["message"]["content"])


def anthropic_text(body: dict[str, Any]) -> str:
    return "".join(block["text"] for block in body["content"] if block["type"] == "text")


def gemini_text(body: dict[str, Any]) -> str:
    return "".join(part.get("text", "") for part in body["candidates"][0]["content"]["parts"])


def responses_text(body: dict[str, Any]) -> str:
    return "".join(c["text"] for item in body["output"] if item["type"] == "message" for c in item["content"])


WHOLE: list[tuple[str, Any, Callable[[dict[str, Any]], str]]] = [
    ("/v1/chat/completions", OPENAI, openai_text),
    ("/chat/completions", OPENAI, openai_text),
    ("/v1/messages", ANTHROPIC, anthropic_text),
    ("/anthropic/v1/messages", ANTHROPIC, anthropic_text),
    (f"/v1beta/models/{MODEL}:generateContent", CONTENTS, gemini_text),
    (f"/v1alpha/models/{MODEL}:generateContent", CONTENTS, gemini_text),
    (f"/v1/models/{MODEL}:generateContent", CONTENTS, gemini_text),
    (f"/models/{MODEL}:generateContent", CONTENTS, gemini_text),
    ("/v1/responses", RESPONSES, responses_text),
]


def test_every_chat_path_answers_the_same_in_its_own_protocol(tmp_path: Path) -> None:
    responses = post_all(tmp_path, [(path, body) for path, body, _ in WHOLE])
    texts = []
    for (path, _, text_of), response in zip(WHOLE, responses, strict=True):
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"] == "application/json", path
        assert (response.headers["x-lip-backend"], response.headers["x-lip-model"]) == ("mock", "mock-model"), path
        texts.append(text_of(response.json()))
    assert texts[0].endswith(f"You said: {SAID}")
    assert texts == [texts[0]] * len(WHOLE)


def sse_data(text: str) -> list[Any]:
    lines = text.splitlines()
    return [orjson.loads(line[6:]) for line in lines if line.startswith("data: ") and line != "data: [DONE]"]


def openai_stream(text: str) -> str:
    assert text.rstrip().endswith("data: [DONE]")
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in sse_data(text) if c["choices"])


def anthropic_stream(text: str) -> str:
    events = sse_data(text)
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    return "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")


def gemini_sse(text: str) -> str:
    return "".join(gemini_text(chunk) for chunk in sse_data(text))


def gemini_array(text: str) -> str:
    return "".join(gemini_text(chunk) for chunk in orjson.loads(text))


def responses_stream(text: str) -> str:
    events = sse_data(text)
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")


STREAMED: list[tuple[str, Any, str, Callable[[str], str]]] = [
    ("/v1/chat/completions", {**OPENAI, "stream": True}, "text/event-stream; charset=utf-8", openai_stream),
    ("/v1/messages", {**ANTHROPIC, "stream": True}, "text/event-stream; charset=utf-8", anthropic_stream),
    (f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", CONTENTS, "text/event-stream; charset=utf-8",
     gemini_sse),
    (f"/v1beta/models/{MODEL}:streamGenerateContent", CONTENTS, "application/json", gemini_array),
    ("/v1/responses", {**RESPONSES, "stream": True}, "text/event-stream; charset=utf-8", responses_stream),
]


def test_every_stream_carries_the_whole_answer_in_its_own_framing(tmp_path: Path) -> None:
    whole, *streams = post_all(tmp_path, [("/v1/chat/completions", OPENAI)] + [(p, b) for p, b, _, _ in STREAMED])
    expected = openai_text(whole.json())
    for (path, _, media_type, text_of), response in zip(STREAMED, streams, strict=True):
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"] == media_type, path
        assert response.headers["cache-control"] == "no-cache", path
        assert text_of(response.text) == expected, path


def openai_envelope(body: dict[str, Any]) -> tuple[str, str]:
    return body["error"]["type"], body["error"]["code"]


def anthropic_envelope(body: dict[str, Any]) -> tuple[str, str]:
    assert body["type"] == "error"
    return body["error"]["type"], body["error"]["code"]


def gemini_envelope(body: dict[str, Any]) -> tuple[str, str]:
    return body["error"]["status"], body["error"]["details"][0]["reason"]


ENVELOPES: list[tuple[str, Callable[[dict[str, Any]], tuple[str, str]], str]] = [
    ("/v1/chat/completions", openai_envelope, "invalid_request_error"),
    ("/v1/responses", openai_envelope, "invalid_request_error"),
    ("/v1/messages", anthropic_envelope, "invalid_request_error"),
    ("/v1/messages/count_tokens", anthropic_envelope, "invalid_request_error"),
    (f"/v1beta/models/{MODEL}:generateContent", gemini_envelope, "INVALID_ARGUMENT"),
    (f"/v1beta/models/{MODEL}:countTokens", gemini_envelope, "INVALID_ARGUMENT"),
]


def test_a_body_that_is_not_json_is_a_400_in_each_protocols_envelope(tmp_path: Path) -> None:
    responses = post_all(tmp_path, [(path, b"{not json") for path, _, _ in ENVELOPES])
    for (path, envelope, kind), response in zip(ENVELOPES, responses, strict=True):
        assert response.status_code == 400, path
        assert envelope(response.json()) == (kind, "invalid_json"), path


def test_a_body_over_max_request_body_is_a_413_in_each_protocols_envelope(tmp_path: Path) -> None:
    big = orjson.dumps({**OPENAI, "messages": [{"role": "user", "content": "x" * 5000}]})
    responses = post_all(tmp_path, [(path, big) for path, _, _ in ENVELOPES], max_request_body=1024)
    for (path, envelope, _), response in zip(ENVELOPES, responses, strict=True):
        assert response.status_code == 413, path
        assert envelope(response.json())[1] == "request_too_large", path
        assert response.headers.get("connection") == "close", path


def test_anthropic_and_gemini_count_the_same_prompt_alike(tmp_path: Path) -> None:
    anthropic, gemini = post_all(tmp_path, [("/v1/messages/count_tokens", {"model": MODEL, "messages": MESSAGES}),
                                            (f"/v1beta/models/{MODEL}:countTokens", CONTENTS)])
    assert anthropic.status_code == gemini.status_code == 200
    assert set(anthropic.json()) == {"input_tokens"} and set(gemini.json()) == {"totalTokens"}
    assert anthropic.json()["input_tokens"] == gemini.json()["totalTokens"] > 0


@pytest.mark.parametrize(("path", "body", "text_of"), [
    ("/v1/chat/completions", {**OPENAI, "messages": [{"role": "user", "content": "!/help"}]}, openai_text),
    ("/v1/messages", {**ANTHROPIC, "messages": [{"role": "user", "content": "!/help"}]}, anthropic_text),
    (f"/v1beta/models/{MODEL}:generateContent", {"contents": [{"role": "user", "parts": [{"text": "!/help"}]}]},
     gemini_text),
])
def test_a_command_is_answered_by_the_proxy_in_the_clients_protocol(tmp_path: Path, path: str, body: Any,
                                                                    text_of: Callable[[dict[str, Any]], str]) -> None:
    (response,) = post_all(tmp_path, [(path, body)])
    assert response.status_code == 200
    assert (response.headers["x-lip-backend"], response.headers["x-lip-model"]) == ("lip", "commands")
    assert text_of(response.json()) == HELP
