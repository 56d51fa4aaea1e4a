"""lip.protocols.openai_chat surface and errors: the model list, the answer, the stream's chunks and its
error ending, an upstream's in-stream error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson

from lip.core.errors import LimitExceeded, ProxyError, UpstreamTimeout
from lip.core.model import ChatRequest, ChatResponse, Finish, Message, ResponseStart, StreamEvent, TextDelta
from lip.protocols.base import Incoming, ModelInfo
from lip.protocols.openai_chat import errors
from lip.protocols.openai_chat.surface import OpenAIChat, render_stream

REQUEST = ChatRequest("m", (Message(role="user", content="hi"),), stream=True)


def test_the_model_list_shows_each_models_configured_limits() -> None:
    body = orjson.loads(OpenAIChat().render_models([
        ModelInfo("up:big", "up", 128000, None, 4096, limits={"context_window": 128000, "max_output_tokens": 4096}),
        ModelInfo("mock:m", "mock", None, None, None),
    ]))
    assert body == {"object": "list", "data": [
        {"id": "up:big", "object": "model", "created": 0, "owned_by": "up",
         "limits": {"context_window": 128000, "max_output_tokens": 4096}},
        {"id": "mock:m", "object": "model", "created": 0, "owned_by": "mock"},
    ]}


def test_an_empty_answer_has_empty_content_and_stop() -> None:
    incoming = Incoming(b"", {}, {}, {})
    body = orjson.loads(OpenAIChat().render_response(ChatResponse(id="c1", model="m"), REQUEST, incoming))
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": ""},
                                "finish_reason": "stop", "logprobs": None}]
    assert "usage" not in body


async def _failing() -> AsyncIterator[StreamEvent]:
    yield ResponseStart("c1", "m", 7)
    yield TextDelta("he")
    raise UpstreamTimeout("the upstream went silent")


async def _finished() -> AsyncIterator[StreamEvent]:
    yield ResponseStart("c1", "m", 7)
    yield TextDelta("hello")
    yield Finish("stop")


async def _chunks(events: AsyncIterator[StreamEvent]) -> list[bytes]:
    return [chunk async for chunk in render_stream(events, REQUEST)]


def test_a_stream_that_fails_ends_with_the_error_envelope_and_no_done() -> None:
    chunks = asyncio.run(_chunks(_failing()))
    assert chunks[-1].startswith(b"data: ") and b"[DONE]" not in b"".join(chunks)
    error = orjson.loads(chunks[-1].removeprefix(b"data: "))["error"]
    assert (error["code"], error["message"]) == ("upstream_timeout", "the upstream went silent")


def test_a_finished_stream_ends_with_done() -> None:
    chunks = asyncio.run(_chunks(_finished()))
    assert chunks[-1] == b"data: [DONE]\n\n"
    finish = orjson.loads(chunks[-2].removeprefix(b"data: "))
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["id"] == "c1"


def test_a_limit_error_carries_the_detail_body() -> None:
    status, raw = errors.render_error(LimitExceeded("too long", details={"limit": 10}))
    body = orjson.loads(raw)
    assert status == 400
    assert body["detail"] == {"code": "input_limit_exceeded", "message": "too long", "details": {"limit": 10}}
    assert body["error"]["code"] == "input_limit_exceeded"


def test_an_upstream_chunk_with_an_error_and_no_choices_is_a_502() -> None:
    error = errors.stream_error_of({"error": {"message": "overloaded", "code": "server_busy"}})
    assert isinstance(error, ProxyError)
    assert (error.status, error.code, error.message) == (502, "server_busy", "overloaded")
    bare = errors.stream_error_of({"error": "boom"})
    assert bare is not None and (bare.code, bare.message) == ("upstream_error", "boom")
    assert errors.stream_error_of({"error": None, "choices": [{"delta": {}}]}) is None
    assert errors.stream_error_of({"choices": []}) is None
