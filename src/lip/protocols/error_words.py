"""The rule the protocols' error envelopes share for naming an error by its status (core names none).

Anthropic and OpenAI both give a failure a type word (``"type": "rate_limit_error"``). Their words
differ (Anthropic says ``not_found_error`` for a 404, OpenAI ``invalid_request_error``), so each keeps
its own table of the statuses that have a word of their own; the rule for the rest is this one.
"""

from __future__ import annotations

from collections.abc import Mapping


def type_word(status: int, words: Mapping[int, str]) -> str:
    """``words``' name for ``status``; otherwise ``invalid_request_error`` for a 4xx, ``api_error`` for the rest."""
    word = words.get(status)
    if word is not None:
        return word
    return "invalid_request_error" if 400 <= status < 500 else "api_error"
