"""Anthropic Messages: its client routes (the registry reads ``CLIENT``); ``/v1/messages…`` and
``/anthropic/…`` paths outside them get its errors."""

from lip.protocols.routes import CHAT, COUNT, ClientRoute, ClientSide

CLIENT = ClientSide(
    routes=(
        ClientRoute("POST", "/v1/messages", CHAT),
        ClientRoute("POST", "/anthropic/v1/messages", CHAT),
        ClientRoute("POST", "/v1/messages/count_tokens", COUNT),
        ClientRoute("POST", "/anthropic/v1/messages/count_tokens", COUNT),
    ),
    prefixes=("/v1/messages", "/anthropic/"),
)
