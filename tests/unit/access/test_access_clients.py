"""lip.access.clients: the key each protocol presents, who it belongs to, tiers, and slowing down guessers."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from lip.access.clients import Authenticator, Client, presented_key
from lip.config.schema import ProxyConfig, TierConfig
from lip.core.errors import Forbidden, RateLimited, Unauthorized
from lip.limits.ratelimit import Quota
from lip.routing.selector import Selector

ALICE_KEY = "alice-key-0123456789"
BOB_KEY = "bob-key-abcdefghij"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def config(**extra: Any) -> ProxyConfig:
    return ProxyConfig.model_validate({
        "clients": [
            {"name": "alice", "key_env_var": "ALICE_KEY", "tier": "basic"},
            {"name": "bob", "key_sha256": hashlib.sha256(BOB_KEY.encode()).hexdigest().upper(), "admin": True},
        ],
        "tiers": {"basic": {"backends": ["openai:gpt-4o*", "mock:*"], "default_backend": "mock:echo",
                            "requests_per_minute": 10}},
        **extra,
    })


def authenticator(environ: dict[str, str] | None = None, clock: Clock | None = None) -> Authenticator:
    env = {"ALICE_KEY": ALICE_KEY} if environ is None else environ
    return Authenticator(config(), env, clock=clock or Clock())


# ---- presented_key ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "query", "key"), [
    ({"authorization": "Bearer sk-1"}, {}, "sk-1"),
    ({"authorization": "bearer   sk-2  "}, {}, "sk-2"),
    ({"authorization": "BEARER sk-3", "x-api-key": "other"}, {}, "sk-3"),
    ({"x-api-key": "sk-ant"}, {}, "sk-ant"),
    ({"x-goog-api-key": "sk-goog"}, {"key": "sk-query"}, "sk-goog"),
    ({"x-api-key": "sk-ant", "x-goog-api-key": "sk-goog"}, {}, "sk-ant"),
    ({}, {"key": "sk-query"}, "sk-query"),
    ({"authorization": "Basic dXNlcjpwdw==", "x-api-key": "sk-ant"}, {}, "sk-ant"),  # not Bearer: the next
    ({"authorization": "Basic dXNlcjpwdw=="}, {}, None),
    ({"x-api-key": "", "x-goog-api-key": ""}, {"key": ""}, None),
    ({}, {}, None),
    ({"authorization": "Bearer   ", "x-api-key": "sk-ant"}, {}, "sk-ant"),  # an empty Bearer is no key
    ({"authorization": "Bearer "}, {}, None),
])
def test_presented_key_as_each_protocol_sends_it(headers: dict[str, str], query: dict[str, str],
                                                  key: str | None) -> None:
    assert presented_key(headers, query) == key


# ---- authenticate --------------------------------------------------------------------------------------


def test_each_client_is_found_by_its_key_from_env_or_sha256() -> None:
    auth = authenticator()
    alice = auth.authenticate(ALICE_KEY, "10.0.0.1")
    bob = auth.authenticate(BOB_KEY, "10.0.0.1")
    assert alice is not None and (alice.name, alice.tier, alice.admin) == ("alice", "basic", False)
    assert bob is not None and (bob.name, bob.tier, bob.admin) == ("bob", None, True)
    assert alice.policy.requests_per_minute == 10 and bob.policy == TierConfig()
    assert auth.enabled and auth.missing == []


def test_two_clients_sharing_a_key_resolve_to_the_first() -> None:
    shared = hashlib.sha256(b"shared-key-0123456789").hexdigest()
    proxy = ProxyConfig.model_validate({"clients": [{"name": "first", "key_sha256": shared},
                                                    {"name": "second", "key_sha256": shared}]})
    found = Authenticator(proxy, {}).authenticate("shared-key-0123456789", "10.0.0.1")
    assert found is not None and found.name == "first"


def test_without_clients_everyone_is_let_in_anonymously() -> None:
    auth = Authenticator(ProxyConfig(), {})
    assert not auth.enabled
    assert auth.authenticate(None, "10.0.0.1") is None
    assert auth.authenticate("anything", "10.0.0.1") is None


def test_a_client_whose_key_variable_is_unset_is_reported_and_cannot_log_in() -> None:
    auth = authenticator(environ={"ALICE_KEY": ""})
    assert auth.missing == ["client alice: environment variable ALICE_KEY is not set"]
    with pytest.raises(Unauthorized):
        auth.authenticate("", "10.0.0.1")
    client = auth.authenticate(BOB_KEY, "10.0.0.1")
    assert client is not None and client.name == "bob"


def test_a_wrong_or_missing_key_is_a_401_that_names_how_to_send_one() -> None:
    auth = authenticator()
    with pytest.raises(Unauthorized) as wrong:
        auth.authenticate("nope", "10.0.0.1")
    assert (wrong.value.status, wrong.value.code) == (401, "invalid_api_key")
    assert wrong.value.message == "Missing or invalid API key for this proxy."
    with pytest.raises(Unauthorized) as missing:
        auth.authenticate(None, "10.0.0.2")
    assert missing.value.message == ("This proxy needs an API key (Authorization: Bearer, x-api-key, "
                                     "x-goog-api-key or ?key=).")
    assert ALICE_KEY not in wrong.value.message + missing.value.message


def test_after_five_wrong_keys_an_address_waits_doubling_each_time() -> None:
    clock = Clock()
    auth = authenticator(clock=clock)
    for _ in range(5):
        with pytest.raises(Unauthorized):
            auth.authenticate("guess", "10.0.0.9")
    with pytest.raises(RateLimited) as blocked:
        auth.authenticate(ALICE_KEY, "10.0.0.9")  # even the right key waits
    assert (blocked.value.code, blocked.value.retry_after) == ("too_many_failed_keys", 1.0)
    assert auth.authenticate(ALICE_KEY, "10.0.0.8") is not None  # another address is not slowed down
    clock.now += 1.0
    with pytest.raises(Unauthorized):
        auth.authenticate("guess", "10.0.0.9")  # the sixth failure: 2 s
    clock.now += 1.5
    with pytest.raises(RateLimited) as again:
        auth.authenticate("guess", "10.0.0.9")
    assert again.value.retry_after == pytest.approx(0.5)


def test_the_wait_is_capped_at_five_minutes() -> None:
    clock = Clock()
    auth = authenticator(clock=clock)
    for _ in range(20):
        with pytest.raises(Unauthorized):
            auth.authenticate("guess", "10.0.0.9")
        clock.now += 1_000_000.0
    clock.now -= 1_000_000.0
    with pytest.raises(RateLimited) as blocked:
        auth.authenticate("guess", "10.0.0.9")
    assert blocked.value.retry_after == 300.0


def test_a_right_key_forgets_the_failures_of_its_address() -> None:
    clock = Clock()
    auth = authenticator(clock=clock)
    for _ in range(4):
        with pytest.raises(Unauthorized):
            auth.authenticate("guess", "10.0.0.9")
    assert auth.authenticate(ALICE_KEY, "10.0.0.9") is not None
    for _ in range(4):  # four more: still under five in a row
        with pytest.raises(Unauthorized):
            auth.authenticate("guess", "10.0.0.9")
    assert auth.authenticate(ALICE_KEY, "10.0.0.9") is not None


# ---- tiers -----------------------------------------------------------------------------------------------


def client(tier: TierConfig, name: str = "c") -> Client:
    return Client(name, "t", False, tier)


def test_allows_matches_the_tiers_globs_case_sensitively() -> None:
    c = client(TierConfig(backends=["openai:gpt-4o*", "mock:*", "local:m?"]))
    allowed = ["openai:gpt-4o", "openai:gpt-4o-mini", "mock:anything", "local:m1"]
    refused = ["openai:gpt-4.1", "OpenAI:gpt-4o", "anthropic:claude", "local:m12", "mock"]
    assert [c.allows(label) for label in allowed + refused] == [True] * 4 + [False] * 5
    assert client(TierConfig()).allows("any:thing")


def test_check_refuses_with_a_403_that_lists_the_tier() -> None:
    c = Client("carol", "basic", False, TierConfig(backends=["mock:*", "openai:gpt-4o"]))
    c.check("mock:echo")
    with pytest.raises(Forbidden) as refused:
        c.check("openai:o3")
    error = refused.value
    assert (error.status, error.code, error.param) == (403, "model_not_allowed", "model")
    assert error.message == "Client 'carol' (tier basic) may not use openai:o3; its tier allows mock:*, openai:gpt-4o."
    with pytest.raises(Forbidden) as untiered:
        Client("dan", None, False, TierConfig(backends=["mock:*"])).check("x:y")
    assert "(tier -)" in untiered.value.message


def test_a_tiers_default_route_and_quota() -> None:
    assert client(TierConfig(default_backend="openai:gpt-4o")).default == Selector("openai", "gpt-4o")
    assert client(TierConfig(default_backend="openai")).default == Selector("openai", None)
    assert client(TierConfig()).default is None
    assert client(TierConfig(requests_per_minute=5, tokens_per_minute=900)).quota == Quota(5, 900)
    assert not client(TierConfig()).quota
