"""lip.commands.processor: each in-chat command over a real Router (built from a small config) and the
memory session store; the history cleaning; disabled commands."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from lip.access.clients import Client
from lip.app import Settings, build_runtime
from lip.commands.parse import CommandSyntax
from lip.commands.processor import HELP, NOT_KEPT, Commands, Outcome, Viewer, local_reply
from lip.config.schema import TierConfig
from lip.core.model import ChatRequest, Finish, Message, ResponseStart, TextDelta, Usage, UsageReport
from lip.routing.router import Router
from lip.state.sessions import MemorySessionStore, Session
from shared_data import shared_encoding

MAIN = """\
backend_type: custom
api_base_url: http://127.0.0.1:9/v1
models:
  gpt-4o:
    limits: {context_window: 128000, max_output_tokens: 4096}
"""
OTHER = "backend_type: custom\napi_base_url: http://127.0.0.1:9/v1\nmodels:\n  gpt-4o-mini: {}\n"


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Router:
    root = tmp_path_factory.mktemp("commands-config")
    for name, text in (("main", MAIN), ("other", OTHER)):
        (root / "backends" / name).mkdir(parents=True)
        (root / "backends" / name / "backend.yaml").write_text(text)
    (root / "proxy.yaml").write_text("default_backend: main\n")
    settings = Settings(config_dir=Path(root), environ={}, usage_store="none", encodings=shared_encoding)
    return build_runtime(settings).router


class Tier:
    def __init__(self, *patterns: str) -> None:
        self._patterns = patterns

    def allows(self, label: str) -> bool:
        return any(label == p or (p.endswith("*") and label.startswith(p[:-1])) for p in self._patterns)


class Failing(MemorySessionStore):
    async def save(self, session_id: str, session: Session) -> bool:
        return False


def commands(router: Router, store: MemorySessionStore | None = None, **options: bool) -> Commands:
    return Commands(router, MemorySessionStore() if store is None else store, CommandSyntax(), **options)


def ask(cmds: Commands, *texts: str, session: str = "s1", viewer: Viewer | None = None,
        model: str = "gpt-4o") -> Outcome:
    roles = ["user" if i % 2 == 0 else "assistant" for i in range(len(texts))]
    request = ChatRequest(model=model, messages=tuple(Message(r, t) for r, t in zip(roles, texts, strict=True)))
    return asyncio.run(cmds.process(request, session, viewer))


def reply(cmds: Commands, text: str, **options: object) -> str:
    outcome = ask(cmds, text, **options)  # type: ignore[arg-type]
    assert outcome.reply is not None
    return outcome.reply


def test_help_and_an_unknown_command(router: Router) -> None:
    cmds = commands(router)
    assert reply(cmds, "!/help") == HELP
    assert "!/set(model=backend:model)" in HELP and "!/oneoff(backend:model)" in HELP
    unknown = reply(cmds, "!/frobnicate(1)")
    assert unknown == f"Unknown command !/frobnicate(1). Nothing was sent to the model.\n\n{HELP}"
    assert reply(cmds, "!/HELP") == HELP  # names are case-insensitive


def test_models_lists_every_routable_label_or_the_tiers(router: Router) -> None:
    cmds = commands(router)
    assert reply(cmds, "!/models") == "Routable models:\n  main:gpt-4o\n  mock:mock-model\n  other:gpt-4o-mini"
    assert reply(cmds, "!/models", viewer=Tier("other:*")) == "Routable models:\n  other:gpt-4o-mini"


def test_backends_lists_each_with_its_protocol_and_state(router: Router) -> None:
    lines = reply(commands(router), "!/backends").splitlines()
    assert lines[0] == "Backends:"
    assert lines[1:] == sorted(lines[1:])  # by name
    assert "  main [openai] ready" in lines and "  other [openai] ready" in lines and "  mock [mock] ready" in lines
    assert "  openai [openai] unavailable (environment variable OPENAI_API_KEY is not set or empty)" in lines
    assert reply(commands(router), "!/backends", viewer=Tier("other:*")) == "Backends:\n  other [openai] ready"
    assert reply(commands(router), "!/backends", viewer=Tier("openai:*")) == (
        "Backends:\n  openai [openai] unavailable (environment variable OPENAI_API_KEY is not set or empty)")


def test_set_model_applies_to_the_next_requests_of_the_session_only(router: Router) -> None:
    cmds = commands(router)
    assert reply(cmds, "!/set(model=other:gpt-4o-mini)") == "Set for this session: model = other:gpt-4o-mini."
    assert ask(cmds, "hello").request.model == "other:gpt-4o-mini"
    assert ask(cmds, "hello", session="s2").request.model == "gpt-4o"


def test_set_backend_uses_its_default_model(router: Router) -> None:
    cmds = commands(router)
    assert reply(cmds, "!/set(backend=other)") == "Set for this session: backend = other (its default model)."
    assert ask(cmds, "hello").request.model == "other:"


def test_set_parameters_become_overrides(router: Router) -> None:
    cmds = commands(router)
    assert reply(cmds, "!/set(temperature=0.3, top_p=0.5)") == "Set for this session: temperature = 0.3, top_p = 0.5."
    assert ask(cmds, "hello").overrides == {"temperature": 0.3, "top_p": 0.5}


def test_set_refuses_what_cannot_route_or_parse_and_keeps_nothing(router: Router) -> None:
    cmds = commands(router)
    backends = ", ".join(sorted(router.runtimes))
    assert reply(cmds, "!/set") == "!/set: expected name=value, e.g. !/set(model=backend:model)"
    assert reply(cmds, "!/set(backend=nope)") == f"!/set(backend=nope): unknown backend 'nope'. Backends: {backends}"
    unknown = reply(cmds, "!/set(model=nope:x)")
    assert unknown.startswith("!/set(model=nope:x): Unknown backend 'nope'") and f"Backends: {backends}." in unknown
    assert reply(cmds, "!/set(temperature=hot)") == (
        "!/set(temperature=hot): Invalid model parameter temperature='hot': expected a number.")
    after = ask(cmds, "hello")
    assert (after.request.model, after.overrides) == ("gpt-4o", {})


def test_unset_one_setting_or_all(router: Router) -> None:
    cmds = commands(router)
    reply(cmds, "!/set(model=other:gpt-4o-mini, temperature=0.3, top_p=0.5)")
    assert reply(cmds, "!/unset(temperature)") == "Unset temperature. Now: model = other:gpt-4o-mini, top_p = 0.5."
    assert reply(cmds, "!/unset(nothing)") == (
        "!/unset(nothing): 'nothing' is not set. Set now: model = other:gpt-4o-mini, top_p = 0.5")
    assert reply(cmds, "!/unset(model)") == "Unset model. Now: top_p = 0.5."
    assert reply(cmds, "!/unset") == "!/unset: name what to unset, e.g. !/unset(model) or !/unset(all)"
    assert reply(cmds, "!/unset(all)") == "Unset all. Now: nothing."
    after = ask(cmds, "hello")
    assert (after.request.model, after.overrides) == ("gpt-4o", {})


def test_oneoff_applies_to_the_next_request_only(router: Router) -> None:
    cmds = commands(router)
    reply(cmds, "!/set(model=main:gpt-4o)")
    assert reply(cmds, "!/oneoff(other:gpt-4o-mini)") == "The next request goes to other:gpt-4o-mini."
    assert ask(cmds, "one").request.model == "other:gpt-4o-mini"
    assert ask(cmds, "two").request.model == "main:gpt-4o"
    assert reply(cmds, "!/oneoff") == "!/oneoff: name a model, e.g. !/oneoff(backend:model)"


def test_limits_shows_the_current_models_limits_and_circuit(router: Router) -> None:
    cmds = commands(router)
    assert reply(cmds, "!/limits") == (
        "Limits of main:gpt-4o: context_window 128000, max_output_tokens 4096; circuit closed.")
    reply(cmds, "!/set(model=other:gpt-4o-mini)")
    assert reply(cmds, "!/limits") == "Limits of other:gpt-4o-mini: none configured; circuit closed."
    assert reply(cmds, "!/limits", session="s3", model="nope:x").startswith(
        "Current model 'nope:x': Unknown backend 'nope'")


def test_usage_counts_the_requests_tallied_in_the_session(router: Router) -> None:
    cmds = commands(router)
    assert reply(cmds, "!/usage") == "This session: 0 requests, 0 input tokens, 0 output tokens."
    cmds.tally("s1", Usage(input_tokens=12, output_tokens=5))
    cmds.tally("s1", None)
    cmds.tally("unknown-session", Usage(input_tokens=1))
    assert reply(cmds, "!/usage") == "This session: 2 requests, 12 input tokens, 5 output tokens."


def test_commands_beside_text_run_and_the_text_is_forwarded(router: Router) -> None:
    outcome = ask(commands(router), "what is 2+2? !/set(temperature=0.1)")
    assert outcome.reply is None
    assert [m.content for m in outcome.request.messages] == ["what is 2+2?"]
    assert outcome.overrides == {"temperature": 0.1} and outcome.session_key == "s1"


def test_earlier_command_turns_are_dropped_with_the_proxys_answer(router: Router) -> None:
    cmds = commands(router)
    outcome = ask(cmds, "!/set(temperature=0.2)", "Set for this session: temperature = 0.2.",
                  "hi !/help there", "Hello!", "and now?")
    assert [(m.role, m.content) for m in outcome.request.messages] == [
        ("user", "hi there"), ("assistant", "Hello!"), ("user", "and now?")]
    assert outcome.reply is None and outcome.overrides == {}  # only the newest message's commands run


def test_several_commands_answer_together(router: Router) -> None:
    assert reply(commands(router), "!/set(temperature=0.2) !/usage") == (
        "Set for this session: temperature = 0.2.\n\nThis session: 0 requests, 0 input tokens, 0 output tokens.")


def test_a_setting_the_store_cannot_keep_is_reported(router: Router) -> None:
    cmds = commands(router, Failing())
    assert reply(cmds, "!/set(temperature=0.2)") == NOT_KEPT
    assert reply(cmds, "!/help") == HELP  # nothing to keep: answered


def test_disabled_commands_pass_everything_through(router: Router) -> None:
    cmds = commands(router, enabled=False)
    request = ChatRequest(model="gpt-4o", messages=(Message("user", "!/set(model=other:gpt-4o-mini)"),))
    outcome = asyncio.run(cmds.process(request, "s1"))
    assert outcome.request is request and outcome.reply is None and outcome.overrides == {}


def test_a_request_without_commands_is_forwarded_unchanged(router: Router) -> None:
    request = ChatRequest(model="gpt-4o", messages=(Message("system", "be brief"), Message("user", "hi")))
    outcome = asyncio.run(commands(router).process(request, "s1"))
    assert outcome.request is request and outcome.reply is None


def test_commands_run_when_system_context_follows_the_users_message(router: Router) -> None:
    cmds = commands(router)
    request = ChatRequest(model="gpt-4o", messages=(Message("user", "!/set(temperature=0.4)"),
                                                    Message("system", "<context from the client>")))
    outcome = asyncio.run(cmds.process(request, "s1"))
    assert outcome.reply == "Set for this session: temperature = 0.4."
    after = ChatRequest(model="gpt-4o", messages=(Message("user", "!/help"), Message("assistant", "ok")))
    assert asyncio.run(cmds.process(after, "s1")).reply is None  # the conversation ends with the assistant


def test_another_prefix_and_the_tier_of_a_real_client(router: Router) -> None:
    cmds = Commands(router, MemorySessionStore(), CommandSyntax("#/"))
    assert reply(cmds, "#/help") == HELP
    passed = ask(cmds, "!/help please")
    assert passed.reply is None and passed.request.messages[0].content == "!/help please"
    carol = Client("carol", "basic", False, TierConfig(backends=["main:*"]))
    assert reply(cmds, "#/models", viewer=carol) == "Routable models:\n  main:gpt-4o"


def test_the_local_reply_is_one_text_that_any_surface_can_render() -> None:
    request = ChatRequest(model="gpt-4o", messages=(Message("user", "!/help"),))

    async def events() -> list[Any]:
        return [event async for event in local_reply("the answer", request)]

    start, text, finish, usage = asyncio.run(events())
    assert isinstance(start, ResponseStart) and start.id.startswith("lipcmd-") and start.model == "gpt-4o"
    assert (text, finish, usage) == (TextDelta("the answer"), Finish("stop"), UsageReport(Usage()))
