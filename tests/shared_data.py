"""One loaded copy of the tokenizer data for every app a test builds."""

from __future__ import annotations

import functools

import tiktoken

from lip.limits.tokens import Encoder, load_encodings, load_tokenizer


@functools.cache
def shared_encodings() -> dict[str, tiktoken.Encoding]:
    return load_encodings()


@functools.cache
def _shared_tokenizer(name: str) -> Encoder:
    return load_tokenizer(name)


def shared_encoding(name: str) -> Encoder:
    """OpenAI's encodings and Tekken loaded once for the whole run (tokenizer.json files: each time,
    since tests write and change them)."""
    if name in shared_encodings():
        return shared_encodings()[name]
    if name == "mistral_tekken":
        return _shared_tokenizer(name)
    return load_tokenizer(name)


TRAINING_TEXT = (
    "The quick brown fox jumps over the lazy dog while the proxy counts tokens for every message. "
    "def square(x: int) -> int:\n    return x ** 2\n"
)


def write_tokenizer_json(path: str) -> str:
    """A small byte-level BPE tokenizer.json made here (no hub download), with a BOS that a template
    adds, so tests can tell the text's count from the template's."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers  # noqa: PLC0415

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator([TRAINING_TEXT] * 50, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    tokenizer.save(path)
    return path
