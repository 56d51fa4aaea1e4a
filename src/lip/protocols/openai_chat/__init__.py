"""OpenAI Chat Completions: its client routes (the registry reads ``CLIENT``); its errors are the fallback."""

from lip.protocols.routes import CHAT, MODELS, ClientRoute, ClientSide, Listing

CLIENT = ClientSide(
    routes=(
        ClientRoute("POST", "/v1/chat/completions", CHAT),
        ClientRoute("POST", "/chat/completions", CHAT),
        ClientRoute("GET", "/v1/models", MODELS),  # shared with Gemini's clients (see gemini.CLIENT)
        ClientRoute("GET", "/models", MODELS),
    ),
    listing=Listing("openai_chat", "OpenAI Chat Completions", ("POST /v1/chat/completions",)),
    fallback=True,
)
