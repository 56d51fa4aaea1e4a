"""lip.routing.selector.parse: ``backend:model`` versus a bare model name (SPEC §3)."""

from __future__ import annotations

import pytest

from lip.routing.selector import Selector, parse


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
