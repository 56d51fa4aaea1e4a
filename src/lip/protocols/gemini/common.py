"""The names every Gemini wire module shares: the extensions key, field lookup in either spelling
(JSON camelCase or proto snake_case), and the generationConfig keys with a canonical parameter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
