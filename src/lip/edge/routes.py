"""The one route table: every protocol's declared client routes and the operator's, by path and method.

The protocols declare their routes (``ClientSide`` in each lip/protocols/<name>/__init__.py, carried
by the registry); ``build`` gives each an endpoint of its kind and adds the operator's routes
(health, readiness, metrics, usage, the index, the dashboard). The same declarations say which
envelope a path outside the routes gets (``Table.envelope``). A path two protocols declare
(``GET /v1/models``) is served by the one whose client the request comes from (``ClientSide.claims``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol as Interface

from lip.edge.exchange import Endpoint
from lip.protocols.base import Surface
from lip.protocols.registry import Protocol, SurfaceNeeds
from lip.protocols.routes import CHAT, COUNT, MODELS, STORED, ClientSide, Kind

OPERATOR = "operator"
Picker = Callable[[Mapping[str, str], Mapping[str, str]], "Route"]  # (headers, query) -> the route that serves


@dataclass(frozen=True, slots=True)
class Route:
    """What serves one method on one path."""

    endpoint: Endpoint
    errors: Surface  # the envelope of its refusals and failures
    kind: str = OPERATOR  # a protocol's Kind, or OPERATOR
    auth: bool = False  # the caller is authenticated first (before a body is read)
    body: bool = False  # a request body is read (capped, timed) for the endpoint
    pick: Picker | None = None  # a path several protocols declare: the route for this request

    @property
    def hears_refusals(self) -> bool:
        """A chat endpoint answers (and records) a refusal made before its body was read itself."""
        return self.kind == CHAT


@dataclass(frozen=True, slots=True)
class Served:
    """An operator route: not a protocol's, answered in the fallback envelope."""

    method: str
    path: str  # an exact path, or one last ``{name}`` segment
    endpoint: Endpoint
    auth: bool = False


class Kinds(Interface):
    """The endpoint of each kind of client route, for a surface (raises TypeError for one it cannot serve)."""

    def chat(self, surface: Surface) -> Endpoint: ...

    def count(self, surface: Surface) -> Endpoint: ...

    def models(self, surface: Surface) -> Endpoint: ...

    def stored(self, surface: Surface, method: str) -> Endpoint: ...


Methods = Mapping[str, Route]  # by HTTP method


@dataclass(slots=True)
class Table:
    """Routes by path: exact, ``{prefix}{model}:{method}``, ``{prefix}{name}``; and error envelopes."""

    fallback: Surface  # the envelope of paths no protocol claims
    exact: dict[str, dict[str, Route]] = field(default_factory=dict)
    colon: dict[str, dict[str, dict[str, Route]]] = field(default_factory=dict)  # prefix -> name -> methods
    segment: dict[str, dict[str, Route]] = field(default_factory=dict)  # prefix -> methods
    segment_names: dict[str, str] = field(default_factory=dict)  # prefix -> the parameter's name
    prefixes: list[tuple[str, Surface]] = field(default_factory=list)  # declared prefixes
    shapes: list[tuple[str, Surface]] = field(default_factory=list)  # prefixes of {prefix}{model}:{method}
    headers: list[tuple[tuple[str, ...], Surface]] = field(default_factory=list)  # client headers

    def resolve(self, path: str) -> tuple[Methods | None, dict[str, str], str]:
        """(the routes of ``path`` by method, its path parameters, the method name a colon path carries)."""
        found = self.exact.get(path)
        if found is not None:
            return found, {}, ""
        if ":" in path:
            for prefix, names in self.colon.items():
                if path.startswith(prefix):
                    model, _, name = path[len(prefix):].rpartition(":")
                    methods = names.get(name) if model else None
                    if methods is not None:
                        return methods, {"model": model}, name
        for prefix, methods in self.segment.items():
            if path.startswith(prefix):
                rest = path[len(prefix):]
                if rest and "/" not in rest:
                    return methods, {self.segment_names[prefix]: rest}, ""
        return None, {}, ""

    def envelope(self, path: str, headers: Mapping[str, str] | None = None) -> Surface:
        """Whose error envelope ``path`` gets outside its routes (a 404, a 405): the protocol whose
        declared prefix it starts with, or whose ``{prefix}{model}:{method}`` shape it has, or (given
        the request's ``headers``) whose client sent it; else the fallback's."""
        for prefix, surface in self.prefixes:
            if path.startswith(prefix):
                return surface
        if ":" in path:
            for prefix, surface in self.shapes:
                if path.startswith(prefix):
                    return surface
        if headers is not None:
            for names, surface in self.headers:
                if any(name in headers for name in names):
                    return surface
        return self.fallback

    def add(self, method: str, path: str, route: Route) -> None:
        """Serve ``method`` on ``path`` (a GET also answers HEAD)."""
        methods = self._methods(path)
        for each in (method, "HEAD") if method == "GET" else (method,):
            if each in methods:
                raise ValueError(f"two routes for {each} {path}")
            methods[each] = route

    def _methods(self, path: str) -> dict[str, Route]:
        if "{model}:" in path:
            prefix, _, name = path.partition("{model}:")
            return self.colon.setdefault(prefix, {}).setdefault(name, {})
        if path.endswith("}"):
            prefix, _, name = path[:-1].rpartition("{")
            self.segment_names[prefix] = name
            return self.segment.setdefault(prefix, {})
        return self.exact.setdefault(path, {})


def route_table(protocols: Iterable[Protocol], needs: SurfaceNeeds, kinds: Kinds, operator: Iterable[Served]) -> Table:
    """The table of every protocol's declared routes (each with an endpoint of its kind) and ``operator``."""
    entries = [side for p in protocols if (side := p.serves(needs)) is not None]
    fallbacks = [surface for client, surface in entries if client.fallback]
    if len(fallbacks) != 1:
        raise ValueError("exactly one protocol's errors are the fallback (ClientSide.fallback)")
    table = Table(fallbacks[0])
    claimed: dict[tuple[str, str], list[tuple[ClientSide, Route]]] = {}
    for client, surface in entries:
        table.prefixes.extend((prefix, surface) for prefix in client.prefixes)
        if client.client_headers:
            table.headers.append((client.client_headers, surface))
        for declared in client.routes:
            if "{model}:" in declared.path:
                shape = (declared.path.partition("{model}:")[0], surface)
                if shape not in table.shapes:
                    table.shapes.append(shape)
            route = Route(_endpoint(kinds, declared.kind, declared.method, surface), surface, declared.kind, auth=True,
                          body=declared.method == "POST")
            claimed.setdefault((declared.method, declared.path), []).append((client, route))
    for (method, path), candidates in claimed.items():
        table.add(method, path, _candidates(candidates))
    for served in operator:
        table.add(served.method, served.path, Route(served.endpoint, table.fallback, auth=served.auth))
    return table


def _candidates(candidates: list[tuple[ClientSide, Route]]) -> Route:
    """One route, or (a path several protocols declare) one that picks by whose client is calling:
    the first that ``claims`` the request, else the one that marks no clients of its own."""
    if len(candidates) == 1:
        return candidates[0][1]
    marked = [(client, route) for client, route in candidates if client.client_headers or client.client_query]
    unmarked = [route for client, route in candidates if not (client.client_headers or client.client_query)]
    if len(unmarked) != 1:
        raise ValueError("a shared route needs exactly one protocol that marks no clients of its own")
    default = unmarked[0]

    def pick(headers: Mapping[str, str], query: Mapping[str, str]) -> Route:
        for client, route in marked:
            if client.claims(headers, query):
                return route
        return default

    return Route(default.endpoint, default.errors, default.kind, default.auth, default.body, pick)


def _endpoint(kinds: Kinds, kind: Kind, method: str, surface: Surface) -> Endpoint:
    if kind == CHAT:
        return kinds.chat(surface)
    if kind == COUNT:
        return kinds.count(surface)
    if kind == MODELS:
        return kinds.models(surface)
    if kind == STORED:
        return kinds.stored(surface, method)
    raise ValueError(f"unknown route kind {kind!r}")
