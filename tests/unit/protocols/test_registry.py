"""lip.protocols.registry: every protocol backend.yaml admits has a codec, and each codec reads its error bodies."""

from __future__ import annotations

import orjson
import pytest

from lip.config.schema import BackendConfig
from lip.edge.index import listings
from lip.protocols.registry import PROTOCOLS, codec_for


def test_every_configurable_protocol_has_a_codec() -> None:
    for name in PROTOCOLS:
        assert codec_for(name) is not None
        config = BackendConfig(backend_type="custom", protocol=name, api_base_url="http://127.0.0.1:9/v1")
        assert config.protocol == name
    assert codec_for("ollama-native") is None
    expected = "unknown protocol 'ollama-native'; expected one of openai, openai-responses, anthropic, gemini"
    with pytest.raises(ValueError, match=expected):
        BackendConfig(backend_type="custom", protocol="ollama-native", api_base_url="http://127.0.0.1:9/v1")


def test_each_codec_reads_its_protocols_error_body() -> None:
    bodies = {
        "openai": {"error": {"message": "bad model", "type": "invalid_request_error", "param": "model",
                             "code": "model_not_found"}},
        "openai-responses": {"error": {"message": "bad model", "code": "model_not_found", "param": "model"}},
        "anthropic": {"type": "error", "error": {"type": "overloaded_error", "message": "bad model"}},
        "gemini": [{"error": {"code": 429, "message": "bad model", "status": "RESOURCE_EXHAUSTED",
                              "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]}}],
    }
    codes = {"openai": "model_not_found", "openai-responses": "model_not_found", "anthropic": "overloaded_error",
             "gemini": "RESOURCE_EXHAUSTED"}
    for name, body in bodies.items():
        codec = codec_for(name)
        assert codec is not None
        fields = codec.error_fields(orjson.dumps(body))
        assert fields.message == "bad model"
        assert fields.code == codes[name]
        assert fields.retry_after == (7.0 if name == "gemini" else None)
    openai = codec_for("openai")
    assert openai is not None
    assert openai.error_fields(b"upstream exploded").message == "upstream exploded"
    assert openai.error_fields(b'{"detail": "Not Found"}').message == "Not Found"


def test_the_index_lists_each_protocol_from_its_own_declaration() -> None:
    listed = {listing.key: listing for listing in listings()}
    for protocol in PROTOCOLS.values():
        listing = protocol.client.listing
        assert listed[listing.key] is listing
        declared = {f"{route.method} {route.path}" for route in protocol.client.routes}
        assert listing.paths and set(listing.paths) <= declared, (protocol.name, set(listing.paths) - declared)
