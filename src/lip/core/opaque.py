"""A provider's opaque state (ProviderState) in the tool call ids a client of another protocol sees.

Such a client has no place for the state but echoes the id back (in its next request, with the tool's
result), so the state rides there: ``<id>__thought__<data as base64url without padding>``, which stays
in ``[A-Za-z0-9_-]``, what every protocol's tool call ids accept. The provider's own protocol reads it
back (``unfold_id``) when it renders the next request for its upstream. ``for_client`` also folds
another protocol's redacted reasoning (``lip.core.redacted``), in the same one pass over the events.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator

from lip.core.model import ProviderState, RedactedReasoningPart, StreamEvent, ToolCallDelta
from lip.core.redacted import fold

MARK = "__thought__"


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


def in_id(event: StreamEvent, protocol: str) -> StreamEvent:
    """``event`` as a client speaking ``protocol`` receives it: another protocol's state of a tool call
    rides in the call's id (``fold_id``); a state of ``protocol`` itself stays where its surface renders it."""
    if not isinstance(event, ToolCallDelta) or event.signature is None or not event.id \
            or event.signature.protocol == protocol:
        return event
    return ToolCallDelta(event.index, event.arguments, fold_id(event.id, event.signature), event.name)


async def for_client(events: AsyncIterator[StreamEvent], protocol: str) -> AsyncIterator[StreamEvent]:
    """``events`` as a client speaking ``protocol`` receives them: another protocol's state of a tool call
    in the call's id (``in_id``), its redacted reasoning in a reasoning signature (``lip.core.redacted``)."""
    async for event in events:
        if isinstance(event, RedactedReasoningPart):
            yield event if event.protocol == protocol else fold(event)
        else:
            yield in_id(event, protocol)
