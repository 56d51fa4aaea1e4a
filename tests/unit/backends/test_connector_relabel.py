"""HttpConnector re-labels an upstream's error as a new error: same class, masked, chained to its cause."""

from __future__ import annotations

import asyncio
import traceback

import orjson
import pytest
from fake_aiohttp import FakeResponse, connector, drain, request

from lip.backends.connector import HttpConnector
from lip.core.errors import ProxyError, UpstreamMalformed, UpstreamStatus
from lip.protocols.anthropic.codec import AnthropicCodec
from lip.protocols.openai_chat.codec import OpenAICodec

KEY = "sk-upstream-key-0001"


def _raised(conn: HttpConnector, stream: bool = True) -> ProxyError:
    with pytest.raises(ProxyError) as caught:
        asyncio.run(drain(conn, request(stream=stream)))
    return caught.value


def test_a_malformed_event_keeps_its_class_and_its_cause() -> None:
    conn, _ = connector(OpenAICodec(), FakeResponse(200, [b"data: {not json\n\n"]))
    error = _raised(conn)
    assert type(error) is UpstreamMalformed
    assert isinstance(error.__cause__, orjson.JSONDecodeError)  # what the decoder found, not the first label
    assert str(error) == error.message == "backend 'up': the upstream sent a malformed stream event"


def test_no_unmasked_copy_of_an_error_event_is_left_in_the_chain_a_log_prints() -> None:
    chunk = (b'event: error\ndata: {"type": "error", "error": {"type": "api_error", "message": "lost '
             + KEY.encode() + b'"}}\n\n')
    conn, _ = connector(AnthropicCodec(), FakeResponse(200, [chunk]))
    error = _raised(conn)
    assert str(error) == "backend 'up': lost ***"
    printed = "".join(traceback.format_exception(error))
    assert KEY not in printed and "lost ***" in printed


def test_an_error_in_a_200_body_is_masked_in_what_str_says_too() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": f"busy ({KEY})"}}
    conn, _ = connector(AnthropicCodec(), FakeResponse(200, orjson.dumps(body)))
    error = _raised(conn, stream=False)
    assert type(error) is UpstreamStatus and error.status == 529
    assert (str(error), error.args) == ("busy (***)", ("busy (***)",))
    assert KEY not in "".join(traceback.format_exception(error))

