"""Every recorded client request (tests/fixtures/captures/, tests/clients/fixtures/) replayed through the
proxy to every upstream protocol.

The request goes to the proxy as the client sent it (same path, query, headers, body; a --model-rewrite
rule takes the client's own model name to the fake upstream's backend). Asserted: the client gets a
successful answer in its own protocol carrying the upstream's reply, and nothing it sent was silently lost
(see replay.py): every feature reached the upstream, mapped, or is named in ``x-lip-dropped``; every text
and tool reached it. Known failures (issue 15, being fixed) are listed in known.py as non-strict xfails.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from clients.known import ISSUE, KNOWN_REPLAY
from clients.proxy import BACKEND, MODELS, UPSTREAM_KEY_ENV, write_config
from clients.replay import DROPPED_HEADER, Fixture, fates, load_fixtures, lost_content, lost_features, strings, surface
from clients.report import record_result
from fakes import anthropic_upstream, openai_upstream
from fakes.anthropic_upstream import FakeAnthropic
from fakes.gemini_upstream import FakeGemini, GeminiBehaviour
from fakes.openai_upstream import FakeOpenAI
from fakes.responses_upstream import FakeResponses, ResponsesBehaviour
from integration.conftest import ProxyServer, serve_proxy
from lip.app import Settings

UPSTREAMS = ("anthropic", "openai", "gemini", "openai-responses")
REPLY = "Replayed through the proxy."
FIXTURES = load_fixtures()
FAKES = {"anthropic": FakeAnthropic, "openai": FakeOpenAI, "gemini": FakeGemini, "openai-responses": FakeResponses}
REQUESTS = {"anthropic": "message_requests", "openai": "chat_requests", "gemini": "generate_requests",
            "openai-responses": "response_requests"}
SURFACES = {"anthropic": "Anthropic /v1/messages", "anthropic-count": "Anthropic /v1/messages/count_tokens",
            "chat": "OpenAI /v1/chat/completions", "responses": "OpenAI /v1/responses",
            "gemini": "Gemini generateContent", "gemini-count": "Gemini countTokens"}
AUTH = {"anthropic": "x-api-key", "anthropic-count": "x-api-key", "gemini": "x-goog-api-key",
        "gemini-count": "x-goog-api-key"}


def _reply(protocol: str) -> Any:
    if protocol == "openai-responses":
        return ResponsesBehaviour(reply=REPLY, chunks=1)
    if protocol == "anthropic":
        return anthropic_upstream.Behaviour(reply=REPLY, chunks=1)
    if protocol == "openai":
        return openai_upstream.Behaviour(reply=REPLY, chunks=1)
    return GeminiBehaviour(reply=REPLY, chunks=1)


@dataclass
class Upstream:
    protocol: str
    fake: Any
    proxy: ProxyServer

    def seen(self) -> list[Any]:
        return list(getattr(self.fake, REQUESTS[self.protocol])())


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Upstream]]:
    stacks: dict[str, Upstream] = {}
    with contextlib.ExitStack() as stack:
        for protocol in UPSTREAMS:
            fake = stack.enter_context(FAKES[protocol]())
            fake.responder = lambda _body, p=protocol: _reply(p)
            config = write_config(tmp_path_factory.mktemp(f"replay-{protocol}"), protocol, fake.base_url)
            # the client's own model name, whatever it is, goes to the fake's backend: a --model-rewrite rule
            settings = Settings(config_dir=config, config_dir_required=True,
                                model_rewrites=((".*", f"{BACKEND}:{MODELS[protocol]}"),))
            proxy = stack.enter_context(serve_proxy(settings=settings, environ={UPSTREAM_KEY_ENV: "upstream-key"}))
            stacks[protocol] = Upstream(protocol, fake, proxy)
        yield stacks


def _send(proxy: ProxyServer, fixture: Fixture) -> httpx.Response:
    surf = surface(fixture.path)
    headers = dict(fixture.headers)
    auth = AUTH.get(surf)
    if auth:
        headers[auth] = "client-key"
    else:
        headers["authorization"] = "Bearer client-key"
    return httpx.request(fixture.method, proxy.url + fixture.path, params=fixture.query, headers=headers,
                         content=json.dumps(fixture.body).encode(), timeout=30)


def _answer_text(response: httpx.Response) -> str:
    """Every string the answer carries (SSE events' data or the JSON body), joined."""
    if "text/event-stream" in response.headers.get("content-type", ""):
        pieces = []
        for line in response.text.splitlines():
            if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
                pieces.extend(strings(json.loads(line[5:])))
        return "\x00".join(pieces)
    return "\x00".join(strings(response.json()))


def _cells() -> list[Any]:
    out = []
    for fixture in FIXTURES:
        for upstream in UPSTREAMS:
            reason = KNOWN_REPLAY.get((fixture.id, upstream))
            marks = [pytest.mark.xfail(reason=f"{ISSUE}: {reason}", strict=False)] if reason else []
            out.append(pytest.param(fixture, upstream, id=f"{fixture.id}->{upstream}", marks=marks))
    return out


@pytest.mark.parametrize(("fixture", "upstream"), _cells())
def test_replayed_request_is_answered_and_nothing_is_lost(fixture: Fixture, upstream: str,
                                                         upstreams: dict[str, Upstream]) -> None:
    up = upstreams[upstream]
    surf = surface(fixture.path)
    before = len(up.seen())
    response = _send(up.proxy, fixture)
    problems: list[str] = []
    fate: dict[str, str] = {}
    if response.status_code != 200:
        problems.append(f"{response.status_code} {response.text[:300]}")
    elif surf.endswith("-count"):
        answer = response.json()
        if not isinstance(answer.get("input_tokens", answer.get("totalTokens")), int):
            problems.append(f"no token count in {answer}")
    else:
        if REPLY not in _answer_text(response):
            problems.append(f"the upstream's reply is not in the answer: {response.text[:300]}")
        seen = up.seen()[before:]
        if len(seen) != 1:
            problems.append(f"{len(seen)} upstream requests")
        else:
            header = response.headers.get(DROPPED_HEADER, "")
            body = seen[0].body
            fate = fates(surf, fixture.body, upstream, body, header)
            lost = lost_features(surf, fixture.body, upstream, body, header)
            lost += lost_content(surf, fixture.body, body, header)
            if lost:
                problems.append("silently lost: " + "; ".join(lost))
    client, _, version = fixture.client.rpartition("-")
    record_result(kind="replay", client=client, version=version, surface=SURFACES[surf], upstream=upstream,
                  fixture=fixture.id, ok=not problems, note=KNOWN_REPLAY.get((fixture.id, upstream)) or
                  "; ".join(problems), dropped=response.headers.get(DROPPED_HEADER, ""), fates=fate)
    assert not problems, "\n".join(problems)


def test_every_fixture_names_its_client_and_has_no_secret() -> None:
    assert FIXTURES, "no fixtures"
    ids = [f.id for f in FIXTURES]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    assert not twice, f"a capture is in both fixture roots: {twice}"
    for fixture in FIXTURES:
        assert "-" in fixture.client and fixture.client.rsplit("-", 1)[1][0].isdigit(), fixture.client
        raw = json.loads(fixture.file.read_text())
        for key, value in raw["headers"].items():
            if key.lower() in ("authorization", "x-api-key", "x-goog-api-key", "cookie", "api-key"):
                assert value == "<redacted>", f"{fixture.id}: {key} is not redacted"
        assert surface(fixture.path), fixture.id
