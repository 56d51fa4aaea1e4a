"""Context checks before any upstream call: input, output and context-window limits of a model.

Input tokens are counted the way OpenAI's chat format counts them: 3 tokens a message plus its
role, content and name (1 more for a name), 3 to prime the reply. Tool definitions are counted as
their JSON (name, description, parameter schema) plus 8 a tool and 12 once, which over-counts
OpenAI's internal rendering slightly. A tool call counts its name and arguments plus 3. Images
count 85 tokens at ``detail: low`` and 765 otherwise (OpenAI's figure for a 1024x1024 image at
high detail); the proxy never fetches an image to measure it.

Cheap paths: a text's count comes from the counter's memo when the same history is resent; when
no rate limit needs the exact figure and the UTF-8 size alone proves the request fits (a token is
never shorter than a byte), nothing is counted at all; counts of large uncached texts run in a
worker thread so the event loop keeps serving; once the input is past its limit by more than a
million characters of text still to count, counting stops and ``measured`` is what was counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from lip.config.schema import Limits
from lip.core.errors import LimitExceeded
from lip.core.model import ChatRequest, ImagePart
from lip.limits.tokens import TokenCounter, encoding_of, scale

PER_MESSAGE = 3
PER_NAME = 1
REPLY_PRIMING = 3
PER_TOOL = 8
TOOLS_ONCE = 12
PER_TOOL_CALL = 3
IMAGE_LOW = 85
IMAGE_HIGH = 765
OFFLOAD_CHARS = 32_000
GIVE_UP_CHARS = 1_000_000


@dataclass(slots=True)
class Admission:
    """What admission measured and what the request may ask for."""

    request: ChatRequest  # with an output cap filled in where the client set none
    input_tokens: int | None  # None: not counted (the size alone proved the request fits)
    output_cap: int | None  # most output tokens the request may produce
    estimated: bool


def _texts(request: ChatRequest) -> Iterator[str]:
    for message in request.messages:
        yield message.role
        if isinstance(message.content, str):
            yield message.content
        elif message.content:
            for part in message.content:
                if not isinstance(part, ImagePart):
                    yield part.text
        if message.name:
            yield message.name
        for call in message.tool_calls:
            yield call.name
            yield call.arguments
        if message.tool_call_id:
            yield message.tool_call_id
    for tool in request.tools:
        yield tool.name
        if tool.description:
            yield tool.description
        if tool.parameters is not None:
            yield orjson.dumps(tool.parameters).decode()


def _fixed_tokens(request: ChatRequest) -> int:
    """Overheads that do not depend on tokenizing text."""
    total = REPLY_PRIMING
    for message in request.messages:
        total += PER_MESSAGE + (PER_NAME if message.name else 0) + PER_TOOL_CALL * len(message.tool_calls)
        if message.content and not isinstance(message.content, str):
            total += sum(
                (IMAGE_LOW if part.detail == "low" else IMAGE_HIGH)
                for part in message.content
                if isinstance(part, ImagePart)
            )
    if request.tools:
        total += TOOLS_ONCE + PER_TOOL * len(request.tools)
    return total


class Admitter:
    """Checks a request against a model's limits; one per app."""

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter

    async def count(self, request: ChatRequest, tokenizer: str, stop_above: int | None = None) -> int:
        """Input tokens of ``request`` (stops early far past ``stop_above``)."""
        encoding = encoding_of(tokenizer)
        counter = self.counter
        raw = 0
        texts = list(_texts(request))
        remaining = sum(len(t) for t in texts)
        for text in texts:
            remaining -= len(text)
            found = counter.lookup(text, encoding)
            if found is None:
                if len(text) >= OFFLOAD_CHARS:
                    found = await asyncio.to_thread(counter.compute, text, encoding)
                else:
                    found = counter.compute(text, encoding)
                counter.store(text, encoding, found)
            raw += found
            if stop_above is not None and remaining > GIVE_UP_CHARS and scale(raw, tokenizer) > stop_above:
                break
        return scale(raw, tokenizer) + _fixed_tokens(request)

    async def admit(
        self, request: ChatRequest, model: str, limits: Limits, tokenizer: str, *, need_count: bool
    ) -> Admission:
        """Raise LimitExceeded, or return the admission; ``need_count`` forces an exact count."""
        requested = request.max_output_tokens
        if limits.max_output_tokens is not None and requested is not None and requested > limits.max_output_tokens:
            raise _exceeded("output_limit_exceeded", "Output token limit exceeded", model,
                            limits.max_output_tokens, requested)
        planned = requested if requested is not None else limits.max_output_tokens
        input_cap = _input_cap(limits, planned)
        window = limits.context_window
        tokens: int | None = None
        if (
            need_count
            or (window is not None and planned is None)
            or (input_cap is not None and not self._fits_by_size(request, tokenizer, input_cap))
        ):
            tokens = await self.count(request, tokenizer, stop_above=input_cap)
            _check_input(tokens, requested, model, limits)
        cap = planned
        if window is not None and tokens is not None and (cap is None or tokens + cap > window):
            cap = window - tokens  # the client set no output limit: leave room inside the window
        if requested is None and cap is not None:
            request = request.with_parameters({"max_tokens": cap})
        return Admission(request, tokens, cap, tokenizer == "estimate")

    @staticmethod
    def _fits_by_size(request: ChatRequest, tokenizer: str, cap: int) -> bool:
        fixed = _fixed_tokens(request)
        texts = list(_texts(request))
        if scale(4 * sum(len(t) for t in texts), tokenizer) + fixed <= cap:
            return True  # four bytes a character at most, one byte a token at least
        return scale(sum(len(t.encode()) for t in texts), tokenizer) + fixed <= cap


def _input_cap(limits: Limits, planned_output: int | None) -> int | None:
    caps = []
    if limits.max_input_tokens is not None:
        caps.append(limits.max_input_tokens)
    if limits.context_window is not None:
        caps.append(limits.context_window - (planned_output or 0))
    return min(caps) if caps else None


def _check_input(tokens: int, requested: int | None, model: str, limits: Limits) -> None:
    if limits.max_input_tokens is not None and tokens > limits.max_input_tokens:
        raise _exceeded("input_limit_exceeded", "Input token limit exceeded", model, limits.max_input_tokens, tokens)
    window = limits.context_window
    if window is not None and tokens + (requested or 1) > window:
        raise _exceeded("context_window_exceeded", "Context window exceeded", model, window,
                        tokens + (requested or 0))


def _exceeded(code: str, message: str, model: str, limit: int, measured: int) -> LimitExceeded:
    return LimitExceeded(message, code=code, param="messages" if code != "output_limit_exceeded" else "max_tokens",
                         details={"model": model, "limit": limit, "measured": measured})
