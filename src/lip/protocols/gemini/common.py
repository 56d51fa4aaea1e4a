"""The names every Gemini module shares: the extensions key, field lookup in either spelling (JSON
camelCase or proto snake_case), the generationConfig keys with a canonical parameter, the model of a
path, and the 400 for a field a client got wrong."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lip.core.errors import InvalidRequest

PROTOCOL = "gemini"  # the key of ChatRequest.extensions this protocol owns

# generationConfig keys with a canonical (OpenAI-named) parameter.
GENERATION_PARAMS: Mapping[str, str] = {
    "temperature": "temperature",
    "topP": "top_p",
    "topK": "top_k",
    "maxOutputTokens": "max_tokens",
    "stopSequences": "stop",
    "seed": "seed",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
}


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


def get(obj: Mapping[str, Any], camel: str) -> Any:
    """A field in its JSON (camelCase) or proto (snake_case) spelling."""
    value = obj.get(camel)
    return obj.get(_snake(camel)) if value is None else value


def model_name(raw: str) -> str:
    """The model of a request path (``models/gemini-2.5-flash`` or ``gemini-2.5-flash``)."""
    return raw.removeprefix("models/")


def camel_keys(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level keys of one wire object in camelCase (values untouched)."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        head, *rest = key.split("_")
        out[head + "".join(w[:1].upper() + w[1:] for w in rest)] = value
    return out


def fail(param: str, expected: str) -> InvalidRequest:
    """The 400 for a field a client got wrong, worded as Google words it."""
    return InvalidRequest(f"Invalid value at '{param}': expected {expected}.", param=param, code="invalid_value")
