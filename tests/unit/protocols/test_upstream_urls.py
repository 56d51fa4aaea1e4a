"""Model names in upstream URLs: one percent-encoded path segment, whatever a client chose (issue 13, 6)."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from yarl import URL

from lip.protocols.gemini.codec import GeminiCodec

BASE = "https://generativelanguage.googleapis.com/v1beta"


@pytest.mark.parametrize("model", ["x/../../../../etc", "..", "a#b", "a?alt=json", "%2e%2e%2fetc", "a:b", "oké中"])
def test_gemini_urls_keep_the_model_in_one_segment(model: str) -> None:
    codec = GeminiCodec()
    for url in (codec.url(BASE, model, False), codec.url(BASE, model, True), codec.count_url(BASE, model)):
        parsed = URL(url)  # as aiohttp sends it
        assert parsed.raw_path.startswith("/v1beta/models/")
        segment = parsed.raw_path.removeprefix("/v1beta/models/")
        assert "/" not in segment and unquote(segment.rpartition(":")[0]) == model
        assert parsed.query_string in ("", "alt=sse") and parsed.fragment == ""


def test_an_ordinary_model_name_is_unchanged() -> None:
    url = GeminiCodec().url(BASE, "models/gemini-2.5-flash", False)
    assert url == f"{BASE}/models/gemini-2.5-flash:generateContent"
    assert GeminiCodec().count_url(BASE, "gemini-2.5-pro") == f"{BASE}/models/gemini-2.5-pro:countTokens"
