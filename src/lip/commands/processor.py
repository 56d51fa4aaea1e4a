"""In-chat commands: run the newest message's commands, clean the history, apply the session.

Clients resend the whole conversation every turn, so command text is stripped from every user
message, and a user message that was only commands is dropped together with the proxy's reply
that followed it; only the newest message's commands run. A newest message that was only
commands is answered by the proxy itself; one with other text runs its commands and sends the rest.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lip.commands.parse import Command, CommandSyntax
from lip.core.errors import ProxyError
from lip.core.model import (
    ChatRequest,
    Finish,
    Message,
    ResponseStart,
    StreamEvent,
    TextDelta,
    Usage,
    UsageReport,
)
from lip.routing import selector
from lip.routing.router import Router
from lip.state.sessions import Session, SessionStore

HELP = """Commands of the LLM Interactive Proxy (they are never sent to the model):
  !/help                         this list
  !/set(model=backend:model)     use this model for the rest of the session
  !/set(backend=name)            use this backend's default model
  !/set(temperature=0.3)         set a parameter (also top_p, top_k, max_tokens, seed, reasoning_effort, ...)
  !/unset(model) / !/unset(temperature) / !/unset(all)
  !/oneoff(backend:model)        use this model for the next request only
  !/backends                     the backends and whether they are ready
  !/models                       every routable backend:model
  !/limits                       the current model's limits and circuit state
  !/usage                        this session's requests and tokens"""


NOT_KEPT = ("The setting could not be kept: the session store is unreachable. Nothing was changed for "
            "this session; try again shortly.")


class Viewer(Protocol):
    """A client as far as listings care: which backend:model labels its tier allows."""

    def allows(self, label: str) -> bool: ...


class CommandError(Exception):
    """A command that cannot run; its message is the proxy's reply."""


@dataclass(slots=True)
class Outcome:
    request: ChatRequest  # what to forward (history cleaned, session model applied)
    reply: str | None = None  # set: answer locally with this text, forward nothing
    overrides: dict[str, Any] = field(default_factory=dict)
    session: Session | None = None
    session_key: str | None = None


class Commands:
    def __init__(self, router: Router, store: SessionStore, syntax: CommandSyntax, *, enabled: bool = True) -> None:
        self._router = router
        self._store = store
        self._syntax = syntax
        self.enabled = enabled
        self._handlers: dict[str, Callable[[Command, Session, ChatRequest], str]] = {
            "help": lambda c, s, r: HELP,
            "set": self._set,
            "unset": self._unset,
            "oneoff": self._oneoff,
            "limits": self._limits,
            "usage": lambda c, s, r: _usage(s),
        }

    async def process(self, request: ChatRequest, session_key: str, viewer: Viewer | None = None) -> Outcome:
        """``viewer``: the client whose tier limits what !/models and !/backends list (None: no tiers)."""
        if not self.enabled:
            return Outcome(request)
        messages, newest = self._clean(request.messages)
        session = await self._store.load(session_key, fresh=bool(newest))
        before = _settings(session)
        if newest:
            try:
                outputs = [self._run(command, session, request, viewer) for command in newest]
            except CommandError as error:
                return Outcome(request, reply=str(error), session=session)
            if _settings(session) != before and not await self._store.save(session_key, session):
                return Outcome(request, reply=NOT_KEPT, session=session)
            newest_user = newest_user_index(messages)
            if newest_user < 0 or _empty(messages[newest_user]):
                return Outcome(request, reply="\n\n".join(outputs), session=session)
        model = request.model
        if session.oneoff is not None:
            model, session.oneoff = session.oneoff, None
            await self._store.save(session_key, session)
        elif session.model is not None:
            model = session.model
        kept = tuple(m for m in messages if not _empty(m) or m.role != "user")
        cleaned = request if kept == request.messages and model == request.model else request.evolve(
            messages=kept, model=model)
        return Outcome(cleaned, overrides=dict(session.parameters), session=session, session_key=session_key)

    async def close(self) -> None:
        await self._store.close()

    def tally(self, session_key: str, usage: Usage | None) -> None:
        """Count a forwarded request in its session (for !/usage)."""
        self._store.tally(session_key, usage)

    def _clean(self, messages: tuple[Message, ...]) -> tuple[list[Message], list[Command]]:
        """History without command text or command-only turns; and the newest message's commands."""
        out: list[Message] = []
        newest: list[Command] = []
        last_user = newest_user_index(messages)  # only the user's newest message runs its commands
        skip_reply = False
        for index, message in enumerate(messages):
            if skip_reply and message.role == "assistant":
                skip_reply = False
                continue  # the proxy's own answer to a command-only turn
            skip_reply = False
            if message.role != "user":
                out.append(message)
                continue
            commands = self._syntax.find(message.text())
            if not commands:
                out.append(message)
                continue
            stripped = self._syntax.strip_message(message)
            if index == last_user:
                newest = commands
                out.append(stripped)
            elif _empty(stripped):
                skip_reply = True
            else:
                out.append(stripped)
        return out, newest

    def _run(self, command: Command, session: Session, request: ChatRequest, viewer: Viewer | None) -> str:
        if command.name == "models":
            return self._models(viewer)
        if command.name == "backends":
            return self._backends(viewer)
        handler = self._handlers.get(command.name)
        if handler is None:
            raise CommandError(f"Unknown command {command.text}. Nothing was sent to the model.\n\n{HELP}")
        return handler(command, session, request)

    # ---- the commands ---------------------------------------------------------------------------

    def _set(self, command: Command, session: Session, request: ChatRequest) -> str:
        if not command.named:
            raise CommandError(f"{command.text}: expected name=value, e.g. !/set(model=backend:model)")
        done = []
        for key, value in command.named.items():
            if key == "model":
                self._check_model(value, command)
                session.model = value
                done.append(f"model = {value}")
            elif key == "backend":
                if value not in self._router.runtimes:
                    raise CommandError(f"{command.text}: unknown backend '{value}'. "
                                       f"Backends: {', '.join(sorted(self._router.runtimes))}")
                self._check_model(f"{value}:", command)
                session.model = f"{value}:"
                done.append(f"backend = {value} (its default model)")
            else:
                try:
                    session.parameters.update(selector.uri_parameters(f"{key}={value}", command.text))
                except ProxyError as error:
                    raise CommandError(f"{command.text}: {error.message}") from None
                done.append(f"{key} = {session.parameters[key]}")
        return "Set for this session: " + ", ".join(done) + "."

    def _unset(self, command: Command, session: Session, request: ChatRequest) -> str:
        names = list(command.positional) + list(command.named)
        if not names:
            raise CommandError(f"{command.text}: name what to unset, e.g. !/unset(model) or !/unset(all)")
        for name in names:
            if name == "all":
                session.model, session.oneoff = None, None
                session.parameters.clear()
            elif name in ("model", "backend"):
                session.model = None
            elif name == "oneoff":
                session.oneoff = None
            elif name in session.parameters:
                del session.parameters[name]
            else:
                raise CommandError(f"{command.text}: '{name}' is not set. Set now: {_settings(session)}")
        return f"Unset {', '.join(names)}. Now: {_settings(session)}."

    def _oneoff(self, command: Command, session: Session, request: ChatRequest) -> str:
        target = command.positional[0] if command.positional else command.named.get("model")
        if not target:
            raise CommandError(f"{command.text}: name a model, e.g. !/oneoff(backend:model)")
        self._check_model(target, command)
        session.oneoff = target
        return f"The next request goes to {target}."

    def _check_model(self, text: str, command: Command) -> None:
        try:
            for group in self._router.plan(text)[1].groups:
                for branch in group:
                    self._router.resolve(branch.text)
        except ProxyError as error:
            raise CommandError(f"{command.text}: {error.message}") from None

    def _backends(self, viewer: Viewer | None) -> str:
        lines = ["Backends:"]
        allowed = {route.runtime.name for route in self._router.routable()
                   if viewer is None or viewer.allows(route.label)}
        for runtime in sorted(self._router.runtimes.values(), key=lambda r: r.name):
            if viewer is not None and runtime.name not in allowed and not viewer.allows(runtime.name + ":*"):
                continue
            state = "ready" if runtime.unavailable is None else f"unavailable ({runtime.unavailable})"
            lines.append(f"  {runtime.name} [{runtime.backend.protocol}] {state}")
        return "\n".join(lines)

    def _models(self, viewer: Viewer | None) -> str:
        routes = [r for r in self._router.routable() if viewer is None or viewer.allows(r.label)]
        return "Routable models:\n" + "\n".join(f"  {route.label}" for route in routes)

    def _limits(self, command: Command, session: Session, request: ChatRequest) -> str:
        text = session.oneoff or session.model or request.model
        try:
            route = self._router.first_route(text)
        except ProxyError as error:
            return f"Current model '{text}': {error.message}"
        limits = route.config.limits.model_dump(exclude_none=True) if route.config else {}
        shown = ", ".join(f"{k} {v}" for k, v in limits.items()) or "none configured"
        circuit = self._router.breakers.state(route.label)
        state = f"; circuit {circuit}" if circuit is not None else ""
        return f"Limits of {route.label}: {shown}{state}."


def _empty(message: Message) -> bool:
    return not message.text().strip() and not message.tool_calls and not (
        isinstance(message.content, tuple) and message.content
    )


def _settings(session: Session) -> str:
    items = [f"model = {session.model}"] if session.model else []
    items += [f"{k} = {v}" for k, v in session.parameters.items()]
    if session.oneoff:
        items.append(f"next request: {session.oneoff}")
    return ", ".join(items) or "nothing"


def _usage(session: Session) -> str:
    return (f"This session: {session.requests} requests, {session.input_tokens} input tokens, "
            f"{session.output_tokens} output tokens.")


async def local_reply(text: str, request: ChatRequest) -> AsyncIterator[StreamEvent]:
    """The proxy's own answer as an event stream: any surface renders it, streaming or not."""
    yield ResponseStart(id=f"lipcmd-{uuid.uuid4().hex[:24]}", model=request.model or "lip-proxy",
                        created=int(time.time()))
    yield TextDelta(text)
    yield Finish("stop")
    yield UsageReport(Usage())


def newest_user_index(messages: Sequence[Message]) -> int:
    """The index of the user's newest message: the last message, or the last user message followed only
    by system messages (Claude Code 2.x puts context in a system message after the user's turn); -1
    when the conversation does not end with the user."""
    index = len(messages) - 1
    while index >= 0 and messages[index].role in ("system", "developer"):
        index -= 1
    return index if index >= 0 and messages[index].role == "user" else -1
