"""The canonical request and event stream that every frontend and backend translates to and from.

Instances are immutable by convention: nothing mutates a request or event after it is built;
``dataclasses.replace`` makes a changed copy (each retry works on the original request).
Mappings held here (``parameters``, ``extensions``, tool schemas) are never mutated either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

EMPTY: Mapping[str, Any] = MappingProxyType({})

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    # A prompt-caching breakpoint on this block as the client set it ({"type": "ephemeral"}, ...):
    # Anthropic's, also taken by OpenAI-compatible gateways in front of cached models.
    cache_control: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image by URL (``https://`` or a ``data:`` URL)."""

    url: str
    detail: str | None = None
    cache_control: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ReasoningPart:
    """A model's visible reasoning in an earlier assistant turn (Anthropic thinking, a Gemini thought, a
    Responses reasoning item), with its provider's signature (Anthropic's ``signature``, Gemini's
    ``thoughtSignature``, Responses' ``encrypted_content``) as state of the protocol that made it: only
    an upstream of that protocol is given it back."""

    text: str
    signature: ProviderState | None = None


@dataclass(frozen=True, slots=True)
class RedactedReasoningPart:
    """Reasoning a provider gave only encrypted (Anthropic's ``redacted_thinking``): in an earlier assistant
    turn, and as a stream event (such a block comes whole). ``data`` is opaque; only an upstream of
    ``protocol`` receives it, and only a client of ``protocol`` sees it as such (``lip.core.redacted``
    folds it for other clients)."""

    protocol: str
    data: str


@dataclass(frozen=True, slots=True)
class FilePart:
    """A document (a PDF, a text file, ...) given whole: base64 ``data``, a ``url``, or its ``text``.

    ``text`` is set for plain-text documents only ("" for data and URLs); token counting reads it.
    """

    media_type: str
    data: str | None = None  # base64
    url: str | None = None
    text: str = ""
    filename: str | None = None  # the client's title or file name
    cache_control: Mapping[str, Any] | None = None
    spec: Mapping[str, Any] | None = None  # the block as the client sent it in ``protocol``, for that protocol
    protocol: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderPart:
    """A block only its own protocol knows, kept as the client sent it: Anthropic's ``server_tool_use``
    and ``web_search_tool_result``, a Responses ``web_search_call`` item, ... An upstream of
    ``protocol`` receives it unchanged; other upstreams never see it (its ``text``, a plain reading of
    it when it has one, is what token counting sees)."""

    protocol: str
    data: Mapping[str, Any]
    text: str = ""


Part = TextPart | ImagePart | ReasoningPart | RedactedReasoningPart | FilePart | ProviderPart


@dataclass(frozen=True, slots=True)
class ProviderState:
    """State a provider attached to a piece of its answer and wants back with it on the next turn,
    opaque to everyone else (Gemini's ``thoughtSignature`` of a function call, a reasoning signature).
    Only an upstream of ``protocol`` reads ``data``: base64, as providers send opaque bytes in JSON;
    a client of another protocol gets it folded (``lip.core.opaque``)."""

    protocol: str
    data: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, exactly as the model produced it
    signature: ProviderState | None = None  # the provider's state of this call (see ProviderState)


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str | tuple[Part, ...] | None
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    # provider extras of this message, carried through
    extensions: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    cache_control: Mapping[str, Any] | None = None  # a caching breakpoint on the whole message (tool result)

    def text(self) -> str:
        """All text of the message, parts joined by newlines."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the model may call.

    ``kind``: ``function`` (JSON arguments, run by the client); ``custom`` (free-form text input, run
    by the client: Responses' custom tools; canonically a function whose arguments are
    ``{"input": "<text>"}``); ``hosted`` (run by the provider: web search, code execution, ...).
    ``namespace``: the Responses namespace the client grouped the tool in; ``name`` is then
    ``<namespace>__<name>``, the flat name upstreams that only know functions see.
    ``spec``: the tool object as the client sent it in ``protocol`` (hosted tools, custom tools), for
    an upstream of that protocol.
    """

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None  # JSON schema
    extensions: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    cache_control: Mapping[str, Any] | None = None  # a prompt-caching breakpoint after the tools
    kind: str = "function"
    namespace: str | None = None
    spec: Mapping[str, Any] | None = None
    protocol: str | None = None  # the protocol ``spec`` is written in

    @property
    def callable(self) -> bool:
        """Whether the client runs it (a function or custom tool), so upstreams that know only
        functions can be given it."""
        return self.kind != "hosted"


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """``auto`` (model decides), ``none``, ``required`` (some tool), or ``tool`` (the one named)."""

    mode: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat request. ``model`` is the selector as the client sent it.

    ``parameters`` holds every generation parameter the client set, under OpenAI's names
    (temperature, top_p, top_k, max_tokens or max_completion_tokens, stop, seed,
    reasoning_effort, response_format, ...): frontends of other protocols translate their
    names into these, and backends translate them back.
    """

    model: str
    messages: tuple[Message, ...]
    stream: bool = False
    include_usage: bool = False
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parameters: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    # Body keys of the client's protocol that have no canonical meaning, by protocol name
    # ("anthropic": {"metadata": ...}); an upstream of the same protocol receives them.
    extensions: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: EMPTY)
    # Request headers of the client's protocol that an upstream of the same protocol receives, by
    # protocol name ("anthropic": {"anthropic-beta": ...}); other upstreams have no use for them.
    protocol_headers: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: EMPTY)

    @property
    def max_output_tokens(self) -> int | None:
        for key in ("max_completion_tokens", "max_tokens"):
            value = self.parameters.get(key)
            if isinstance(value, int):
                return value
        return None

    def with_parameters(self, defaults: Mapping[str, Any]) -> ChatRequest:
        """A copy in which ``defaults`` fill the parameters the client did not set."""
        missing = {k: v for k, v in defaults.items() if self.parameters.get(k) is None}
        if not missing:
            return self
        if "max_tokens" in missing and self.parameters.get("max_completion_tokens") is not None:
            del missing["max_tokens"]
        return self.evolve(parameters={**self.parameters, **missing})

    def evolve(self, **changes: Any) -> ChatRequest:
        """A copy with ``changes``: ``dataclasses.replace`` without its generic machinery (hot path)."""
        unknown = changes.keys() - _REQUEST_FIELDS
        if unknown:
            raise TypeError(f"ChatRequest has no field(s) {sorted(unknown)}")
        new = object.__new__(ChatRequest)
        for name in _REQUEST_FIELDS:
            object.__setattr__(new, name, changes[name] if name in changes else getattr(self, name))
        return new



_REQUEST_FIELDS = tuple(f.name for f in fields(ChatRequest))
MAX_TOKEN_COUNT = 10**12  # the most tokens one count taken from an upstream may say


def token_count(value: Any, high: int = MAX_TOKEN_COUNT) -> int:
    """A count (tokens, a timestamp, an index) an upstream reported, made sane: 0 unless it is a number,
    clamped to [0, ``high``] (an upstream's 1e29 must not overflow a usage store's integer column nor
    the 64-bit integers a JSON encoder writes)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return 0
    return int(min(max(value, 0), high))

@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0  # every input token: cache reads and writes included
    output_tokens: int = 0  # every output token: reasoning included
    cached_tokens: int = 0  # of the input, read from a prompt cache
    estimated: bool = False
    cache_write_tokens: int = 0  # of the input, written to a prompt cache (Anthropic bills them apart)
    reasoning_tokens: int = 0  # of the output, spent reasoning (OpenAI, Gemini thoughts)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


# ---- the event stream -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResponseStart:
    id: str
    model: str
    created: int


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str
    signature: ProviderState | None = None  # the signature of its reasoning block, when it arrives (ReasoningPart)


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of tool call ``index``; ``id`` and ``name`` come with its first piece."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None
    signature: ProviderState | None = None  # comes with the call's first piece, as its id does


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str  # "stop", "length", "tool_calls", "content_filter" or "error"
    # the upstream's own reason where a client of its protocol needs it back ("anthropic:pause_turn")
    native: str | None = None


@dataclass(frozen=True, slots=True)
class UsageReport:
    usage: Usage


@dataclass(frozen=True, slots=True)
class ProviderItem:
    """A whole output block or item only ``protocol`` knows (a hosted tool's call or result), in
    stream order: a client of that protocol gets it as the upstream sent it, other clients do not."""

    protocol: str
    data: Mapping[str, Any]


StreamEvent = (ResponseStart | TextDelta | ReasoningDelta | RedactedReasoningPart | ToolCallDelta | Finish | UsageReport
               | ProviderItem)


@dataclass(slots=True)
class ChatResponse:
    """A whole answer, collected from an event stream (see ``collect``)."""

    id: str = ""
    model: str = ""
    created: int = 0
    text: str = ""
    reasoning: str = ""
    reasoning_signature: ProviderState | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    native_finish: str | None = None  # Finish.native
    usage: Usage | None = None
    items: list[ProviderItem] = field(default_factory=list)  # in the order they came
    redacted: list[RedactedReasoningPart] = field(default_factory=list)  # in the order they came


class Collector:
    """Folds events into a ChatResponse; tool-call pieces are joined by index."""

    __slots__ = ("_calls", "_reasoning", "_signatures", "_text", "response")

    def __init__(self) -> None:
        self.response = ChatResponse()
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, list[str]] = {}
        self._signatures: dict[int, ProviderState] = {}

    def add(self, event: StreamEvent) -> None:
        r = self.response
        if isinstance(event, TextDelta):
            self._text.append(event.text)
        elif isinstance(event, ToolCallDelta):
            self._add_tool_piece(event)
        elif isinstance(event, ResponseStart):
            r.id, r.model, r.created = event.id, event.model, event.created
        elif isinstance(event, Finish):
            r.finish_reason, r.native_finish = event.reason, event.native
        elif isinstance(event, UsageReport):
            r.usage = event.usage
        elif isinstance(event, ProviderItem):
            r.items.append(event)
        elif isinstance(event, RedactedReasoningPart):
            r.redacted.append(event)
        else:
            self._reasoning.append(event.text)
            if event.signature is not None:
                r.reasoning_signature = event.signature

    def _add_tool_piece(self, event: ToolCallDelta) -> None:
        if event.signature is not None:
            self._signatures[event.index] = event.signature
        pieces = self._calls.get(event.index)
        if pieces is None:
            pieces = self._calls[event.index] = [event.id or f"call_{event.index}", event.name or ""]
        else:
            if event.id:
                pieces[0] = event.id
            if event.name and not pieces[1]:
                pieces[1] = event.name
        pieces.append(event.arguments)

    def result(self) -> ChatResponse:
        r = self.response
        r.text = "".join(self._text)
        r.reasoning = "".join(self._reasoning)
        r.tool_calls = [
            ToolCall(id=p[0], name=p[1], arguments="".join(p[2:]), signature=self._signatures.get(i))
            for i, p in sorted(self._calls.items())
        ]
        return r
