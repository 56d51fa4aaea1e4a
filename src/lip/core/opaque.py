"""A provider's opaque state (ProviderState) in the tool call ids a client of another protocol sees.

Such a client has no place for the state but echoes the id back (in its next request, with the tool's
result), so the state rides there: ``<id>__thought__<data as base64url without padding>``, which stays
in ``[A-Za-z0-9_-]``, what every protocol's tool call ids accept. The provider's own protocol reads it
back (``unfold_id``) when it renders the next request for its upstream. ``for_client`` also folds
another protocol's redacted reasoning (``lip.core.redacted``), in the same one pass over the events.

A reasoning signature of another protocol rides in the client's own signature field (Anthropic's
``signature``, Gemini's ``thoughtSignature``, Responses' ``encrypted_content``) as
``lipSignature<base64 of "<protocol>:<data>">`` (``fold_signature``): a valid base64 string, as a
``thoughtSignature`` must be (Google's SDK reads it as bytes, and may give it back base64url), that
names its protocol. The client's surface renders it so (``signature_text``); its parser reads it back
(``read_reasoning``), and a plain signature as one of the client's own protocol, the only kind it is
ever given plain.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator

from lip.core import redacted
from lip.core.model import ProviderState, ReasoningPart, RedactedReasoningPart, StreamEvent, ToolCallDelta

MARK = "__thought__"
SIGNATURE_MARK = "lipSignature"  # twelve base64 characters, neither "+" nor "/": the same in base64url


def fold_id(call_id: str, state: ProviderState | None) -> str:
    """``call_id`` carrying ``state``'s data (the id itself when there is none)."""
    if state is None or not state.data:
        return call_id
    return call_id + MARK + state.data.replace("+", "-").replace("/", "_").rstrip("=")


def unfold_id(call_id: str) -> tuple[str, str | None]:
    """(the id, the state's data in base64) of an id ``fold_id`` made; ``(call_id, None)`` for any other."""
    base, mark, encoded = call_id.partition(MARK)
    if not mark or not encoded:
        return call_id, None
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        return call_id, None
    return base, padded.replace("-", "+").replace("_", "/")


def fold_signature(state: ProviderState) -> str:
    """A signature as a client of another protocol carries it."""
    return SIGNATURE_MARK + base64.b64encode(f"{state.protocol}:{state.data}".encode()).decode("ascii")


def unfold_signature(text: str) -> ProviderState | None:
    """The signature ``fold_signature`` made ``text`` of; None for any other text."""
    if not text.startswith(SIGNATURE_MARK):
        return None
    encoded = text[len(SIGNATURE_MARK):].replace("-", "+").replace("_", "/")
    try:
        payload = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode()
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    protocol, colon, data = payload.partition(":")
    return ProviderState(protocol, data) if colon and protocol and data else None


def signature_text(state: ProviderState, protocol: str) -> str:
    """A signature as a client speaking ``protocol`` receives it: its own as it came, another's folded."""
    return state.data if state.protocol == protocol else fold_signature(state)


def read_signature(text: str, protocol: str) -> ProviderState:
    """A signature a client speaking ``protocol`` sent back: a folded one is its protocol's, the redacted
    reasoning given before signatures had a protocol is ``lip.core.redacted.LEGACY``'s, any other ours."""
    folded = unfold_signature(text)
    if folded is not None:
        return folded
    return ProviderState(redacted.LEGACY if text.startswith(redacted.MARK) else protocol, text)


def read_reasoning(text: str, signature: str | None, protocol: str) -> ReasoningPart | RedactedReasoningPart:
    """Reasoning a client speaking ``protocol`` sent back, with its signature (``read_signature``): the
    redacted reasoning it carries (``lip.core.redacted``), or a reasoning part."""
    return redacted.unfold(text, read_signature(signature, protocol) if signature else None)


def in_id(event: StreamEvent, protocol: str) -> StreamEvent:
    """``event`` as a client speaking ``protocol`` receives it: another protocol's state of a tool call
    rides in the call's id (``fold_id``); a state of ``protocol`` itself stays where its surface renders it."""
    if not isinstance(event, ToolCallDelta) or event.signature is None or not event.id \
            or event.signature.protocol == protocol:
        return event
    return ToolCallDelta(event.index, event.arguments, fold_id(event.id, event.signature), event.name)


async def for_client(events: AsyncIterator[StreamEvent], protocol: str) -> AsyncIterator[StreamEvent]:
    """``events`` as a client speaking ``protocol`` receives them: another protocol's state of a tool call
    in the call's id (``in_id``), its redacted reasoning as a reasoning signature (``lip.core.redacted``),
    which the client's surface folds as it does any signature of another protocol (``signature_text``)."""
    async for event in events:
        if isinstance(event, RedactedReasoningPart):
            yield event if event.protocol == protocol else redacted.fold(event)
        else:
            yield in_id(event, protocol)
