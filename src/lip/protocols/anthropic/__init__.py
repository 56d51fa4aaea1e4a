"""Anthropic Messages: its client routes (the registry reads ``CLIENT``); ``/v1/messages…`` and
``/anthropic/…`` paths outside them get its errors."""

from lip.protocols.routes import CHAT, COUNT, ClientRoute, ClientSide, Listing

CLIENT = ClientSide(
    routes=(
        ClientRoute("POST", "/v1/messages", CHAT),
        ClientRoute("POST", "/anthropic/v1/messages", CHAT),
        ClientRoute("POST", "/v1/messages/count_tokens", COUNT),
        ClientRoute("POST", "/anthropic/v1/messages/count_tokens", COUNT),
    ),
    listing=Listing("anthropic", "Anthropic Messages",
                    ("POST /v1/messages", "POST /v1/messages/count_tokens", "POST /anthropic/v1/messages",
                     "POST /anthropic/v1/messages/count_tokens")),
    prefixes=("/v1/messages", "/anthropic/"),
)
