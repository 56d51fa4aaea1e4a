"""The model selector a client sends, parsed into an ordered plan of routes.

Grammar::

    selector := group ("|" group)*            ordered failover: each group is tried in turn
    group    := branch ("^" branch)*          weighted choice inside a group
    branch   := attrs* target ("?" params)?
    attrs    := "[" name "=" value ("," name "=" value)* "]"     weight=N, max_context=N
    target   := backend ":" model | model     a ":" counts only before the first "/"
    params   := key "=" value ("&" key "=" value)*              URI model parameters

``meta-llama/llama-3:free`` is a bare model name; ``openrouter:meta-llama/llama-3:free`` names
backend ``openrouter``. Whether a prefix really is a backend is the router's call
(``llama3:8b`` may be a listed model name).

A selector is at most ``MAX_LENGTH`` characters and ``MAX_ROUTES`` routes, and has no control
characters (``check``): a client cannot make the proxy parse, order or try without bound, and
what names a route can go into a log line or a response header.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from lip.core.errors import InvalidRequest

ATTRIBUTE = re.compile(r"\[([^\]]*)\]")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_LENGTH = 4096  # characters of one selector
MAX_ROUTES = 32  # routes of one selector, over all its '|' groups and '^' branches

# URI parameters: name → (type, low, high) — checked here so a bad value is a 400 naming it.
URI_PARAMETERS: dict[str, tuple[type, float, float]] = {
    "temperature": (float, 0.0, 2.0),
    "top_p": (float, 0.0, 1.0),
    "top_k": (int, 1, math.inf),
    "max_tokens": (int, 1, math.inf),
    "max_completion_tokens": (int, 1, math.inf),
    "presence_penalty": (float, -2.0, 2.0),
    "frequency_penalty": (float, -2.0, 2.0),
    "seed": (int, -math.inf, math.inf),
}
REASONING_EFFORTS = frozenset({"minimal", "low", "medium", "high"})


@dataclass(frozen=True, slots=True)
class Selector:
    backend: str | None
    model: str | None  # None: the backend's default model

    def __str__(self) -> str:
        if self.backend is None:
            return self.model or ""
        return f"{self.backend}:{self.model}" if self.model else self.backend


@dataclass(frozen=True, slots=True)
class Branch:
    target: Selector
    text: str  # the target as written (backend:model or model)
    weight: float = 1.0
    max_context: int | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Plan:
    groups: tuple[tuple[Branch, ...], ...]

    @property
    def single(self) -> bool:
        return len(self.groups) == 1 and len(self.groups[0]) == 1


def parse(text: str) -> Selector:
    """Split ``backend:model`` (no failover, weights or parameters)."""
    text = text.strip()
    colon = text.find(":")
    slash = text.find("/")
    if colon < 0 or (0 <= slash < colon):
        return Selector(None, text or None)
    backend, model = text[:colon], text[colon + 1 :]
    return Selector(backend or None, model or None)


def check(text: str) -> int:
    """The number of routes of a selector; a 400 naming the cap for one with too many routes or
    characters, and for one with a control character (CR, LF, NUL, ...)."""
    routes = text.count("|") + text.count("^") + 1
    if routes > MAX_ROUTES:
        raise InvalidRequest(f"The model selector has {routes} routes; this proxy accepts at most {MAX_ROUTES} "
                             "(routes are separated by '|' and '^').", param="model", code="invalid_selector")
    if len(text) > MAX_LENGTH:
        raise InvalidRequest(f"The model selector is {len(text)} characters long; this proxy accepts at most "
                             f"{MAX_LENGTH}.", param="model", code="invalid_selector")
    bad = CONTROL.search(text.strip())  # around it, whitespace is forgiven (parse strips it)
    if bad is not None:
        raise InvalidRequest(f"The model selector contains the control character U+{ord(bad.group()):04X}; "
                             "a model name is printable text.", param="model", code="invalid_selector")
    return routes


def parse_plan(text: str) -> Plan:
    """The whole selector grammar; raises InvalidRequest naming what is wrong."""
    routes = check(text)
    groups = []
    for group_text in text.split("|"):
        branches = tuple(_branch(part, text, routes > 1) for part in group_text.split("^"))
        groups.append(branches)
    return Plan(tuple(groups))


def weighted_order(branches: Sequence[Branch], rng: Callable[[], float]) -> list[Branch]:
    """``branches`` in a random order where each comes first with a chance proportional to its weight.

    Efraimidis-Spirakis sampling without replacement: each branch draws ``-ln(1 - u) / weight`` and
    the smallest draws go first. One draw per branch and a sort: O(n log n), where picking one at a
    time from what is left costs O(n^2).
    """
    if len(branches) == 1:
        return list(branches)
    keyed = sorted((-math.log(max(1.0 - rng(), 1e-300)) / b.weight, i) for i, b in enumerate(branches))
    return [branches[i] for _, i in keyed]


def _branch(raw: str, whole: str, several: bool) -> Branch:
    rest = raw.strip()
    attributes: dict[str, str] = {}
    while rest.startswith("["):
        match = ATTRIBUTE.match(rest)
        if match is None:
            raise _bad(whole, f"unclosed '[' in '{raw.strip()}'")
        for item in filter(None, (p.strip() for p in match.group(1).split(","))):
            name, sep, value = item.partition("=")
            if not sep:
                raise _bad(whole, f"attribute '{item}' needs a value, e.g. [weight=3]")
            attributes[name.strip()] = value.strip()
        rest = rest[match.end() :].lstrip()
    target_text, _, query = rest.partition("?")
    target_text = target_text.strip()
    if not target_text and several:
        raise _bad(whole, "an empty route between '|' or '^'")
    weight = _number(attributes.pop("weight", "1"), "weight", whole, integer=False)
    max_context = _optional_int(attributes.pop("max_context", None), whole)
    if attributes:
        raise _bad(whole, f"unknown attribute '{next(iter(attributes))}'; known: weight, max_context")
    parameters = uri_parameters(query, whole) if query else {}
    return Branch(parse(target_text), target_text, weight, max_context, parameters)


def _optional_int(value: str | None, whole: str) -> int | None:
    return None if value is None else int(_number(value, "max_context", whole, integer=True))


def _number(value: str, name: str, whole: str, *, integer: bool) -> float:
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        raise _bad(whole, f"[{name}={value}] needs a {'whole ' if integer else ''}number") from None
    if number <= 0 or math.isinf(number) or math.isnan(number):
        raise _bad(whole, f"[{name}={value}] must be positive")
    return number


def uri_parameters(query: str, whole: str = "") -> dict[str, Any]:
    """``temperature=0.2&top_p=0.9`` as typed parameters; an unknown or invalid one is a 400."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "reasoning_effort":
            if value not in REASONING_EFFORTS:
                raise _param(key, f"one of {', '.join(sorted(REASONING_EFFORTS))}", value)
            out[key] = value
            continue
        spec = URI_PARAMETERS.get(key)
        if spec is None:
            known = ", ".join([*URI_PARAMETERS, "reasoning_effort"])
            raise InvalidRequest(f"Unknown model parameter '{key}' in model '{whole}'. Known: {known}.",
                                 param="model", code="invalid_model_parameter")
        kind, low, high = spec
        try:
            number: float = int(value) if kind is int else float(value)
        except ValueError:
            raise _param(key, f"a {'whole number' if kind is int else 'number'}", value) from None
        if not low <= number <= high or math.isnan(number):
            raise _param(key, f"a value between {low:g} and {high:g}", value)
        out[key] = number
    return out


def _param(key: str, expected: str, value: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid model parameter {key}={value!r}: expected {expected}.", param="model",
                          code="invalid_model_parameter")


def _bad(whole: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid model selector '{whole}': {what}.", param="model", code="invalid_selector")
