"""Gemini: its client routes at every API version the SDKs use (the registry reads ``CLIENT``).

google-genai calls v1 by default, v1beta and v1alpha on request; LiteLLM with a custom base no
prefix at all: each as ``{prefix}{model}:{method}``. ``GET /v1/models`` and ``GET /models`` are
shared with OpenAI's clients; a request with Google's key header, its SDK's header or ``?key=``
is Gemini's. Paths under ``/v1beta/`` and ``/v1alpha/``, any ``…/models/{model}:{method}`` and any
path called with Google's headers get Gemini's errors.
"""

from lip.protocols.routes import CHAT, COUNT, MODELS, ClientRoute, ClientSide, Listing, colon_route

VERSIONS = ("/v1beta", "/v1", "/v1alpha", "")  # in front of /models/
PREFIXES = tuple(f"{version}/models/" for version in VERSIONS)

CLIENT = ClientSide(
    routes=(
        *(route for prefix in PREFIXES for route in (
            colon_route(prefix, "generateContent", CHAT),
            colon_route(prefix, "streamGenerateContent", CHAT),
            colon_route(prefix, "countTokens", COUNT),
        )),
        *(ClientRoute("GET", f"{version}/models", MODELS) for version in VERSIONS),
    ),
    listing=Listing("gemini", "Gemini (also at /v1, /v1alpha and no prefix)",
                    ("POST /v1beta/models/{model}:generateContent", "POST /v1beta/models/{model}:streamGenerateContent",
                     "POST /v1beta/models/{model}:countTokens", "GET /v1beta/models")),
    prefixes=("/v1beta/", "/v1alpha/"),
    client_headers=("x-goog-api-key", "x-goog-api-client"),
    client_query=("key",),
)
