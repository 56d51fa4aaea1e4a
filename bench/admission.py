"""Admission cost: token counting and limit checks for large prompts, with and without the memo.

Scenarios (o200k_base, a model with context_window/max_input_tokens, TPM on so every request is
counted exactly):
* one 100k-character prompt, sent fresh each time (no memo help) and repeated (memo);
* a 50-turn conversation of about 150k tokens resent every turn, one new turn each time — the
  real pattern of chat clients; the memo answers for the history, only the new turn is counted
  (with o200k_base, and with Mistral's Tekken);
* a small chat request whose max_tokens is over the model's max_output_tokens (the hot path: the
  size proves the input fits, nothing is counted, the output is lowered).

Run: .venv/bin/python bench/admission.py
"""

from __future__ import annotations

import asyncio
import random
import statistics
import string
import time

from lip.config.schema import Limits
from lip.core.model import ChatRequest, Message
from lip.limits.admission import Admitter, Counting
from lip.limits.tokens import TokenCounter

LIMITS = Limits(context_window=1_000_000, max_input_tokens=900_000, tokens_per_minute=10**9)
SMALL = Limits(context_window=200_000, max_output_tokens=16_384)
WORDS = ["alpha", "beta", "gamma", "delta", "proxy", "token", "model", "limit", "count", "stream"]


def prose(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(WORDS) if rng.random() < 0.8 else "".join(rng.choices(string.ascii_lowercase, k=7))
        out.append(word)
        size += len(word) + 1
    return " ".join(out)[:chars]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def counting(tokenizer: str) -> Counting:
    return Counting("b:m", tokenizer, tokenizer, 0.0, "clamp")


async def timed(admitter: Admitter, request: ChatRequest, tokenizer: str = "o200k_base",
                limits: Limits = LIMITS) -> float:
    start = time.perf_counter()
    await admitter.admit(request, "m", limits, counting(tokenizer), need_count=limits is LIMITS)
    return (time.perf_counter() - start) * 1000


async def conversation(admitter: Admitter, rng: random.Random, tokenizer: str) -> tuple[str, tuple[float, float]]:
    history: list[Message] = [Message("system", "You are a helpful assistant.")]
    turns = [prose(rng, 6_000) for _ in range(100)]  # 50 user+assistant turns, about 150k tokens
    samples = []
    tokens = 0
    for i in range(100):
        history.append(Message("user" if i % 2 == 0 else "assistant", turns[i]))
        request = ChatRequest(model="m", messages=tuple(history))
        samples.append(await timed(admitter, request, tokenizer))
        if i == 99:
            tokens = await admitter.count(request, tokenizer)
    return (f"50-turn conversation resent each turn, {tokenizer} ({tokens:,} tokens at the end)",
            percentiles(samples[10:]))


async def main() -> None:
    rng = random.Random(7)
    counter = TokenCounter()
    start = time.perf_counter()
    counter.warm_up()
    print(f"tokenizer load: {(time.perf_counter() - start) * 1000:.0f} ms")
    admitter = Admitter(counter)
    rows = []

    fresh = [ChatRequest(model="m", messages=(Message("user", prose(rng, 100_000)),)) for _ in range(30)]
    rows.append(("100k-char prompt, new each time", percentiles([await timed(admitter, r) for r in fresh])))
    same = fresh[0]
    rows.append(("100k-char prompt, repeated (memo)", percentiles([await timed(admitter, same) for _ in range(200)])))
    rows.append(await conversation(admitter, rng, "o200k_base"))
    counter.warm_up(("mistral_tekken",))
    rows.append(await conversation(admitter, rng, "mistral_tekken"))
    small = ChatRequest(model="m", messages=(Message("user", "Write a haiku about proxies."),),
                        parameters={"max_tokens": 64_000})
    rows.append(("small request, max_tokens 64000 lowered to 16384",
                 percentiles([await timed(admitter, small, limits=SMALL) for _ in range(2_000)])))

    print("| scenario | p50 ms | p99 ms |\n|---|---|---|")
    for name, (p50, p99) in rows:
        print(f"| {name} | {p50:.3f} | {p99:.3f} |")


if __name__ == "__main__":
    asyncio.run(main())
