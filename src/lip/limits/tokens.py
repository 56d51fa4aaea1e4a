"""Token counting: the count of the tokenizer a model uses, offline, memoised; never a hidden multiple.

Tokenizers (``tokenizer:`` of a model in backend.yaml; loaded by ``lip.limits.vocab``):

* ``o200k_base`` / ``cl100k_base``: OpenAI's encodings, exact. Guessed from the model name for
  OpenAI models (gpt-4o, gpt-4.1, gpt-5, o1/o3/o4 → o200k_base; gpt-4, gpt-3.5 → cl100k_base);
  every other family defaults to ``o200k_base``.
* ``mistral_tekken``: Mistral's Tekken tokenizer, as the ``mistral-common`` wheel ships it.
* a path ending in ``.json``: a Hugging Face tokenizer.json the operator provides.
* ``upstream``: the backend's own counting endpoint (``lip.limits.upstream``), with the guessed
  local tokenizer as its fallback.

The count is what the tokenizer says; headroom for a tokenizer that is not the model's own is the
operator's explicit ``limits.token_count_margin`` (applied by admission, never here).

Cheap on the real pattern (the same history resent every turn): counts of texts are memoised in a
bounded LRU keyed by (tokenizer, length, hash). Pathological text (very long runs without a word
boundary, which make tiktoken slow or make it panic) is counted in bounded pieces.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from lip.core.errors import TokenizerUnavailable
from lip.limits.vocab import (
    NAMED,
    SHA256,
    UPSTREAM,
    Encoder,
    check_tokenizer_data,
    is_path,
    load_encoding,
    load_encodings,
    load_tokenizer,
)

__all__ = ["NAMED", "SHA256", "UPSTREAM", "Encoder", "TokenCounter", "TokenizerUnavailable",
           "check_tokenizer_data", "is_path", "load_encoding", "load_encodings", "load_tokenizer",
           "local_tokenizer", "tokenizer_for"]

DEFAULT_TOKENIZER = "o200k_base"
MEMO_MIN_CHARS = 64  # shorter texts are memoised by their text, longer ones by length and hash
SHORT_MEMO_SIZE = 16_384  # short texts remembered (cleared when full)
SEGMENT = 4096  # long texts are counted in segments of about this many characters
# A cut between a letter and one of these is where both encodings' pre-tokenizers end a piece
# anyway (letter runs stop there and no piece reaches back across it), so counting the segments
# separately gives exactly the whole text's count.
CUT_BEFORE = " ,.;:!?()[]{}\"\u3001\u3002\uff0c\uff01\uff1f\uff1b\uff1a"


def guess_tokenizer(model: str) -> str:
    """The local tokenizer of a model by its name: OpenAI's encodings, else o200k_base."""
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss")):
        return "o200k_base"
    if name.startswith(("gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada")):
        return "cl100k_base"
    return DEFAULT_TOKENIZER


def tokenizer_for(model: str, configured: str | None = None) -> str:
    """The tokenizer a model uses: the configured one (``upstream`` included), else the guess."""
    return configured or guess_tokenizer(model)


def local_tokenizer(model: str, configured: str | None = None) -> str:
    """The tokenizer counted on this machine: the configured one, or the guess for ``upstream``."""
    chosen = tokenizer_for(model, configured)
    return guess_tokenizer(model) if chosen == UPSTREAM else chosen


class TokenCounter:
    """Counts text with a memo; one per app (no module-level state)."""

    def __init__(self, load: Callable[[str], Encoder] = load_tokenizer, memo_size: int = 50_000) -> None:
        self._load = load
        self._loaded: dict[str, Encoder] = {}
        self._memo: OrderedDict[tuple[str, int, int], int] = OrderedDict()
        self._memo_size = memo_size
        self._short: dict[tuple[str, str], int] = {}  # roles, names, short messages: keyed by the text itself

    def _encoding(self, name: str) -> Encoder:
        """Each tokenizer is loaded on first use (o200k: about 0.35 s and 60 MB), or by ``warm_up``."""
        found = self._loaded.get(name)
        if found is None:
            found = self._loaded[name] = self._load(name)
        return found

    def loaded(self, name: str) -> bool:
        return name in self._loaded

    def load(self, name: str) -> None:
        """Load ``name`` now (safe in a worker thread). Raises TokenizerUnavailable."""
        self._encoding(name)

    def warm_up(self, names: tuple[str, ...] = tuple(SHA256)) -> list[str]:
        """Load these tokenizers now (default: both OpenAI encodings); returns their names.
        Raises TokenizerUnavailable."""
        return sorted(name for name in names if self._encoding(name))

    def count_text(self, text: str) -> int:
        """Exact o200k_base count: what the mock backend reports as usage."""
        return self.count(text, "o200k_base")

    def count(self, text: str, tokenizer: str) -> int:
        """Tokens of ``text`` as ``tokenizer`` counts them (a local tokenizer's name or path)."""
        found = self.lookup(text, tokenizer)
        if found is None:
            found = self.compute(text, tokenizer)
            self.store(text, tokenizer, found)
        return found

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
    def _encode_len(text: str, encoding: Encoder) -> int:
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

def _cut(text: str, low: int, high: int) -> int:
    """The last safe cut in ``text[low:high]`` (see CUT_BEFORE), or ``high`` when there is none."""
    for index in range(high, low, -1):
        if text[index] in CUT_BEFORE and text[index - 1].isalpha():
            return index
    return high
