"""The chat endpoint: a client's request in its protocol, through commands, limits and the router, and
the answer (a whole body or a stream) back in that protocol; every request traced and reported."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from lip.access.clients import Client, presented_key
from lip.commands.processor import local_reply
from lip.commands.sessions import session_id
from lip.core.errors import ProxyError
from lip.core.model import ChatRequest, Collector, StreamEvent
from lip.core.opaque import for_client
from lip.core.serial import messages_to_json
from lip.edge.errors import internal
from lip.edge.exchange import Caller, Endpoint, Reply
from lip.edge.services import Services
from lip.edge.streaming import coalesce
from lip.observability import attempts
from lip.observability.trace import Trace, finish, observe
from lip.protocols import portable
from lip.protocols.base import ChoosesMediaType, Incoming, KeepsAnswers, Surface
from lip.routing import selector

DROPPED_HEADER = "x-lip-dropped"


def chat_endpoint(services: Services, surface: Surface) -> Endpoint:
    """A chat endpoint speaking ``surface``'s protocol; an error it raises is rendered in that protocol
    by the front door, after being recorded here."""
    keeps = surface if isinstance(surface, KeepsAnswers) else None  # reads a shared store, and writes it

    async def endpoint(incoming: Incoming, caller: Caller) -> Reply:
        trace = Trace(caller.request_id, surface.name, time.perf_counter(), time.time())
        if services.traced:
            trace.attempts = []
            attempts.CURRENT.set(trace.attempts)
        try:
            if caller.refused is not None:
                raise caller.refused  # before the body was read: no key, or a body too large
            client = caller.client if caller.admitted else services.auth.authenticate(
                presented_key(incoming.headers, incoming.query), caller.address)
            if client is not None:
                trace.client, trace.tier = client.name, client.tier
                incoming.client = client.name  # what it stores is its own (Responses)
            parsed = await keeps.parse_async(incoming) if keeps is not None else surface.parse(incoming)
            chat = services.redactor.request(parsed, incoming.body)  # before it is kept or sent
            if services.capture_content:
                trace.content = messages_to_json(chat.messages)
            selector.check(chat.model)
            trace.selector, trace.stream = chat.model, chat.stream
            events, headers = await _exchange(services, chat, incoming, client, trace)
            events = observe(events, trace, services.report)
            events = for_client(events, surface.name)  # other protocols' state, where this client can carry it
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
            if keeps is not None:
                await keeps.settle()
            if trace.upstream_started is not None and trace.first_token is not None:
                headers["x-lip-overhead-ms"] = _overhead(trace, trace.upstream_started)
            return Reply(200, body, headers=headers)
        except ProxyError as error:
            trace.fail(error)
            if error.origin is not None:
                trace.backend, trace.model, trace.upstream_model = error.origin
            finish(trace, services.report)
            raise
        except Exception as exc:  # a bug of ours: a 500 in the client's protocol, never a traceback
            failure = internal(caller.request_id, exc)
            trace.fail(failure)
            finish(trace, services.report)
            raise failure from exc
        finally:
            caller.client_name = trace.client
            caller.route = f"{trace.backend}:{trace.model}" if trace.backend else None

    return endpoint


async def _exchange(
    services: Services, chat: ChatRequest, incoming: Incoming, client: Client | None, trace: Trace
) -> tuple[AsyncIterator[StreamEvent], dict[str, str]]:
    """Commands answered locally, or the upstream call through the router."""
    session = session_id(incoming.headers, chat, client.name if client is not None else None, incoming.query)
    outcome = await services.commands.process(chat, session, client)
    if outcome.reply is not None:
        trace.backend, trace.model = "lip", "commands"
        return local_reply(outcome.reply, chat), {"x-lip-backend": "lip", "x-lip-model": "commands"}
    forward = outcome.request
    grant = await services.client_limits.admit(client, forward)
    try:
        call = await services.router.open(forward, outcome.overrides, client)
    except ProxyError:
        await services.client_limits.refund(grant)
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
    key, limits, commands = outcome.session_key, services.client_limits, services.commands
    if key is not None:
        trace.hooks.append(lambda t: commands.tally(key, t.usage))
    if grant is not None:
        trace.hooks.append(lambda t: limits.reconcile(grant, t.usage))
    return call.events, headers


def _overhead(trace: Trace, upstream_started: float) -> str:
    """The proxy's own time before the upstream call (and, when known, after its last byte)."""
    before = upstream_started - trace.started
    return f"{max(0.0, before) * 1000:.3f}"

