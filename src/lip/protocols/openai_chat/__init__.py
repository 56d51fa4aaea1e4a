"""OpenAI Chat Completions: its client routes (the registry reads ``CLIENT``); its errors are the fallback."""

from lip.protocols.routes import CHAT, MODELS, ClientRoute, ClientSide

CLIENT = ClientSide(
    routes=(
        ClientRoute("POST", "/v1/chat/completions", CHAT),
        ClientRoute("POST", "/chat/completions", CHAT),
        ClientRoute("GET", "/v1/models", MODELS),  # shared with Gemini's clients (see gemini.CLIENT)
        ClientRoute("GET", "/models", MODELS),
    ),
    fallback=True,
)
