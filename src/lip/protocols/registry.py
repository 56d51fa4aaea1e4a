"""The protocols the proxy speaks, in one table: each protocol's name, its client surface and routes,
its upstream codec and traits.

A backend's ``protocol:`` (backend.yaml, or its preset) is looked up here for its codec; the front
door builds its route table from the surfaces' declarations (``client``: each folder's
``__init__.py``). Adding a protocol is one folder under ``lip/protocols/`` and one line in ``PROTOCOLS``;
a client surface that no backend speaks (say ``/v1/completions``) is one with no codec, an upstream
protocol no client speaks (say Ollama's native API) one with no surface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from lip.protocols import anthropic, gemini, openai_chat, openai_responses
from lip.protocols.anthropic.codec import AnthropicCodec
from lip.protocols.anthropic.surface import AnthropicMessages
from lip.protocols.base import Surface
from lip.protocols.codecs import Codec
from lip.protocols.gemini.codec import GeminiCodec
from lip.protocols.gemini.surface import GeminiGenerate
from lip.protocols.openai_chat.codec import OpenAICodec
from lip.protocols.openai_chat.surface import OpenAIChat
from lip.protocols.openai_responses.codec import ResponsesCodec
from lip.protocols.openai_responses.surface import OpenAIResponses, StoresResponses
from lip.protocols.routes import ClientSide


@dataclass(frozen=True, slots=True)
class SurfaceNeeds:
    """What a client surface may be built with: the process's shared stores."""

    responses: StoresResponses  # stored Responses, for previous_response_id and GET /v1/responses/{id}


@dataclass(frozen=True, slots=True)
class Protocol:
    """One protocol: how its clients are served and how a backend of it is called."""

    name: str  # as backend.yaml's ``protocol:`` says
    codec: Callable[[], Codec] | None  # None: a client surface only (no backend speaks it)
    surface: Callable[[SurfaceNeeds], Surface] | None  # None (and no client): an upstream protocol only
    client: ClientSide | None  # its client routes
    system: str  # OpenTelemetry's gen_ai.system for its upstream calls
    prefills: bool = False  # its models continue a final assistant message unless backend.yaml says otherwise

    def __post_init__(self) -> None:
        if (self.surface is None) != (self.client is None):
            raise ValueError(f"protocol {self.name!r}: a client surface needs its routes, and routes a surface")
        if self.codec is None and self.surface is None:
            raise ValueError(f"protocol {self.name!r}: neither a codec nor a client surface")

    def serves(self, needs: SurfaceNeeds) -> tuple[ClientSide, Surface] | None:
        """Its client routes and surface; None for a protocol only backends speak."""
        if self.client is None or self.surface is None:
            return None
        return self.client, self.surface(needs)


PROTOCOLS: Mapping[str, Protocol] = MappingProxyType({
    p.name: p for p in (
        Protocol("openai", OpenAICodec, lambda _: OpenAIChat(), openai_chat.CLIENT, system="openai"),
        Protocol("openai-responses", ResponsesCodec, lambda needs: OpenAIResponses(needs.responses),
                 openai_responses.CLIENT, system="openai"),
        Protocol("anthropic", AnthropicCodec, lambda _: AnthropicMessages(), anthropic.CLIENT, system="anthropic",
                 prefills=True),
        Protocol("gemini", GeminiCodec, lambda _: GeminiGenerate(), gemini.CLIENT, system="gcp.gemini"),
    )
})


UPSTREAMS = tuple(name for name, protocol in PROTOCOLS.items() if protocol.codec is not None)  # backend.yaml's


def codec_for(protocol: str) -> Codec | None:
    """A new codec for backends of ``protocol``; None for a protocol no backend can speak."""
    entry = PROTOCOLS.get(protocol)
    return entry.codec() if entry is not None and entry.codec is not None else None
