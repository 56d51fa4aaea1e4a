"""The front door's one error path: refusals before the body (in the route's envelope; a chat endpoint
answers its own), errors an endpoint raises, a bug as a logged 500 with the request id, a 304, a websocket."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from lip.access.clients import Client
from lip.core.errors import Forbidden, Unauthorized
from lip.edge.asgi import Message
from lip.edge.door import Caller, FrontDoor, Reply
from lip.edge.exchange import Unrouted
from lip.edge.routes import Route, Table
from lip.protocols.anthropic.surface import AnthropicMessages
from lip.protocols.base import Incoming
from lip.protocols.openai_chat.surface import OpenAIChat
from lip.protocols.routes import CHAT, COUNT, MODELS


class Endpoint:
    def __init__(self, reply: Reply | None = None, raises: BaseException | None = None) -> None:
        self.reply, self.raises = reply or Reply(200, b"{}"), raises
        self.calls: list[tuple[Incoming, Caller]] = []

    async def __call__(self, incoming: Incoming, caller: Caller) -> Reply:
        self.calls.append((incoming, caller))
        if self.raises is not None:
            raise self.raises
        return self.reply


def refuse(headers: Mapping[str, str], query: Mapping[str, str], address: str) -> Client | None:
    raise Unauthorized("Missing or invalid API key for this proxy.")


def door(endpoint: Endpoint, kind: str = COUNT, method: str = "POST", admit: Any = None) -> FrontDoor:
    table = Table(OpenAIChat())
    table.add(method, "/v1/messages/count_tokens", Route(endpoint, AnthropicMessages(), kind, auth=True,
                                                         body=method == "POST"))
    table.prefixes.append(("/v1/messages", AnthropicMessages()))  # its paths outside the routes: Anthropic's
    return FrontDoor(table, admit=admit)


def call(front: FrontDoor, method: str = "POST", headers: dict[str, str] | None = None,
         kind: str = "http") -> tuple[int, dict[str, str], Any, list[Message]]:
    sent: list[Message] = []
    inbox = [{"type": "http.request", "body": b"{}"}]

    async def receive() -> Message:
        if inbox:
            return inbox.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": kind, "method": method, "path": "/v1/messages/count_tokens", "query_string": b"",
             "client": ("10.0.0.1", 1), "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()]}
    asyncio.run(front(scope, receive, send))
    if kind != "http":
        return 0, {}, None, sent
    head = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    raw = sent[1]["body"]
    return sent[0]["status"], head, orjson.loads(raw) if raw else None, sent


def test_a_refused_caller_is_answered_in_the_routes_envelope_without_its_body_or_endpoint() -> None:
    endpoint = Endpoint()
    status, head, body, _ = call(door(endpoint, admit=refuse))
    assert status == 401 and body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert head["connection"] == "close"  # no declared length: what is left unread may be large
    assert endpoint.calls == []
    status, head, _, _ = call(door(endpoint, admit=refuse), headers={"content-length": "2"})
    assert status == 401 and "connection" not in head


def test_a_refusal_on_a_route_without_a_body_keeps_the_connection() -> None:
    endpoint = Endpoint()
    status, head, _, _ = call(door(endpoint, MODELS, "GET", admit=refuse), "GET")
    assert status == 401 and "connection" not in head and endpoint.calls == []


def test_a_chat_endpoint_hears_its_refusal_itself() -> None:
    endpoint = Endpoint(Reply(401, b'{"recorded":true}'))
    status, _, body, _ = call(door(endpoint, CHAT, admit=refuse))
    assert (status, body) == (401, {"recorded": True})
    assert isinstance(endpoint.calls[0][1].refused, Unauthorized)


def test_a_declared_body_too_large_is_refused_before_it_is_read() -> None:
    endpoint = Endpoint()
    table = Table(OpenAIChat())
    table.add("POST", "/v1/messages/count_tokens", Route(endpoint, AnthropicMessages(), COUNT, auth=True, body=True))
    status, head, body, _ = call(FrontDoor(table, max_body=10), headers={"content-length": "11"})
    assert status == 413 and body["error"]["type"] == "request_too_large" and head["connection"] == "close"
    assert endpoint.calls == []


def test_an_error_an_endpoint_raises_is_rendered_in_its_routes_envelope() -> None:
    status, _, body, _ = call(door(Endpoint(raises=Forbidden("not yours", code="forbidden"))))
    assert status == 403 and body["type"] == "error"
    assert (body["error"]["type"], body["error"]["message"]) == ("permission_error", "not yours")


def test_a_bug_is_a_logged_500_naming_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        status, head, body, _ = call(door(Endpoint(raises=RuntimeError("boom"))), headers={"x-request-id": "r-9"})
    assert status == 500 and head["x-request-id"] == "r-9"
    assert body["error"]["message"] == "Internal proxy error (request id r-9)."
    assert "boom" not in orjson.dumps(body).decode()
    assert any(r.exc_info and "r-9" in r.getMessage() for r in caplog.records)


def test_an_endpoint_that_finds_nothing_under_its_route_answers_as_an_unknown_url() -> None:
    status, _, body, _ = call(door(Endpoint(raises=Unrouted())))
    assert status == 404 and body["error"]["type"] == "not_found_error"
    assert body["error"]["message"] == "Unknown request URL: POST /v1/messages/count_tokens."


def test_a_304_has_neither_a_content_type_nor_a_length() -> None:
    status, head, body, _ = call(door(Endpoint(Reply(304, media_type="", headers={"ETag": '"x"'}))))
    assert status == 304 and body is None and head["etag"] == '"x"'
    assert "content-type" not in head and "content-length" not in head


def test_a_websocket_is_closed() -> None:
    endpoint = Endpoint()
    *_, sent = call(door(endpoint), kind="websocket")
    assert sent == [{"type": "websocket.close", "code": 1000, "reason": ""}] and endpoint.calls == []
