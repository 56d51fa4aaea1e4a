"""Mid-stream continuation: a stream that fails after bytes reached the client is finished by another attempt.

``continuing`` wraps a started call's events. It notes what reached the client (a ``Transcript`` of
text, reasoning and tool-call segments). When the stream fails, ``reopen`` (the router) starts a
continuation on the next route of the chain (or the same route again) in one of two modes:

- **prefill**: the text sent so far is the last assistant message and the upstream continues it;
  its text is appended (a trailing blank, which prefills may not end with, is not sent twice);
- **restart**: the original request again; its answer is compared with what was sent (``Matcher``)
  and only what comes after that part is passed on. An answer that does not begin with it, or
  that ends before it, ends the client's stream with the error event naming the original failure.

The client sees one answer: one start, one finish, one usage (the sum of every attempt's usage,
estimated where an upstream reported none: every attempt is billed). Tool-call arguments are
never spliced: a stream whose tool call was cut is continued only by a restart that reproduces
the call exactly (and then completes it). Each continuation is noted as a ``Handover``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace

from lip.core.errors import ProxyError
from lip.core.model import (
    ChatRequest,
    Finish,
    Message,
    ReasoningDelta,
    RedactedReasoningPart,
    ResponseStart,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)

PREFILL = "prefill"
RESTART = "restart"


@dataclass(frozen=True, slots=True)
class Handover:
    """One continuation: which route's stream failed, how far the answer had got, who took over."""

    label: str  # backend:model whose stream failed
    backend: str
    model: str
    at: int  # characters of the answer (text, reasoning, tool arguments) that had reached the client
    code: str  # the failure's code (upstream_incomplete, upstream_timeout, upstream_malformed, ...)
    usage: Usage  # what the failed attempt used (estimated when its upstream reported none)
    to_label: str
    to_backend: str
    to_model: str
    to_upstream_model: str
    mode: str  # PREFILL or RESTART


@dataclass(slots=True)
class Segment:
    kind: str  # "text", "reasoning" or "call"
    index: int | None = None  # a tool call's index
    name: str | None = None
    parts: list[str] = field(default_factory=list)
    signed: bool = False  # reasoning: its signature reached the client

    @property
    def text(self) -> str:
        return "".join(self.parts)


class Transcript:
    """What of the answer reached the client, in order."""

    __slots__ = ("chars", "finished", "segments")

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.chars = 0
        self.finished = False

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self._extend("text", None, None, event.text)
        elif isinstance(event, ToolCallDelta):
            self._extend("call", event.index, event.name, event.arguments)
        elif isinstance(event, ReasoningDelta):
            segment = self._extend("reasoning", None, None, event.text)
            if segment is not None and event.signature is not None:
                segment.signed = True
        elif isinstance(event, RedactedReasoningPart):  # a whole block, as a signature alone would close one
            segment = self._extend("reasoning", None, None, "")
            if segment is not None:
                segment.signed = True
        elif isinstance(event, Finish):
            self.finished = True

    def _extend(self, kind: str, index: int | None, name: str | None, text: str) -> Segment | None:
        last = self.segments[-1] if self.segments else None
        if last is None or last.kind != kind or last.index != index:
            if not text and name is None and kind != "reasoning":
                return last
            last = Segment(kind, index, name)
            self.segments.append(last)
        if text:
            last.parts.append(text)
            self.chars += len(text)
        return last

    @property
    def text_only(self) -> bool:
        return all(s.kind == "text" for s in self.segments)

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments if s.kind == "text")

    @property
    def used_indices(self) -> set[int]:
        return {s.index for s in self.segments if s.index is not None}


def prefill_request(request: ChatRequest, sent: Transcript) -> ChatRequest | None:
    """The request asking the upstream to continue ``sent`` (None: nothing, or more than text, was sent).

    Trailing blanks are left out (Anthropic rejects a prefill that ends with one); ``PrefillJoin``
    drops them from the start of the continuation instead.
    """
    text = sent.text.rstrip()
    if not sent.segments or not sent.text_only or not text:
        return None
    return request.evolve(messages=(*request.messages, Message("assistant", text)))


class Diverged(Exception):
    """The restarted answer does not continue what the client already has."""


class PrefillJoin:
    """The continuation of a prefill as the client should get it.

    A blank the prefill left out is not sent twice. A model that ignored the prefill and started
    its answer again is caught: while the continuation repeats the beginning of what was sent it
    is held back, and if it repeats all of it only what follows is passed on.
    """

    __slots__ = ("_blank", "_held", "_sent")

    def __init__(self, sent: Transcript) -> None:
        text = sent.text
        self._blank = text[len(text.rstrip()):]
        self._sent: str | None = text
        self._held: list[str] = []

    def feed(self, event: StreamEvent) -> list[StreamEvent]:
        if self._sent is None:
            return [event]
        if isinstance(event, TextDelta):
            if not event.text:
                return []
            self._held.append(event.text)
            joined = "".join(self._held)
            if self._sent.startswith(joined):
                return []  # perhaps the answer again from its start: wait and see
            if joined.startswith(self._sent):  # it was: pass on only what is new
                rest, self._sent = joined[len(self._sent):], None
                return [TextDelta(rest)] if rest else []
            return self._flush()
        return [*self._flush(), event]

    def _flush(self) -> list[StreamEvent]:
        """What was held back, without the blank the client already has."""
        self._sent = None
        text = "".join(self._held)
        if self._blank and text.startswith(self._blank):
            text = text[len(self._blank):]
        return [TextDelta(text)] if text else []


class Matcher:
    """Compares a restarted answer with what was sent; passes on only what comes after it."""

    __slots__ = ("_expected", "_map", "_offset", "_pos", "_used", "passing")

    def __init__(self, sent: Transcript) -> None:
        self._expected = [replace(s, parts=[s.text]) for s in sent.segments]
        self._pos = 0
        self._offset = 0
        self._map: dict[int, int] = {}  # the restart's tool-call index -> the client's
        self._used = sent.used_indices
        self.passing = not self._expected

    def feed(self, event: StreamEvent) -> StreamEvent | None:
        """The event to pass on (None: it repeats what was sent); raises Diverged."""
        if self.passing:
            return self._remap(event)
        if isinstance(event, Finish):
            if self._at_end():
                self.passing = True
                return event
            raise Diverged("the restarted answer ended before the part already sent")
        kind, index, name, text = _shape(event)
        if kind is None:
            return None
        segment = self._expected[self._pos]
        if kind != segment.kind or (kind == "call" and not self._same_call(segment, index, name)):
            if self._offset == len(segment.text) and self._pos + 1 < len(self._expected):
                self._pos, self._offset = self._pos + 1, 0
                return self.feed(event)
            if self._at_end():
                self.passing = True
                return self._remap(event)
            raise Diverged("the restarted answer differs from the part already sent")
        if _signs(event) and not text:
            if self._at_end() and not segment.signed:
                self.passing = True
                return event
            return None
        rest = segment.text[self._offset:]
        if rest.startswith(text):
            self._offset += len(text)
            return None
        if not text.startswith(rest) or self._pos + 1 < len(self._expected):
            raise Diverged("the restarted answer differs from the part already sent")
        self._offset = len(segment.text)
        self.passing = True
        return _with_text(event, text[len(rest):], segment.index)

    def _same_call(self, segment: Segment, index: int | None, name: str | None) -> bool:
        assert index is not None and segment.index is not None
        mapped = self._map.setdefault(index, segment.index)
        return mapped == segment.index and (name is None or name == segment.name)

    def _at_end(self) -> bool:
        return self._pos == len(self._expected) - 1 and self._offset == len(self._expected[-1].text)

    def _remap(self, event: StreamEvent) -> StreamEvent | None:
        if not isinstance(event, ToolCallDelta):
            return event
        client = self._map.get(event.index)
        if client is None:
            client = event.index
            while client in self._used:
                client += 1
            self._map[event.index] = client
            self._used.add(client)
        return event if client == event.index else replace(event, index=client)


def _shape(event: StreamEvent) -> tuple[str | None, int | None, str | None, str]:
    if isinstance(event, TextDelta):
        return ("text", None, None, event.text) if event.text else (None, None, None, "")
    if isinstance(event, ReasoningDelta):
        return ("reasoning", None, None, event.text) if event.text or event.signature is not None \
            else (None, None, None, "")
    if isinstance(event, ToolCallDelta):
        return "call", event.index, event.name, event.arguments
    if isinstance(event, RedactedReasoningPart):
        return "reasoning", None, None, ""
    return None, None, None, ""


def _signs(event: StreamEvent) -> bool:
    """The event completes a reasoning block: its signature, or a redacted block (which comes whole)."""
    if isinstance(event, ReasoningDelta):
        return event.signature is not None
    return isinstance(event, RedactedReasoningPart)


def _with_text(event: StreamEvent, text: str, index: int | None) -> StreamEvent | None:
    if isinstance(event, ToolCallDelta):  # the rest of a call the client has begun: no id or name again
        return ToolCallDelta(index if index is not None else event.index, text) if text else None
    if isinstance(event, ReasoningDelta):
        return ReasoningDelta(text, event.signature) if text or event.signature is not None else None
    return TextDelta(text) if text else None


def add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens, output_tokens=a.output_tokens + b.output_tokens,
        cached_tokens=a.cached_tokens + b.cached_tokens, estimated=a.estimated or b.estimated,
        cache_write_tokens=a.cache_write_tokens + b.cache_write_tokens,
        reasoning_tokens=a.reasoning_tokens + b.reasoning_tokens,
    )


@dataclass(slots=True)
class Attempt:
    """One upstream stream taking part in the answer."""

    label: str
    backend: str
    model: str
    upstream_model: str
    events: AsyncIterator[StreamEvent]
    input_tokens: int | None  # the proxy's count of its input, when known
    mode: str | None = None  # None (the first attempt), PREFILL or RESTART
    request: ChatRequest | None = None  # as it was sent upstream
    position: int = 0  # its route's place in the failover chain
    usage: Usage | None = None  # what its upstream reported
    chars: int = 0  # output characters its upstream produced

    def spent(self) -> Usage:
        """Its usage, estimated (input as counted, output at 4 characters a token) when none was reported."""
        if self.usage is not None:
            return self.usage
        return Usage(input_tokens=self.input_tokens or 0, output_tokens=math.ceil(self.chars / 4), estimated=True)


# reopen(failed attempt, what was sent, the failure) -> the next attempt, or None when none can continue
Reopen = Callable[[Attempt, Transcript, ProxyError], Awaitable[Attempt | None]]


async def continuing(
    first: Attempt, reopen: Reopen, limit: int, handovers: list[Handover]
) -> AsyncIterator[StreamEvent]:
    """``first``'s events, continued by ``reopen`` up to ``limit`` times when the stream fails."""
    sent = Transcript()
    attempt = first
    earlier: Usage | None = None  # the usage of the attempts that failed
    original: ProxyError | None = None
    while True:
        relay = _Relay(attempt, sent, earlier)
        events = attempt.events
        try:
            async for received in events:
                for event in relay.feed(received):
                    yield event
            return
        except Diverged as why:
            raise _unrescued(original or _error(attempt), str(why)) from None
        except ProxyError as error:
            original = original or error
            if sent.finished:  # the answer is complete; only its usage was lost on the way
                yield UsageReport(add_usage(earlier, attempt.spent()) if earlier else attempt.spent())
                return
            following = await reopen(attempt, sent, error) if len(handovers) < limit else None
            if following is None:
                raise
            spent = attempt.spent()
            earlier = add_usage(earlier, spent) if earlier else spent
            handovers.append(Handover(
                attempt.label, attempt.backend, attempt.model, sent.chars, error.code, spent,
                following.label, following.backend, following.model, following.upstream_model,
                following.mode or RESTART))
            attempt = following
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()  # an attempt's connection is let go as soon as it is done with


class _Relay:
    """One attempt's events as the client should see them, noted in the transcript."""

    __slots__ = ("_attempt", "_earlier", "_join", "_matcher", "_sent")

    def __init__(self, attempt: Attempt, sent: Transcript, earlier: Usage | None) -> None:
        self._attempt, self._sent, self._earlier = attempt, sent, earlier
        self._matcher = Matcher(sent) if attempt.mode == RESTART else None
        self._join = PrefillJoin(sent) if attempt.mode == PREFILL else None

    def feed(self, event: StreamEvent) -> list[StreamEvent]:
        attempt = self._attempt
        if isinstance(event, UsageReport):
            attempt.usage = event.usage
            return [UsageReport(add_usage(self._earlier, event.usage)) if self._earlier else event]
        if isinstance(event, TextDelta | ReasoningDelta):
            attempt.chars += len(event.text)
        elif isinstance(event, ToolCallDelta):
            attempt.chars += len(event.arguments)
        if attempt.mode is None:
            self._sent.add(event)
            return [event]
        if isinstance(event, ResponseStart):
            return []  # the client has its start
        if self._matcher is not None:
            one = self._matcher.feed(event)
            out = [] if one is None else [one]
        else:
            out = self._join.feed(event) if self._join is not None else [event]
        for passed in out:
            self._sent.add(passed)
        return out


def _error(attempt: Attempt) -> ProxyError:
    return ProxyError(f"the stream of {attempt.label} failed", status=502, code="upstream_incomplete")


def _unrescued(original: ProxyError, why: str) -> ProxyError:
    """The original failure, saying why it could not be continued."""
    return ProxyError(f"{original.message} (the answer could not be continued: {why})",
                      code=original.code, status=original.status, origin=original.origin)
