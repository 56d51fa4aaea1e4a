"""Redacted reasoning (RedactedReasoningPart) for a client of another protocol: a reasoning signature
of its protocol, and read back as the part.

Such a client has no place for the part but has one for a reasoning signature (Responses'
``encrypted_content``, Gemini's ``thoughtSignature``), which it sends back with the turn: so the part
rides there, as the signature ``redacted_thinking:<data>`` of the part's protocol, which that client's
surface folds like any signature of another protocol (``lip.core.opaque.fold_signature``). Read back
(``unfold``), it is the part again, which only an upstream of its protocol is given. Before signatures
had a protocol, clients got ``redacted_thinking:<data>`` itself, and conversations stored then hold it
as an untagged signature: that form is Anthropic's (the one protocol with redacted reasoning, ``LEGACY``).
The edge folds the part on the way out (``lip.core.opaque.for_client``).
"""

from __future__ import annotations

from lip.core.model import ProviderState, ReasoningDelta, ReasoningPart, RedactedReasoningPart

MARK = "redacted_thinking:"
# The protocol of what was written before signatures had one (a reasoning signature, this fold of redacted
# reasoning): Anthropic's, the one upstream every signature went back to then.
LEGACY = "anthropic"


def fold(part: RedactedReasoningPart) -> ReasoningDelta:
    """The part as the reasoning delta a client of another protocol receives: a signature alone."""
    return ReasoningDelta("", ProviderState(part.protocol, MARK + part.data))


def unfold(text: str, signature: ProviderState | None) -> ReasoningPart | RedactedReasoningPart:
    """Reasoning read back: the redacted part ``fold`` made it of, or the reasoning part it is."""
    if signature is None or not signature.data.startswith(MARK):
        return ReasoningPart(text, signature)
    return RedactedReasoningPart(signature.protocol, signature.data[len(MARK):])
