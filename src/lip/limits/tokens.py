"""Token counting. For now a cheap character-based estimate; exact tokenizers come with the limits work."""

from __future__ import annotations


def estimate_tokens(text: str) -> int:
    """About four characters a token for English text; never less than one for non-empty text."""
    return (len(text) + 3) // 4
