"""Context checks before any upstream call: input, output and context-window limits of a model.

Input tokens are counted the way OpenAI's chat format counts them: 3 tokens a message plus its
role, content and name (1 more for a name), 3 to prime the reply. Tool definitions are counted as
their JSON (name, description, parameter schema) plus 8 a tool and 12 once, which over-counts
OpenAI's internal rendering slightly. A tool call counts its name and arguments plus 3. Images
count 85 tokens at ``detail: low`` and 765 otherwise (OpenAI's figure for a 1024x1024 image at
high detail); the proxy never fetches an image to measure it.

The count is the model's tokenizer's (``lip.limits.tokens``), or the backend's own with
``tokenizer: upstream`` (``lip.limits.upstream``). ``limits.token_count_margin`` m is the
operator's headroom: a count c is checked as ceil(c x (1 + m)); errors still report c as
``measured``.

Output: a client's output request over ``max_output_tokens``, or past what the context window
leaves after the input, is lowered to fit (``output_policy: clamp``, the default; the admission
says what was lowered, for the response header) or refused (``reject``). The input alone not
fitting is always refused. A request with no output limit gets one that keeps the limits.

Cheap paths: a text's count comes from the counter's memo when the same history is resent; when
no rate limit needs the exact figure and the UTF-8 size alone proves the request fits (a token is
never shorter than a byte), nothing is counted at all; counts of large uncached texts run in a
worker thread so the event loop keeps serving; once the input is past its limit by more than a
million characters of text still to count, counting stops and ``measured`` is what was counted.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from lip.config.schema import Limits, ModelConfig
from lip.core.errors import LimitExceeded
from lip.core.model import ChatRequest, ImagePart, RedactedReasoningPart
from lip.limits.tokens import UPSTREAM, TokenCounter, local_tokenizer, tokenizer_for
from lip.limits.upstream import CountsTokens, UpstreamCall, UpstreamCounts, UpstreamTokens, unsupported

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


LOWERED_HEADER = "x-lip-max-tokens-lowered"


@dataclass(frozen=True, slots=True)
class Counting:
    """How one route's requests are counted and limited (built by ``Admitter.counting``)."""

    label: str  # backend:model
    tokenizer: str  # what the model's config says (``upstream`` included)
    local: str  # the tokenizer counted on this machine (the fallback of ``upstream``)
    margin: float  # token_count_margin
    policy: str  # output_policy: clamp or reject
    upstream: UpstreamCall | None = None  # the backend's count, with tokenizer: upstream


@dataclass(frozen=True, slots=True)
class Lowered:
    """A client's output request that admission lowered, and why."""

    requested: int
    sent: int
    reason: str  # the limit that lowered it: max_output_tokens or context_window

    def header(self) -> dict[str, str]:
        return {LOWERED_HEADER: f"{self.requested}->{self.sent} ({self.reason})"}


@dataclass(slots=True)
class Admission:
    """What admission measured and what the request may ask for."""

    request: ChatRequest  # with the output cap filled in or lowered
    input_tokens: int | None  # None: not counted (the size alone proved the request fits)
    output_cap: int | None  # most output tokens the request may produce
    lowered: Lowered | None = None  # the client's output request, lowered to fit

    def headers(self) -> dict[str, str]:
        return self.lowered.header() if self.lowered is not None else {}


def _texts(request: ChatRequest) -> Iterator[str]:
    for message in request.messages:
        yield message.role
        if isinstance(message.content, str):
            yield message.content
        elif message.content:
            for part in message.content:
                if not isinstance(part, ImagePart | RedactedReasoningPart):  # opaque: counted by its upstream
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
    """Checks a request against a model's limits; one per app. ``margin`` and ``policy`` are the
    proxy-wide defaults (proxy.yaml ``limits:``) of models whose limits set none."""

    def __init__(self, counter: TokenCounter, *, margin: float = 0.0, policy: str = "clamp") -> None:
        self.counter = counter
        self.margin = margin
        self.policy = policy
        self.upstream_counts = UpstreamCounts()
        self._countings: dict[tuple[str, str], tuple[ModelConfig | None, Counting]] = {}

    def counting(self, label: str, upstream_model: str, config: ModelConfig | None, connector: object) -> Counting:
        """The counting of one route: its tokenizer, margin and output policy, and its backend's count
        (remembered per route: configurations do not change under a running app)."""
        found = self._countings.get((label, upstream_model))
        if found is not None and found[0] is config:
            return found[1]
        configured = config.tokenizer if config else None
        limits = config.limits if config else Limits()
        tokenizer = tokenizer_for(upstream_model, configured)
        upstream = _upstream_call(connector, upstream_model, label) if tokenizer == UPSTREAM else None
        margin = limits.token_count_margin if limits.token_count_margin is not None else self.margin
        counting = Counting(label, tokenizer, local_tokenizer(upstream_model, configured), margin,
                            limits.output_policy or self.policy, upstream)
        if len(self._countings) > 4096:
            self._countings.clear()
        self._countings[(label, upstream_model)] = (config, counting)
        return counting

    async def count(self, request: ChatRequest, tokenizer: str, stop_above: int | None = None) -> int:
        """Input tokens of ``request`` counted locally (stops early far past ``stop_above``)."""
        counter = self.counter
        if not counter.loaded(tokenizer):
            await asyncio.to_thread(counter.load, tokenizer)  # Tekken or a tokenizer.json: seconds, once
        raw = 0
        texts = list(_texts(request))
        remaining = sum(len(t) for t in texts)
        for text in texts:
            remaining -= len(text)
            found = counter.lookup(text, tokenizer)
            if found is None:
                if len(text) >= OFFLOAD_CHARS:
                    found = await asyncio.to_thread(counter.compute, text, tokenizer)
                else:
                    found = counter.compute(text, tokenizer)
                counter.store(text, tokenizer, found)
            raw += found
            if stop_above is not None and remaining > GIVE_UP_CHARS and raw > stop_above:
                break
        return raw + _fixed_tokens(request)

    async def measure(self, request: ChatRequest, counting: Counting, stop_above: int | None = None) -> int:
        """Input tokens of ``request`` as the route counts them: the backend's count with
        ``tokenizer: upstream`` (memoised; the local count when it cannot answer), else the local one."""
        if counting.upstream is not None:
            found = await self.upstream_counts.count(counting.label, _content_key(request), request,
                                                     counting.upstream, counting.local)
            if found is not None:
                return found.tokens if found.framed else found.tokens + _fixed_tokens(request)
        return await self.count(request, counting.local, stop_above)

    async def admit(
        self, request: ChatRequest, model: str, limits: Limits, counting: Counting, *, need_count: bool
    ) -> Admission:
        """Raise LimitExceeded, or return the admission; ``need_count`` forces a count."""
        requested = request.max_output_tokens
        planned, lowered = requested, None
        ceiling = limits.max_output_tokens
        if ceiling is not None and requested is not None and requested > ceiling:
            if counting.policy == "reject":
                raise _exceeded("output_limit_exceeded", "Output token limit exceeded", model, ceiling, requested)
            planned, lowered = ceiling, "max_output_tokens"
        window = limits.context_window
        soft_cap = _input_cap(limits, planned if planned is not None else ceiling)
        tokens: int | None = None
        cap = planned if planned is not None else ceiling
        if need_count and counting.upstream is None:
            limits_need = True  # counted locally anyway: no size check first
        else:
            limits_need = (window is not None and planned is None) or (
                soft_cap is not None and not self._fits_by_size(request, soft_cap, counting.margin))
        if need_count or limits_need:
            hard_cap = _input_cap(limits, planned if counting.policy == "reject" else None)
            if counting.upstream is None:
                tokens = await self.count(request, counting.local, stop_above=hard_cap)
            else:  # only limits ask the backend: a count that only a rate limit needs is local
                tokens = await (self.measure(request, counting, stop_above=hard_cap) if limits_need
                                else self.count(request, counting.local))
            padded = _pad(tokens, counting.margin)
            _check_input(tokens, padded, requested if counting.policy == "reject" else None, model, limits,
                         margin=counting.margin)
            if window is not None and (cap is None or padded + cap > window):
                cap = window - padded  # what the window leaves after the input
                if planned is not None:
                    lowered = "context_window"
        if lowered is not None and cap is not None and requested is not None:
            return Admission(_with_output(request, cap), tokens, cap, Lowered(requested, cap, lowered))
        if requested is None and cap is not None:
            request = request.with_parameters({"max_tokens": cap})
        return Admission(request, tokens, cap)

    @staticmethod
    def _fits_by_size(request: ChatRequest, cap: int, margin: float) -> bool:
        fixed = _fixed_tokens(request)
        texts = list(_texts(request))
        if _pad(4 * sum(len(t) for t in texts) + fixed, margin) <= cap:
            return True  # four bytes a character at most, one byte a token at least
        return _pad(sum(len(t.encode()) for t in texts) + fixed, margin) <= cap


def _content_key(request: ChatRequest) -> int:
    """What the backend's count of ``request`` depends on, hashed (strings cache their hashes: the
    history resent every turn costs little)."""
    images = tuple(part.url for message in request.messages if message.content and not isinstance(message.content, str)
                   for part in message.content if isinstance(part, ImagePart))
    return hash((_fixed_tokens(request), tuple(_texts(request)), images))


def _upstream_call(connector: object, upstream_model: str, label: str) -> UpstreamCall:
    if not isinstance(connector, CountsTokens):
        return unsupported(label.split(":", 1)[0])
    counts = connector

    async def call(request: ChatRequest) -> UpstreamTokens:
        tokens, framed = await counts.count_tokens(request, upstream_model)
        return UpstreamTokens(tokens, framed)

    return call


def _pad(tokens: int, margin: float) -> int:
    """A count with the operator's margin added (rounded up); the count itself without one."""
    return math.ceil(tokens * (1 + margin)) if margin else tokens


def _with_output(request: ChatRequest, cap: int) -> ChatRequest:
    """The request with each output limit the client set above ``cap`` lowered to it."""
    changed = {key: cap for key in ("max_completion_tokens", "max_tokens")
               if isinstance(request.parameters.get(key), int) and request.parameters[key] > cap}
    return request.evolve(parameters={**request.parameters, **changed})


def _input_cap(limits: Limits, planned_output: int | None) -> int | None:
    """The most input tokens that fit: max_input_tokens, and the window less the planned output
    (less one token when none is planned: an answer needs room for one)."""
    caps = []
    if limits.max_input_tokens is not None:
        caps.append(limits.max_input_tokens)
    if limits.context_window is not None:
        caps.append(limits.context_window - (planned_output or 1))
    return min(caps) if caps else None


def _check_input(tokens: int, padded: int, requested: int | None, model: str, limits: Limits, *,
                 margin: float) -> None:
    """Refuse input over max_input_tokens, input that leaves no room in the window, and (``requested``,
    with output_policy: reject) input plus the client's output over the window."""
    if limits.max_input_tokens is not None and padded > limits.max_input_tokens:
        raise _exceeded("input_limit_exceeded", "Input token limit exceeded", model, limits.max_input_tokens,
                        tokens, note=_margin_note(tokens, padded, margin))
    window = limits.context_window
    if window is not None and padded + (requested or 1) > window:
        raise _exceeded("context_window_exceeded", "Context window exceeded", model, window,
                        tokens + (requested or 0), note=_margin_note(tokens, padded, margin))


def percent(margin: float) -> str:
    """0.1 -> '10%', 0.125 -> '12.5%'."""
    return f"{round(margin * 100, 2):g}%"


def _margin_note(tokens: int, padded: int, margin: float) -> str:
    if not margin:
        return ""
    return f" ({tokens} input tokens counted, {padded} with the {percent(margin)} token_count_margin)"


def _exceeded(code: str, message: str, model: str, limit: int, measured: int, *, note: str = "") -> LimitExceeded:
    return LimitExceeded(message + note, code=code,
                         param="messages" if code != "output_limit_exceeded" else "max_tokens",
                         details={"model": model, "limit": limit, "measured": measured})
