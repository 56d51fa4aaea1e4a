"""OpenAI Responses: its client routes (the registry reads ``CLIENT``)."""

from lip.protocols.routes import CHAT, STORED, ClientRoute, ClientSide, Listing

CLIENT = ClientSide(
    routes=(
        ClientRoute("POST", "/v1/responses", CHAT),
        ClientRoute("GET", "/v1/responses/{id}", STORED),
        ClientRoute("DELETE", "/v1/responses/{id}", STORED),
    ),
    listing=Listing("openai_responses", "OpenAI Responses",
                    ("POST /v1/responses", "GET /v1/responses/{id}", "DELETE /v1/responses/{id}")),
)
