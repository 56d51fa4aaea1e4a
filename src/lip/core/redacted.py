"""Redacted reasoning (RedactedReasoningPart) for a client of another protocol: folded into a reasoning
signature, and read back by its own protocol.

Such a client has no place for the part but has one for a reasoning signature (Responses'
``encrypted_content``, Gemini's ``thoughtSignature``), which it sends back with the turn: so the part
rides there as ``redacted_thinking:<data>``, the form the proxy has always given those clients (and
that conversations stored before the part was typed hold). The part's own protocol reads it back
(``unfold``) when it renders the next request for its upstream; every other upstream leaves out
reasoning signatures of other vendors, as it does for any. The edge folds it on the way out
(``lip.core.opaque.for_client``).
"""

from __future__ import annotations

from lip.core.model import ReasoningDelta, ReasoningPart, RedactedReasoningPart

MARK = "redacted_thinking:"


def fold(part: RedactedReasoningPart) -> ReasoningDelta:
    """The part as the reasoning delta a client of another protocol receives: its signature alone."""
    return ReasoningDelta("", MARK + part.data)


def unfold(part: ReasoningPart, protocol: str) -> RedactedReasoningPart | None:
    """The redacted part of ``protocol`` that ``fold`` made this reasoning part of; None for any other."""
    signature = part.signature
    if signature is None or not signature.startswith(MARK):
        return None
    return RedactedReasoningPart(protocol, signature[len(MARK):])

