"""The ASGI front door: request ids, chat dispatch, body reading, streams that the client abandons."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from lip.edge.asgi import Message, Scope
from lip.edge.door import Caller, FrontDoor, Reply, RequestIds
from lip.edge.routes import Route, Table
from lip.protocols.base import Incoming
from lip.protocols.gemini.surface import GeminiGenerate
from lip.protocols.openai_chat.surface import OpenAIChat
from lip.protocols.routes import CHAT, COUNT


def scope(path: str, method: str = "POST", headers: list[tuple[bytes, bytes]] | None = None,
          query: bytes = b"") -> Scope:
    return {"type": "http", "method": method, "path": path, "headers": headers or [], "query_string": query,
            "client": ("10.0.0.7", 5555)}


class Wire:
    """A fake ASGI server side: scripted request messages in, response messages recorded."""

    def __init__(self, *messages: Message, then_disconnect_after: float | None = None) -> None:
        self._messages = list(messages)
        self._disconnect_after = then_disconnect_after
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        if self._messages:
            return self._messages.pop(0)
        after = self._disconnect_after
        if after is None:
            await asyncio.Event().wait()  # never: the client stays
        else:
            await asyncio.sleep(after)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    def head(self) -> dict[str, str]:
        start = self.sent[0]
        return {k.decode(): v.decode() for k, v in start["headers"]}


class Recorder:
    def __init__(self, reply: Reply | None = None) -> None:
        self.calls: list[tuple[Incoming, Caller]] = []
        self.reply = reply or Reply(200, b'{"ok":true}', headers={"X-Lip-Backend": "mock"})

    async def __call__(self, incoming: Incoming, caller: Caller) -> Reply:
        self.calls.append((incoming, caller))
        return self.reply


async def counted(incoming: Incoming, caller: Caller) -> Reply:
    return Reply(200, b"counted")


def door(chat: Recorder, gemini: Recorder | None = None) -> FrontDoor:
    gemini = gemini or Recorder()
    table = Table(OpenAIChat())
    table.add("POST", "/v1/chat/completions", Route(chat, OpenAIChat(), CHAT, body=True))
    for method in ("generateContent", "streamGenerateContent"):
        table.add("POST", f"/v1beta/models/{{model}}:{method}", Route(gemini, GeminiGenerate(), CHAT, body=True))
    table.add("POST", "/v1beta/models/{model}:countTokens", Route(counted, GeminiGenerate(), COUNT, body=True))
    return FrontDoor(table)


def test_request_ids_are_unique_and_a_sane_client_id_is_kept() -> None:
    ids = RequestIds()
    made = {ids.of(scope("/")) for _ in range(1000)}
    assert len(made) == 1000 and all(len(i) == 32 for i in made)
    assert RequestIds().of(scope("/")) not in made  # another process (or app) has another prefix
    assert ids.of(scope("/", headers=[(b"x-request-id", b"abc-1")])) == "abc-1"
    assert ids.of(scope("/", headers=[(b"x-request-id", b"bad id\n")])) not in ("bad id\n", "")


def test_chat_request_reaches_its_endpoint_with_body_headers_query_and_caller() -> None:
    chat = Recorder()
    wire = Wire({"type": "http.request", "body": b'{"mod', "more_body": True},
                {"type": "http.request", "body": b'el":1}', "more_body": False})
    request = scope("/v1/chat/completions", headers=[(b"authorization", b"Bearer k"), (b"x-request-id", b"r-1")],
                    query=b"a=1&b=two")
    asyncio.run(door(chat)(request, wire.receive, wire.send))
    incoming, caller = chat.calls[0]
    assert incoming.body == b'{"model":1}'
    assert incoming.headers["authorization"] == "Bearer k"
    assert incoming.query == {"a": "1", "b": "two"}
    assert caller == Caller("r-1", "10.0.0.7")
    head = wire.head()
    assert wire.sent[0]["status"] == 200
    assert head["x-request-id"] == "r-1" and head["x-lip-backend"] == "mock"
    assert head["content-length"] == str(len(b'{"ok":true}'))
    assert wire.sent[1] == {"type": "http.response.body", "body": b'{"ok":true}'}


def test_gemini_paths_carry_model_and_method_and_count_tokens_is_its_own_route() -> None:
    gemini = Recorder()
    wire = Wire({"type": "http.request", "body": b"{}"})
    asyncio.run(door(Recorder(), gemini)(scope("/v1beta/models/tuned/x-1:streamGenerateContent"),
                                          wire.receive, wire.send))
    incoming, _ = gemini.calls[0]
    assert incoming.path == {"model": "tuned/x-1"} and incoming.method == "streamGenerateContent"
    other = Wire({"type": "http.request", "body": b"{}"})
    asyncio.run(door(Recorder(), gemini)(scope("/v1beta/models/x:countTokens"), other.receive, other.send))
    assert other.sent[1]["body"] == b"counted" and len(gemini.calls) == 1
    assert "x-request-id" in other.head()  # every route's answers carry the id


def test_wrong_method_on_a_chat_path_is_refused_without_calling_the_endpoint() -> None:
    chat = Recorder()
    wire = Wire()
    asyncio.run(door(chat)(scope("/v1/chat/completions", method="GET"), wire.receive, wire.send))
    assert wire.sent[0]["status"] == 405
    error = orjson.loads(wire.sent[1]["body"])["error"]
    assert error["message"] == "Method GET is not allowed for /v1/chat/completions."
    assert chat.calls == []


def test_a_client_gone_before_its_body_arrived_gets_nothing() -> None:
    chat = Recorder()
    wire = Wire({"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"})
    asyncio.run(door(chat)(scope("/v1/chat/completions"), wire.receive, wire.send))
    assert chat.calls == [] and wire.sent == []


def test_a_stream_stops_and_closes_when_the_client_disconnects_while_it_waits() -> None:
    closed = asyncio.Event()
    produced: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        try:
            for i in range(1000):
                produced.append(i)
                yield b"data: %d\n\n" % i
                await asyncio.sleep(0.05)  # a slow upstream
        finally:
            closed.set()

    chat = Recorder(Reply(200, media_type="text/event-stream", stream=chunks()))
    wire = Wire({"type": "http.request", "body": b"{}"}, then_disconnect_after=0.12)

    async def run() -> None:
        await asyncio.wait_for(door(chat)(scope("/v1/chat/completions"), wire.receive, wire.send), 2)

    asyncio.run(run())
    assert closed.is_set()
    assert 1 <= len(produced) <= 4  # stopped soon after the disconnect, not after 1000 chunks
    assert wire.head()["content-type"] == "text/event-stream; charset=utf-8"
    assert "content-length" not in wire.head()
    assert wire.sent[-1].get("more_body") is True  # never claimed to have finished


def test_a_finished_stream_ends_with_an_empty_final_body() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"

    chat = Recorder(Reply(200, media_type="text/event-stream", stream=chunks()))
    wire = Wire({"type": "http.request", "body": b"{}"})
    asyncio.run(door(chat)(scope("/v1/chat/completions"), wire.receive, wire.send))
    bodies: list[Any] = [m.get("body") for m in wire.sent[1:]]
    assert bodies == [b"a", b"b", b""]
    assert wire.sent[-1].get("more_body", False) is False
