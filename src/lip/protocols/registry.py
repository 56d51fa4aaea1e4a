"""The protocols the proxy speaks, in one table: each protocol's name, its upstream codec and traits.

A backend's ``protocol:`` (backend.yaml, or its preset) is looked up here; adding a protocol is one
folder under ``lip/protocols/`` and one line in ``PROTOCOLS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from lip.protocols.anthropic.codec import AnthropicCodec
from lip.protocols.codecs import Codec
from lip.protocols.gemini.codec import GeminiCodec
from lip.protocols.openai_chat.codec import OpenAICodec
from lip.protocols.openai_responses.codec import ResponsesCodec


@dataclass(frozen=True, slots=True)
class Protocol:
    """One protocol: how a backend of it is called."""

    name: str  # as backend.yaml's ``protocol:`` says
    codec: Callable[[], Codec]
    system: str  # OpenTelemetry's gen_ai.system for its upstream calls
    prefills: bool = False  # its models continue a final assistant message unless backend.yaml says otherwise


PROTOCOLS: Mapping[str, Protocol] = MappingProxyType({
    p.name: p for p in (
        Protocol("openai", OpenAICodec, system="openai"),
        Protocol("anthropic", AnthropicCodec, system="anthropic", prefills=True),
        Protocol("gemini", GeminiCodec, system="gcp.gemini"),
        Protocol("openai-responses", ResponsesCodec, system="openai"),
    )
})


def codec_for(protocol: str) -> Codec | None:
    """A new codec for backends of ``protocol``; None for a protocol the proxy does not speak."""
    entry = PROTOCOLS.get(protocol)
    return entry.codec() if entry is not None else None
