"""In-chat commands through the openai SDK: answered by the proxy, never sent upstream, settings per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai

from fakes.openai_upstream import FakeOpenAI
from integration.conftest import ProxyServer, serve_proxy, write_backend
from lip.app import Settings


def two_backends(tmp_path: Path, fake: FakeOpenAI) -> Path:
    for name, model in (("main", "gpt-4o"), ("other", "gpt-4o-mini")):
        write_backend(tmp_path, name, f"backend_type: custom\napi_base_url: {fake.base_url}\n"
                                      f"models:\n  {model}: {{}}\n")
    (tmp_path / "proxy.yaml").write_text("default_backend: main\n")
    return tmp_path


def client(proxy: ProxyServer, session: str | None = "s1") -> openai.OpenAI:
    headers = {"x-session-id": session} if session else {}
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0, default_headers=headers)


def say(proxy: ProxyServer, messages: list[dict[str, Any]], session: str | None = "s1", model: str = "gpt-4o",
        **kw: Any) -> Any:
    return client(proxy, session).chat.completions.with_raw_response.create(
        model=model, messages=messages, **kw  # type: ignore[arg-type]
    )


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def test_a_command_only_message_is_answered_locally(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(two_backends(tmp_path, fake)) as proxy:
        raw = say(proxy, [user("!/help")])
        stream = client(proxy).chat.completions.create(model="gpt-4o", messages=[user("!/backends")], stream=True,
                                                       stream_options={"include_usage": True})
        chunks = list(stream)
    answer = raw.parse()
    assert "!/set(model=backend:model)" in (answer.choices[0].message.content or "")
    assert answer.usage is not None and answer.usage.total_tokens == 0
    assert raw.headers["x-lip-backend"] == "lip"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "main [openai] ready" in text and "other [openai] ready" in text
    assert fake.chat_requests() == [], "never sent upstream"


def test_set_model_then_ask_reaches_the_chosen_backend(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(two_backends(tmp_path, fake)) as proxy:
        reply = say(proxy, [user("!/set(model=other:gpt-4o-mini)")]).parse().choices[0].message.content
        history = [user("!/set(model=other:gpt-4o-mini)"), {"role": "assistant", "content": reply},
                   user("What is 2+2?")]
        raw = say(proxy, history)
    assert "model = other:gpt-4o-mini" in (reply or "")
    assert raw.headers["x-lip-backend"] == "other"
    (seen,) = fake.chat_requests()
    assert seen.body["model"] == "gpt-4o-mini"
    assert seen.body["messages"] == [user("What is 2+2?")], "the command turn and the proxy's reply are dropped"


def test_command_text_in_earlier_messages_is_stripped(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(two_backends(tmp_path, fake)) as proxy:
        history = [user("!/set(temperature=0.3) Tell me a joke"), {"role": "assistant", "content": "A joke."},
                   user("Another one")]
        say(proxy, history[:1])
        say(proxy, history, temperature=1.2)
    first, second = fake.chat_requests()
    assert first.body["messages"] == [user("Tell me a joke")], "the command ran, the rest was sent"
    assert first.body["temperature"] == 0.3
    assert second.body["messages"] == [user("Tell me a joke"), history[1], user("Another one")]
    assert second.body["temperature"] == 0.3, "the session setting beats the body"
    assert "!/" not in str(second.body)


def test_oneoff_applies_to_the_next_request_only(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(two_backends(tmp_path, fake)) as proxy:
        say(proxy, [user("!/oneoff(other:gpt-4o-mini)")])
        first = say(proxy, [user("one")])
        second = say(proxy, [user("two")])
    assert first.headers["x-lip-backend"] == "other"
    assert second.headers["x-lip-backend"] == "main"


def test_sessions_are_kept_apart(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(two_backends(tmp_path, fake)) as proxy:
        say(proxy, [user("!/set(model=other:gpt-4o-mini)")], session="alice")
        alice = say(proxy, [user("hi")], session="alice")
        bob = say(proxy, [user("hi")], session="bob")
    assert alice.headers["x-lip-backend"] == "other"
    assert bob.headers["x-lip-backend"] == "main"


def test_derived_session_follows_one_conversation(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(two_backends(tmp_path, fake)) as proxy:
        opening = user("Let's talk. !/set(model=other:gpt-4o-mini)")
        say(proxy, [opening], session=None)
        later = say(proxy, [opening, {"role": "assistant", "content": "ok"}, user("next")], session=None)
        stranger = say(proxy, [user("A different conversation")], session=None)
    assert later.headers["x-lip-backend"] == "other"
    assert stranger.headers["x-lip-backend"] == "main"


def test_unknown_commands_and_bad_arguments_get_a_clear_reply(tmp_path: Path, fake: FakeOpenAI) -> None:
    with serve_proxy(two_backends(tmp_path, fake)) as proxy:
        unknown = say(proxy, [user("!/frobnicate please and also answer")]).parse()
        bad_model = say(proxy, [user("!/set(model=nowhere:x)")]).parse()
        bad_value = say(proxy, [user("!/set(temperature=hot)")]).parse()
    assert "Unknown command !/frobnicate" in (unknown.choices[0].message.content or "")
    assert "!/help" in (unknown.choices[0].message.content or "")
    assert "Unknown backend 'nowhere'" in (bad_model.choices[0].message.content or "")
    assert "temperature" in (bad_value.choices[0].message.content or "")
    assert fake.chat_requests() == []


def test_usage_limits_and_models(tmp_path: Path, fake: FakeOpenAI) -> None:
    write_backend(tmp_path, "capped", f"backend_type: custom\napi_base_url: {fake.base_url}\n"
                                      "models:\n  m:\n    limits: {context_window: 8000, requests_per_minute: 60}\n")
    (tmp_path / "proxy.yaml").write_text("default_backend: capped\n")
    with serve_proxy(tmp_path) as proxy:
        say(proxy, [user("hello")], model="m")
        usage = say(proxy, [user("!/usage")], model="m").parse().choices[0].message.content or ""
        limits = say(proxy, [user("!/limits")], model="m").parse().choices[0].message.content or ""
        models = say(proxy, [user("!/models")]).parse().choices[0].message.content or ""
        unset = say(proxy, [user("!/unset(temperature)")]).parse().choices[0].message.content or ""
    assert "1 requests" in usage and "input tokens" in usage
    assert "context_window 8000" in limits and "requests_per_minute 60" in limits and "circuit closed" in limits
    assert "capped:m" in models and "mock:mock-model" in models
    assert "'temperature' is not set" in unset


def test_disabled_commands_go_upstream_unchanged(tmp_path: Path, fake: FakeOpenAI) -> None:
    config = two_backends(tmp_path, fake)
    settings = Settings(config_dir=config, config_dir_required=True, disable_commands=True)
    with serve_proxy(config, settings=settings) as proxy:
        say(proxy, [user("!/help")])
    assert fake.chat_requests()[0].body["messages"] == [user("!/help")]


def test_a_custom_prefix(tmp_path: Path, fake: FakeOpenAI) -> None:
    config = two_backends(tmp_path, fake)
    (config / "proxy.yaml").write_text("default_backend: main\ncommands:\n  prefix: '@@'\n")
    with serve_proxy(config) as proxy:
        local = say(proxy, [user("@@help")]).parse().choices[0].message.content or ""
        say(proxy, [user("!/help")])
    assert "Commands of the LLM Interactive Proxy" in local
    assert fake.chat_requests()[0].body["messages"] == [user("!/help")]


def test_commands_in_a_claude_code_turn_followed_by_its_system_message(tmp_path: Path, fake: FakeOpenAI) -> None:
    """Claude Code 2.x puts a system message after the user's turn: the user's commands still run."""
    context = {"role": "system", "content": "<system-reminder>context</system-reminder>"}
    with serve_proxy(two_backends(tmp_path, fake)) as proxy:
        headers = {"x-session-id": "cc"}
        only = httpx.post(proxy.url + "/v1/messages", headers=headers, timeout=20, json={
            "model": "gpt-4o", "max_tokens": 100, "messages": [user("!/set(model=other:gpt-4o-mini)"), context]})
        asked = httpx.post(proxy.url + "/v1/messages", headers=headers, timeout=20, json={
            "model": "gpt-4o", "max_tokens": 100, "messages": [user("What is 2+2?"), context]})
    assert only.status_code == 200 and only.headers["x-lip-backend"] == "lip"
    assert "model = other:gpt-4o-mini" in only.json()["content"][0]["text"]
    assert asked.headers["x-lip-backend"] == "other"
    (seen,) = fake.chat_requests()
    assert [m["role"] for m in seen.body["messages"]] == ["user", "system"], "the system message goes on"
