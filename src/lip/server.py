"""HTTP routes, and the one place where errors become HTTP responses."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lip.core.errors import NotFound, ProxyError
from lip.core.model import Collector
from lip.frontends import openai_chat
from lip.routing.router import Router

log = logging.getLogger("lip.server")

Endpoint = Callable[[Request], Awaitable[Response]]
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
JSON = "application/json"


class Handlers:
    """The endpoints of the proxy, bound to one app's router."""

    def __init__(self, router: Router) -> None:
        self.router = router

    async def chat_completions(self, request: Request) -> Response:
        chat = openai_chat.parse_request(await request.body())
        call = await self.router.open(chat)
        route, events = call.route, call.events
        headers = {"x-lip-backend": route.runtime.name, "x-lip-model": route.model, **call.headers}
        if chat.stream:
            return StreamingResponse(
                openai_chat.render_stream(events, chat),
                media_type="text/event-stream",
                headers={**headers, "Cache-Control": "no-cache"},
            )
        collector = Collector()
        async for event in events:
            collector.add(event)
        return Response(openai_chat.render_response(collector.result()), media_type=JSON, headers=headers)

    async def models(self, request: Request) -> Response:
        data = []
        for route in self.router.routable():
            entry: dict[str, Any] = {"id": route.label, "object": "model", "created": 0,
                                     "owned_by": route.runtime.name}
            if route.config is not None:
                limits = route.config.limits.model_dump(exclude_none=True)
                if limits:
                    entry["limits"] = limits
            data.append(entry)
        return Response(orjson.dumps({"object": "list", "data": data}), media_type=JSON)

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


def openai_errors(endpoint: Endpoint) -> Endpoint:
    """Render ProxyErrors (and unexpected failures) in OpenAI's error envelope."""

    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ProxyError as error:
            return error_response(error)

    return wrapped


def error_response(error: ProxyError) -> Response:
    status, body = openai_chat.render_error(error)
    headers = dict(error.headers)
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def routes(handlers: Handlers) -> list[Route]:
    return [
        Route("/v1/chat/completions", openai_errors(handlers.chat_completions), methods=["POST"]),
        Route("/chat/completions", openai_errors(handlers.chat_completions), methods=["POST"]),
        Route("/v1/models", openai_errors(handlers.models), methods=["GET"]),
        Route("/health", handlers.health, methods=["GET"]),
    ]


async def not_found(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        error = ProxyError(f"Method {request.method} is not allowed for {request.url.path}.", status=405,
                           code="method_not_allowed")
        error.error_type = "invalid_request_error"
        return error_response(error)
    return error_response(NotFound(f"Unknown request URL: {request.method} {request.url.path}.",
                                   code="unknown_url"))


async def internal_error(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("state", {}).get("request_id", "?")
    log.error("unexpected error in request %s", request_id, exc_info=exc)
    return error_response(ProxyError(f"Internal proxy error (request id {request_id}).", status=500))


class RequestIdMiddleware:
    """Gives every request an id (the client's ``x-request-id`` if it is sane) and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if SAFE_REQUEST_ID.match(candidate):
                    request_id = candidate
                break
        if not request_id:
            request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
