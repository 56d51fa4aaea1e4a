"""One loaded copy of the tokenizer data for every app a test builds."""

from __future__ import annotations

import functools

import tiktoken

from lip.limits.tokens import load_encodings


@functools.cache
def shared_encodings() -> dict[str, tiktoken.Encoding]:
    return load_encodings()


def shared_encoding(name: str) -> tiktoken.Encoding:
    return shared_encodings()[name]
