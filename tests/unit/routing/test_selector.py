"""lip.routing.selector.parse: ``backend:model`` versus a bare model name (SPEC §3)."""

from __future__ import annotations

import random

import pytest

from lip.core.errors import InvalidRequest
from lip.routing.selector import MAX_LENGTH, MAX_ROUTES, Selector, parse, parse_plan, weighted_order


@pytest.mark.parametrize(
    ("text", "backend", "model"),
    [
        ("internal-llm:company-gpt-large", "internal-llm", "company-gpt-large"),
        ("company-gpt-large", None, "company-gpt-large"),
        ("gpt-4o", None, "gpt-4o"),
        # a ':' after the first '/' is part of the model name
        ("meta-llama/llama-3:free", None, "meta-llama/llama-3:free"),
        ("openrouter:meta-llama/llama-3:free", "openrouter", "meta-llama/llama-3:free"),
        # only the first ':' splits; the rest belongs to the model
        ("ollama:llama3:8b", "ollama", "llama3:8b"),
        ("llama3:8b", "llama3", "8b"),  # the router decides whether 'llama3' is a backend
        # backend without a model: the backend's default model
        ("internal-llm:", "internal-llm", None),
        ("  internal-llm:company-gpt-large \n", "internal-llm", "company-gpt-large"),
        ("\tgpt-4o ", None, "gpt-4o"),
    ],
)
def test_parse(text: str, backend: str | None, model: str | None) -> None:
    assert parse(text) == Selector(backend, model)


@pytest.mark.parametrize("text", ["", "   ", "\n\t", ":"])
def test_empty_and_whitespace_name_nothing(text: str) -> None:
    sel = parse(text)
    assert sel.backend is None
    assert sel.model is None
    assert str(sel) == ""


def test_leading_colon_is_a_bare_model() -> None:
    assert parse(":gpt-4o") == Selector(None, "gpt-4o")


@pytest.mark.parametrize(
    "text",
    ["internal-llm:company-gpt-large", "gpt-4o", "openrouter:meta-llama/llama-3:free", "internal-llm"],
)
def test_str_round_trips(text: str) -> None:
    assert str(parse(text)) == text


def test_str_of_backend_only() -> None:
    assert str(Selector("mock", None)) == "mock"
    assert parse(str(Selector("mock", None))) == Selector(None, "mock")  # re-parsed, it is a bare name


# ---- caps and weighted order (issue 13) ------------------------------------------------------------------------


def test_weighted_order_draws_once_per_branch_and_follows_the_weights() -> None:
    group = parse_plan("[weight=3]a:m^[weight=1]b:m").groups[0]
    rng = random.Random(7)
    firsts = [weighted_order(group, rng.random)[0].text for _ in range(4000)]
    assert 0.70 < firsts.count("a:m") / 4000 < 0.80  # 3 : 1
    draws = 0

    def counting() -> float:
        nonlocal draws
        draws += 1
        return rng.random()

    many = parse_plan("^".join(f"b{i}:m" for i in range(MAX_ROUTES))).groups[0]
    order = weighted_order(many, counting)
    assert draws == MAX_ROUTES  # one draw per branch, not one per branch left at each pick
    assert sorted(b.text for b in order) == sorted(b.text for b in many)
    assert [b.text for b in weighted_order(group, lambda: 0.0)] == ["a:m", "b:m"]  # ties keep the written order


@pytest.mark.parametrize("text", ["a:m\nx", "a:m\x00", "a:\x1bm", "a|b\r|c", "a:\x85m"])
def test_control_characters_inside_a_selector_are_refused(text: str) -> None:
    with pytest.raises(InvalidRequest, match="control character"):
        parse_plan(text)


def test_whitespace_around_a_selector_is_forgiven_and_the_caps_hold() -> None:
    assert parse_plan(" a:m \n").groups[0][0].text == "a:m"
    with pytest.raises(InvalidRequest, match=f"at most {MAX_ROUTES}"):
        parse_plan("|".join(["a:m"] * (MAX_ROUTES + 1)))
    with pytest.raises(InvalidRequest, match=f"at most {MAX_LENGTH}"):
        parse_plan("a:" + "m" * MAX_LENGTH)
