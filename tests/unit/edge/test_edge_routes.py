"""The one route table: every route the protocols declare resolves to an endpoint of its kind through the
front door, GET routes answer HEAD, and paths outside the routes get the envelope the declarations say."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from lip.edge.asgi import Message
from lip.edge.door import Caller, FrontDoor, Reply
from lip.edge.routes import Route, Served, Table, route_table
from lip.protocols.base import Incoming, Surface
from lip.protocols.openai_chat.surface import OpenAIChat
from lip.protocols.registry import PROTOCOLS, Protocol, SurfaceNeeds
from lip.protocols.routes import CHAT, ClientRoute, ClientSide, Listing


class Tag:
    """An endpoint that answers which kind of route, for which protocol, with which path parameters."""

    def __init__(self, kind: str, surface: Surface, method: str = "") -> None:
        self.kind, self.surface, self.method = kind, surface.name, method

    async def __call__(self, incoming: Incoming, caller: Caller) -> Reply:
        body = {"kind": self.kind, "surface": self.surface, "method": self.method, "path": dict(incoming.path),
                "name": incoming.method, "body": incoming.body.decode()}
        return Reply(200, orjson.dumps(body))


class Kinds:
    def chat(self, surface: Surface) -> Tag:
        return Tag("chat", surface)

    def count(self, surface: Surface) -> Tag:
        return Tag("count", surface)

    def models(self, surface: Surface) -> Tag:
        return Tag("models", surface)

    def stored(self, surface: Surface, method: str) -> Tag:
        return Tag("stored-response", surface, method)


async def live(incoming: Incoming, caller: Caller) -> Reply:
    return Reply(200, b'{"live":true}')


NEEDS: Any = SurfaceNeeds(responses=None)  # no endpoint here reads a store


def table() -> Table:
    return route_table(PROTOCOLS.values(), NEEDS, Kinds(), [Served("GET", "/health", live)])


def call(door: FrontDoor, method: str, path: str, headers: dict[str, str] | None = None, *,
         query: bytes = b"", body: bytes = b"{}") -> tuple[int, dict[str, str], Any]:
    sent: list[Message] = []
    inbox = [{"type": "http.request", "body": body}]

    async def receive() -> Message:
        if inbox:
            return inbox.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": query, "client": ("10.0.0.1", 1),
             "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()]}
    asyncio.run(door(scope, receive, send))
    head = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    raw = sent[1]["body"]
    return sent[0]["status"], head, orjson.loads(raw) if raw else None


def concrete(path: str) -> tuple[str, dict[str, str]]:
    """A path matching the pattern ``path``, and the parameters it carries."""
    if "{model}:" in path:
        prefix, _, method = path.partition("{model}:")
        return f"{prefix}tuned/m-1:{method}", {"model": "tuned/m-1"}
    if "{" in path:
        prefix, _, name = path[:-1].rpartition("{")
        return prefix + "abc_123", {name: "abc_123"}
    return path, {}


DECLARED = [(protocol.name, route) for protocol in PROTOCOLS.values() for route in protocol.client.routes]


@pytest.mark.parametrize(("protocol", "route"), DECLARED, ids=[f"{r.method} {r.path} {p}" for p, r in DECLARED])
def test_every_declared_route_reaches_an_endpoint_of_its_kind(protocol: str, route: ClientRoute) -> None:
    path, params = concrete(route.path)
    status, head, body = call(FrontDoor(table()), route.method, path, body=b'{"x":1}')
    assert status == 200 and "x-request-id" in head
    shared = route.method == "GET" and path in ("/v1/models", "/models")  # OpenAI's unless a Google client asks
    assert body["kind"] == route.kind
    assert body["surface"] == ("openai" if shared else PROTOCOLS[protocol].surface(NEEDS).name)
    assert body["path"] == params
    assert body["name"] == (route.path.rpartition(":")[2] if "{model}:" in route.path else "")
    assert body["method"] == (route.method if route.kind == "stored-response" else "")
    assert body["body"] == ('{"x":1}' if route.method == "POST" else "")  # a GET is not waited for a body


@pytest.mark.parametrize("path", ["/v1/models", "/models"])
@pytest.mark.parametrize(("headers", "query"), [({"x-goog-api-key": "k"}, b""), ({"x-goog-api-client": "g"}, b""),
                                                ({}, b"key=k"), ({}, b"key=")])
def test_a_shared_model_list_is_geminis_for_a_google_client(path: str, headers: dict[str, str], query: bytes) -> None:
    _, _, body = call(FrontDoor(table()), "GET", path, headers, query=query)
    assert (body["kind"], body["surface"]) == ("models", "gemini")


def test_a_get_route_answers_head_with_its_head_and_no_body() -> None:
    door = FrontDoor(table())
    status, head, body = call(door, "HEAD", "/health")
    assert status == 200 and body is None and head["content-length"] == str(len(b'{"live":true}'))
    assert call(door, "HEAD", "/v1/models")[0] == 200
    assert call(door, "HEAD", "/v1/chat/completions")[0] == 405  # POST only


UNKNOWN = [
    ("/v1/messages/batches", {}, "anthropic"),
    ("/anthropic/v1/other", {}, "anthropic"),
    ("/v1beta/tunedModels", {}, "gemini"),
    ("/v1alpha/x", {}, "gemini"),
    ("/v1/models/m:embedContent", {}, "gemini"),
    ("/models/m:embedContent", {}, "gemini"),
    ("/v1/files", {"x-goog-api-key": "k"}, "gemini"),
    ("/v1/files", {}, "openai"),
    ("/nowhere", {}, "openai"),
]


def envelope(body: Any) -> str:
    error = body["error"]
    if body.get("type") == "error":
        return "anthropic"
    return "gemini" if "status" in error else "openai"


@pytest.mark.parametrize(("path", "headers", "protocol"), UNKNOWN)
def test_a_path_outside_the_routes_is_a_404_in_the_envelope_its_declarations_say(
        path: str, headers: dict[str, str], protocol: str) -> None:
    status, _, body = call(FrontDoor(table()), "GET", path, headers)
    assert status == 404 and envelope(body) == protocol
    message = body["error"]["message"]
    assert message == f"Unknown request URL: GET {path}."


WRONG_METHOD = [
    ("GET", "/v1/chat/completions", "openai"),
    ("GET", "/v1/messages", "anthropic"),
    ("GET", "/v1/messages/count_tokens", "anthropic"),
    ("GET", "/v1beta/models/m:countTokens", "gemini"),
    ("GET", "/v1/models/m:generateContent", "gemini"),
    ("POST", "/v1/models", "openai"),
    ("POST", "/v1beta/models", "gemini"),
    ("PUT", "/v1/responses/abc", "openai"),
    ("POST", "/health", "openai"),
]


@pytest.mark.parametrize(("method", "path", "protocol"), WRONG_METHOD)
def test_a_method_a_path_has_no_route_for_is_a_405_in_the_paths_envelope(method: str, path: str,
                                                                          protocol: str) -> None:
    status, _, body = call(FrontDoor(table()), method, path, {"x-goog-api-key": "k"})
    assert status == 405 and envelope(body) == protocol
    assert "Method " + method in body["error"]["message"]


def test_a_trailing_slash_on_a_route_other_than_chat_redirects_and_on_chat_is_a_404() -> None:
    door = FrontDoor(table())
    status, head, _ = call(door, "GET", "/health/", {"host": "proxy:8080"}, query=b"a=1")
    assert status == 307 and head["location"] == "http://proxy:8080/health?a=1"
    assert call(door, "POST", "/v1/chat/completions/")[0] == 404


def test_two_protocols_on_one_path_need_a_way_to_tell_their_clients_apart() -> None:
    route = ClientRoute("POST", "/v1/chat/completions", CHAT)
    openai = PROTOCOLS["openai"]
    copy = Protocol("copy", openai.codec, openai.surface, ClientSide((route,), openai.client.listing), system="openai")
    twice = [openai, copy]
    with pytest.raises(ValueError, match="exactly one protocol that marks no clients"):
        route_table(twice, NEEDS, Kinds(), [])
    one = Table(OpenAIChat())
    one.add("GET", "/x", Route(live, OpenAIChat()))
    with pytest.raises(ValueError, match="two routes for GET /x"):
        one.add("GET", "/x", Route(live, OpenAIChat()))


def test_a_client_surface_without_an_upstream_codec_is_one_more_protocol_in_the_table() -> None:
    side = ClientSide((ClientRoute("POST", "/v1/completions", CHAT),),
                      Listing("completions", "OpenAI Completions", ("POST /v1/completions",)))
    surface_only = Protocol("completions", None, lambda _: OpenAIChat(), side, system="openai")
    door = FrontDoor(route_table([*PROTOCOLS.values(), surface_only], NEEDS, Kinds(), []))
    status, _, body = call(door, "POST", "/v1/completions")
    assert status == 200 and body["kind"] == "chat"


def test_an_upstream_protocol_without_clients_adds_no_route_and_a_half_declared_one_is_refused() -> None:
    openai = PROTOCOLS["openai"]
    upstream_only = Protocol("ollama", openai.codec, None, None, system="ollama")
    assert upstream_only.serves(NEEDS) is None
    door = FrontDoor(route_table([*PROTOCOLS.values(), upstream_only], NEEDS, Kinds(), []))
    assert call(door, "POST", "/v1/chat/completions")[2]["surface"] == "openai"
    with pytest.raises(ValueError, match="a client surface needs its routes"):
        Protocol("half", openai.codec, openai.surface, None, system="x")
    with pytest.raises(ValueError, match="neither a codec nor a client surface"):
        Protocol("none", None, None, None, system="x")
