"""HTTP routes, and the one place where errors become HTTP responses."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from lip.access.clients import Authenticator, Client, presented_key
from lip.access.quota import ClientLimits
from lip.access.redact import KeyRedactor
from lip.commands.processor import Commands, local_reply
from lip.commands.sessions import session_id
from lip.core.errors import Forbidden, InvalidRequest, NotFound, ProxyError, wait_seconds
from lip.core.model import ChatRequest, Collector, StreamEvent
from lip.core.serial import messages_to_json
from lip.dashboard import routes as dashboard_routes
from lip.edge.door import Caller, ChatEndpoint, Reply
from lip.edge.index import index_endpoint
from lip.edge.streaming import coalesce
from lip.observability import attempts
from lip.observability.metrics import Metrics
from lip.observability.trace import Report, Trace, finish, observe
from lip.protocols import portable
from lip.protocols.anthropic.surface import AnthropicMessages
from lip.protocols.base import ChoosesMediaType, CountsTokens, Incoming, ListsModels, ModelInfo, Surface
from lip.protocols.gemini.surface import GeminiGenerate
from lip.protocols.openai_chat.surface import OpenAIChat
from lip.protocols.openai_responses.surface import OpenAIResponses
from lip.routing import selector
from lip.routing.router import Router
from lip.usage.recorder import UsageRecorder
from lip.usage.records import parse_query

log = logging.getLogger("lip.edge.endpoints")

Endpoint = Callable[[Request], Awaitable[Response]]


class CountsTokensSurface(Surface, CountsTokens, Protocol):
    pass


class ModelListingSurface(ListsModels, Protocol):
    pass

JSON = "application/json"
DROPPED_HEADER = "x-lip-dropped"
OPENAI = OpenAIChat()
ANTHROPIC = AnthropicMessages()
GEMINI = GeminiGenerate()


GEMINI_VERSIONS = ("/v1beta", "/v1alpha", "/v1", "")  # the API versions Gemini clients put in front of /models
GOOGLE_HEADERS = ("x-goog-api-key", "x-goog-api-client")


def is_google_client(headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    """A Gemini client: its key in ``x-goog-api-key`` or ``?key=``, or the Google SDKs' ``x-goog-api-client``.

    Tells Gemini's ``GET /v1/models`` and ``GET /models`` from OpenAI's, which share the path.
    """
    return any(name in headers for name in GOOGLE_HEADERS) or "key" in query


def surface_of(path: str, headers: Mapping[str, str] | None = None) -> Surface:
    """Whose error envelope a path outside the routes gets: the protocol its prefix belongs to
    (``/v1beta/``, ``/v1alpha/`` and ``…/models/{model}:{method}`` are Gemini's, as is any path a
    Google client calls; see ``is_google_client``)."""
    if path.startswith(("/v1/messages", "/anthropic/")):
        return ANTHROPIC
    if path.startswith(("/v1beta/", "/v1alpha/")):
        return GEMINI
    if path.startswith(("/v1/models/", "/models/")) and ":" in path:
        return GEMINI
    if headers is not None and any(name in headers for name in GOOGLE_HEADERS):
        return GEMINI
    return OPENAI


@dataclass(frozen=True, slots=True)
class Services:
    """What the endpoints use, built by the app."""

    router: Router
    commands: Commands
    auth: Authenticator
    client_limits: ClientLimits
    report: Report
    metrics: Metrics
    recorder: UsageRecorder | None
    redactor: KeyRedactor
    metrics_access: str = "admin"  # proxy.yaml metrics.access
    scrape: Callable[[], Awaitable[None]] | None = None  # brings gauges up to date before /metrics renders
    traced: bool = False  # OpenTelemetry on: each request notes its upstream attempts
    capture_content: bool = False  # ... and its messages


class Handlers:
    """The endpoints of the proxy, bound to one app's services."""

    def __init__(self, services: Services) -> None:
        self.s = services
        self.router = services.router

    def chat(self, surface: Surface) -> ChatEndpoint:
        """A chat endpoint speaking ``surface``'s protocol, errors included."""

        parse_async = getattr(surface, "parse_async", None)  # a surface that reads a shared store first
        settle = getattr(surface, "settle", None)  # ... and writes to it before the client hears back

        async def endpoint(incoming: Incoming, caller: Caller) -> Reply:
            trace = Trace(caller.request_id, surface.name, time.perf_counter(), time.time())
            if self.s.traced:
                trace.attempts = []
                attempts.CURRENT.set(trace.attempts)
            try:
                if caller.refused is not None:
                    raise caller.refused  # before the body was read: no key, or a body too large
                client = caller.client if caller.admitted else self.admit(incoming.headers, incoming.query,
                                                                         caller.address)
                if client is not None:
                    trace.client, trace.tier = client.name, client.tier
                    incoming.client = client.name  # what it stores is its own (Responses)
                parsed = await parse_async(incoming) if parse_async is not None else surface.parse(incoming)
                chat = self.s.redactor.request(parsed, incoming.body)  # before it is kept or sent
                if self.s.capture_content:
                    trace.content = messages_to_json(chat.messages)
                selector.check(chat.model)
                trace.selector, trace.stream = chat.model, chat.stream
                events, headers = await self._exchange(chat, incoming, client, trace)
                events = observe(events, trace, self.s.report)
                if chat.stream:
                    media_type = (surface.stream_media_type_for(incoming) if isinstance(surface, ChoosesMediaType)
                                  else surface.stream_media_type)
                    headers["Cache-Control"] = "no-cache"
                    return Reply(200, media_type=media_type, headers=headers,
                                 stream=coalesce(surface.render_stream(events, chat, incoming)))
                collector = Collector()
                async for event in events:
                    collector.add(event)
                body = surface.render_response(collector.result(), chat, incoming)
                if settle is not None:
                    await settle()
                if trace.upstream_started is not None and trace.first_token is not None:
                    headers["x-lip-overhead-ms"] = _overhead(trace, trace.upstream_started)
                return Reply(200, body, headers=headers)
            except ProxyError as error:
                trace.fail(error)
                if error.origin is not None:
                    trace.backend, trace.model, trace.upstream_model = error.origin
                finish(trace, self.s.report)
                return error_reply(error, surface)
            except Exception as exc:  # a bug of ours: a 500 in the client's protocol, never a traceback
                log.error("unexpected error in request %s", caller.request_id, exc_info=exc)
                internal = ProxyError(f"Internal proxy error (request id {caller.request_id}).", status=500)
                trace.fail(internal)
                finish(trace, self.s.report)
                return error_reply(internal, surface)
            finally:
                caller.client_name = trace.client
                caller.route = f"{trace.backend}:{trace.model}" if trace.backend else None

        return endpoint

    def admit(self, headers: Mapping[str, str], query: Mapping[str, str], address: str) -> Client | None:
        """The client presenting the key of ``headers`` / ``query`` (None: no client keys); 401 or 429."""
        return self.s.auth.authenticate(presented_key(headers, query), address)

    def _authenticate(self, incoming: Incoming, request: Request) -> Client | None:
        address = request.client.host if request.client else "-"
        client = self.s.auth.authenticate(presented_key(incoming.headers, incoming.query), address)
        if client is not None:
            request.scope["state"]["client"] = client.name  # for the access log
        return client

    async def _exchange(
        self, chat: ChatRequest, incoming: Incoming, client: Client | None, trace: Trace
    ) -> tuple[AsyncIterator[StreamEvent], dict[str, str]]:
        """Commands answered locally, or the upstream call through the router."""
        session = session_id(incoming.headers, chat, client.name if client is not None else None, incoming.query)
        outcome = await self.s.commands.process(chat, session, client)
        if outcome.reply is not None:
            trace.backend, trace.model = "lip", "commands"
            return local_reply(outcome.reply, chat), {"x-lip-backend": "lip", "x-lip-model": "commands"}
        forward = outcome.request
        grant = await self.s.client_limits.admit(client, forward)
        try:
            call = await self.router.open(forward, outcome.overrides, client)
        except ProxyError:
            await self.s.client_limits.refund(grant)
            raise
        route = call.route
        trace.backend, trace.model, trace.upstream_model = route.runtime.name, route.model, route.upstream_model
        trace.upstream_started, trace.input_estimate = call.upstream_started, call.input_tokens
        trace.handovers = call.handovers
        headers = {"x-lip-backend": route.runtime.name, "x-lip-model": route.model,
                   **(grant.headers if grant and not call.headers else {}), **call.headers}
        dropped = portable.dropped(forward, route.runtime.backend.protocol, route.upstream_model)
        if dropped:  # features of the client's protocol this upstream has no equivalent of
            headers[DROPPED_HEADER] = trace.dropped = ", ".join(dropped)
        if chat.stream:
            headers["x-lip-overhead-ms"] = _overhead(trace, call.upstream_started)
        key, limits, commands = outcome.session_key, self.s.client_limits, self.s.commands
        if key is not None:
            trace.hooks.append(lambda t: commands.tally(key, t.usage))
        if grant is not None:
            trace.hooks.append(lambda t: limits.reconcile(grant, t.usage))
        return call.events, headers

    def count_tokens(self, surface: CountsTokensSurface, method: str = "") -> Endpoint:
        async def endpoint(request: Request) -> Response:
            incoming = await _incoming(request, method)
            try:
                client = self._authenticate(incoming, request)
                chat = self.s.redactor.request(surface.parse(incoming), incoming.body)
                tokens = await self.router.count_tokens(chat, client)
                return Response(surface.render_count(tokens, chat), media_type=JSON)
            except ProxyError as error:
                return error_response(error, surface)

        return endpoint

    def model_list(self, surface: ModelListingSurface) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            try:
                client = self._authenticate(await _incoming(request), request)
            except ProxyError as error:
                return error_response(error, surface)  # type: ignore[arg-type]
            models = [
                ModelInfo(
                    id=route.label,
                    backend=route.runtime.name,
                    context_window=route.config.limits.context_window if route.config else None,
                    max_input_tokens=route.config.limits.max_input_tokens if route.config else None,
                    max_output_tokens=route.config.limits.max_output_tokens if route.config else None,
                    limits=route.config.limits.model_dump(exclude_none=True) if route.config else {},
                )
                for route in self.router.routable()
                if client is None or client.allows(route.label)
            ]
            return Response(surface.render_models(models), media_type=JSON)

        return endpoint

    def stored_response(self, responses: OpenAIResponses) -> Endpoint:
        """``GET`` / ``DELETE /v1/responses/{response_id}``: a stored response, or forgetting it."""

        async def endpoint(request: Request) -> Response:
            try:
                incoming = await _incoming(request)
                client = self._authenticate(incoming, request)
                response_id = request.path_params["response_id"]
                key = responses.key(client.name if client is not None else None, response_id)  # 404 for others
                if incoming.query.get("stream", "").lower() in ("true", "1"):
                    raise InvalidRequest("Streaming a stored response is not supported by this proxy.",
                                         param="stream", code="unsupported_value")
                missing = NotFound(f"Response with id '{response_id}' not found.", param="response_id",
                                   code="response_not_found")
                if request.method == "DELETE":
                    if not await responses.store.forget(key):
                        raise missing
                    return Response(responses.render_deleted(response_id), media_type=JSON)
                found = await responses.store.fetch_response(key)
                if found is None:
                    raise missing
                return Response(found, media_type=JSON)
            except ProxyError as error:
                return error_response(error, responses)

        return endpoint

    async def models(self, request: Request) -> Response:
        """OpenAI's ``GET /v1/models``."""
        return await self.model_list(OPENAI)(request)

    async def usage(self, request: Request) -> Response:
        """``GET /v1/usage``: a client sees its own records, an admin client everyone's."""
        try:
            client = self._authenticate(await _incoming(request), request)
            recorder = self.s.recorder
            if recorder is None:
                raise NotFound("Usage recording is off (usage.store: none).", code="usage_disabled")
            query = parse_query(dict(request.query_params))
            if client is not None and not client.admin:
                query = dataclasses.replace(query, client=client.name)
            with contextlib.suppress(ProxyError):
                await recorder.flush()  # the caller's latest requests are in
            result = await recorder.store.query(query)
        except ProxyError as error:
            return error_response(error)
        return Response(orjson.dumps(result), media_type=JSON)

    async def metrics(self, request: Request) -> Response:
        """``GET /metrics``: with clients configured, for admin clients (or as ``metrics.access`` says)."""
        access = self.s.metrics_access
        if self.s.auth.enabled and access != "public":
            try:
                client = self._authenticate(await _incoming(request), request)
                if access == "admin" and client is not None and not client.admin:
                    raise Forbidden(f"Client '{client.name}' may not read /metrics: it is for admin clients "
                                    "(proxy.yaml metrics.access).", code="metrics_forbidden")
            except ProxyError as error:
                return error_response(error)
        self.s.metrics.circuits(self.router.breakers.snapshot())
        if self.s.scrape is not None:
            await self.s.scrape()
        return Response(self.s.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def health(self, request: Request) -> Response:
        runtimes = self.router.runtimes.values()
        body = {
            "status": "ok",
            "default": str(self.router.default),
            "backends": {
                "ready": sorted(rt.name for rt in runtimes if rt.unavailable is None),
                "unavailable": {rt.name: rt.unavailable for rt in runtimes if rt.unavailable is not None},
            },
        }
        return Response(orjson.dumps(body), media_type=JSON)


async def _incoming(request: Request, method: str = "") -> Incoming:
    return Incoming(
        body=await request.body(),
        path={k: str(v) for k, v in request.path_params.items()},
        query=dict(request.query_params) if request.scope["query_string"] else {},
        headers={k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]},  # lower-case
        method=method,
    )


def _overhead(trace: Trace, upstream_started: float) -> str:
    """The proxy's own time before the upstream call (and, when known, after its last byte)."""
    before = upstream_started - trace.started
    return f"{max(0.0, before) * 1000:.3f}"


def error_reply(error: ProxyError, surface: Surface | None = None) -> Reply:
    """``error`` in ``surface``'s protocol (OpenAI's when there is none), with its status and headers."""
    status, body = (surface or OPENAI).render_error(error)
    headers = dict(error.headers)
    wait = wait_seconds(error.retry_after)
    if wait is not None:
        headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return Reply(status, body, headers=headers)


def error_response(error: ProxyError, surface: Surface | None = None) -> Response:
    return _response(error_reply(error, surface))


def _response(reply: Reply) -> Response:
    """A whole-body reply as a Starlette response (for the routes Starlette serves)."""
    return Response(reply.body, status_code=reply.status, media_type=reply.media_type, headers=dict(reply.headers))


def method_not_allowed(method: str, path: str) -> Reply:
    error = InvalidRequest(f"Method {method} is not allowed for {path}.", status=405, code="method_not_allowed")
    return error_reply(error, surface_of(path))


def request_failed(error: ProxyError, path: str) -> Reply:
    """An error found before a route ran (a body that did not arrive in time), in the path's envelope."""
    return error_reply(error, surface_of(path))


async def proxy_error(request: Request, exc: Exception) -> Response:
    """A ProxyError that escaped a Starlette route (reading its body timed out): in the path's envelope."""
    assert isinstance(exc, ProxyError)
    return _response(request_failed(exc, request.url.path))


def chat_routes(handlers: Handlers, responses: OpenAIResponses) -> dict[str, ChatEndpoint]:
    """``POST`` paths of the chat endpoints (served by the front door, not Starlette)."""
    chat = handlers.chat(OPENAI)
    messages = handlers.chat(ANTHROPIC)
    return {
        "/v1/chat/completions": chat,
        "/chat/completions": chat,
        "/v1/responses": handlers.chat(responses),
        "/v1/messages": messages,
        "/anthropic/v1/messages": messages,
    }


def gemini_routes(handlers: Handlers) -> dict[str, ChatEndpoint]:
    """``POST /v1beta/models/{model}:{method}`` chat endpoints by method."""
    generate = handlers.chat(GEMINI)
    return {"generateContent": generate, "streamGenerateContent": generate}


def gemini_or_openai_models(handlers: Handlers) -> Endpoint:
    """``GET /v1/models`` and ``GET /models``: Gemini's list for a Google client, else OpenAI's."""
    gemini = handlers.model_list(GEMINI)

    async def endpoint(request: Request) -> Response:
        if is_google_client(_header_names(request), request.query_params):
            return await gemini(request)
        return await handlers.models(request)

    return endpoint


def gemini_routes_elsewhere(handlers: Handlers) -> list[BaseRoute]:
    """Model lists and countTokens of the Gemini API at each version prefix."""
    count = handlers.count_tokens(GEMINI, "countTokens")
    listing = handlers.model_list(GEMINI)
    shared = gemini_or_openai_models(handlers)
    out: list[BaseRoute] = []
    for version in GEMINI_VERSIONS:
        out.append(Route(f"{version}/models/{{model:path}}:countTokens", count, methods=["POST"]))
        out.append(Route(f"{version}/models", listing if version in ("/v1beta", "/v1alpha") else shared,
                         methods=["GET"]))
    return out


def routes(handlers: Handlers, responses: OpenAIResponses) -> list[BaseRoute]:
    """Everything but the chat endpoints."""
    count = handlers.count_tokens(ANTHROPIC)
    return [
        Route("/v1/responses/{response_id}", handlers.stored_response(responses), methods=["GET", "DELETE"]),
        Route("/v1/messages/count_tokens", count, methods=["POST"]),
        Route("/anthropic/v1/messages/count_tokens", count, methods=["POST"]),
        *gemini_routes_elsewhere(handlers),
        Route("/", index_endpoint(), methods=["GET"]),  # and HEAD: Claude Code sends HEAD / first
        Route("/health", handlers.health, methods=["GET"]),
        Route("/metrics", handlers.metrics, methods=["GET"]),
        Route("/v1/usage", handlers.usage, methods=["GET"]),
        *dashboard_routes(),
    ]


async def not_found(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        return _response(method_not_allowed(request.method, request.url.path))
    return error_response(NotFound(f"Unknown request URL: {request.method} {request.url.path}.",
                                   code="unknown_url"), surface_of(request.url.path, _header_names(request)))


async def internal_error(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("state", {}).get("request_id", "?")
    log.error("unexpected error in request %s", request_id, exc_info=exc)
    return error_response(ProxyError(f"Internal proxy error (request id {request_id}).", status=500),
                          surface_of(request.url.path, _header_names(request)))


def _header_names(request: Request) -> dict[str, str]:
    return {k.decode("latin-1"): "" for k, _ in request.scope["headers"]}
