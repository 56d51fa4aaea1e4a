"""HttpConnector reading answers: streams that finish, stop short, stall or break; time-outs; token counts.

Against an in-process fake session (no sockets); time-outs are set to a few hundredths of a second and
only their outcome (which error, retryable or not) is asserted, never a duration.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson
import pytest
from fake_aiohttp import FakeResponse, connector, drain, endpoint, request

from lip.backends.connector import HttpConnector
from lip.core.errors import ProxyError, UpstreamStatus, UpstreamTimeout, UpstreamUnreachable
from lip.core.model import Finish, TextDelta, UsageReport
from lip.protocols.anthropic.codec import AnthropicCodec
from lip.protocols.openai_chat.codec import OpenAICodec
from lip.protocols.openai_responses.codec import ResponsesCodec

SHORT = 0.05  # seconds: a time-out that a silent fake upstream reaches at once


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    body: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                            "choices": [] if delta is None else [{"index": 0, "delta": delta,
                                                                  "finish_reason": finish}]}
    if usage is not None:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


HELLO = chunk({"role": "assistant", "content": "Hel"}) + chunk({"content": "lo"})
FINISH = chunk({}, "stop")
USAGE = chunk(usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
DONE = b"data: [DONE]\n\n"


def streaming(*answers: FakeResponse, **timeouts: float) -> HttpConnector:
    conn, _ = connector(OpenAICodec(), *answers, ep=dataclasses.replace(endpoint(), **timeouts))
    return conn


def failure(conn: HttpConnector, stream: bool = True) -> tuple[ProxyError, list[Any]]:
    seen: list[Any] = []

    async def go() -> None:
        async for event in conn.stream(request(stream=stream), "m"):
            seen.append(event)

    with pytest.raises(ProxyError) as caught:
        asyncio.run(go())
    return caught.value, seen


def test_a_whole_stream_split_anywhere_gives_the_same_events() -> None:
    whole = HELLO + FINISH + USAGE + DONE
    expected = asyncio.run(drain(streaming(FakeResponse(200, [whole])), request(stream=True)))
    texts = [e.text for e in expected if isinstance(e, TextDelta)]
    assert texts == ["Hel", "lo"]
    assert Finish("stop") in expected and isinstance(expected[-1], UsageReport)
    assert expected[-1].usage.input_tokens == 3 and expected[-1].usage.output_tokens == 2
    pieces = [whole[i:i + 7] for i in range(0, len(whole), 7)]
    assert asyncio.run(drain(streaming(FakeResponse(200, pieces)), request(stream=True))) == expected


def test_a_settled_stream_does_not_wait_for_done_and_its_rest_is_drained() -> None:
    response = FakeResponse(200, [HELLO + FINISH + USAGE, DONE])
    conn, _ = connector(OpenAICodec(), response)

    async def go() -> list[Any]:
        events = await drain(conn, request(stream=True))
        assert not response.released  # handed over to the drain, not yet back in the pool
        for _ in range(5):
            await asyncio.sleep(0)
        return events

    events = asyncio.run(go())
    assert isinstance(events[-1], UsageReport)
    assert response.released and response.content.is_eof()


def test_a_stream_closed_before_its_finish_is_incomplete() -> None:
    error, seen = failure(streaming(FakeResponse(200, [HELLO])))
    assert isinstance(error, UpstreamUnreachable) and error.code == "upstream_incomplete"
    assert error.message == "backend 'up' closed the stream before finishing its answer"
    assert not error.retryable and [e.text for e in seen if isinstance(e, TextDelta)] == ["Hel", "lo"]
    silent, nothing = failure(streaming(FakeResponse(200, [b": keep-alive\n\n"])))
    assert silent.retryable and nothing == []  # nothing reached the client: another attempt may serve it


def test_done_before_the_finish_is_incomplete() -> None:
    error, _ = failure(streaming(FakeResponse(200, [HELLO + DONE])))
    assert (error.code, error.message) == ("upstream_incomplete",
                                           "backend 'up' ended its stream before finishing its answer")


def test_a_malformed_event_names_the_backend() -> None:
    error, _ = failure(streaming(FakeResponse(200, [b"data: {not json\n\n"])))
    assert (error.status, error.code, error.retryable) == (502, "upstream_malformed", True)
    assert error.message == "backend 'up': the upstream sent a malformed stream event"
    late, _ = failure(streaming(FakeResponse(200, [HELLO, b"data: {not json\n\n"])))
    assert late.code == "upstream_malformed" and not late.retryable  # the client has text already


def test_an_openai_error_event_mid_stream() -> None:
    event = b'data: {"error": {"message": "overloaded", "code": "server_busy"}}\n\n'
    error, _ = failure(streaming(FakeResponse(200, [event])))
    assert (error.status, error.code, error.message) == (502, "server_busy", "backend 'up': overloaded")


def test_an_event_beyond_max_event_bytes_is_refused() -> None:
    conn = streaming(FakeResponse(200, [b"data: " + b"x" * 200]), max_event_bytes=100)
    error, _ = failure(conn)
    assert (error.status, error.code) == (502, "upstream_response_too_large")
    assert error.message == ("backend 'up' sent a stream event larger than 100 bytes "
                             "(max_event_bytes in its backend.yaml)")


def test_a_stream_that_never_starts_times_out_retryably() -> None:
    error, _ = failure(streaming(FakeResponse(200, hang=True), first_token_timeout=SHORT))
    assert isinstance(error, UpstreamTimeout) and (error.status, error.retryable) == (504, True)
    assert error.message == f"backend 'up' did not start its stream within {SHORT:g} s (first_token_timeout)"


def test_a_stream_that_stalls_after_text_times_out_for_good() -> None:
    error, seen = failure(streaming(FakeResponse(200, [HELLO], hang=True), stream_idle_timeout=SHORT))
    assert isinstance(error, UpstreamTimeout) and not error.retryable and seen
    assert error.message == f"backend 'up' stalled mid-stream ({SHORT:g} s without data)"


def test_a_whole_answer_that_does_not_arrive_in_time() -> None:
    error, _ = failure(streaming(FakeResponse(200, [b'{"id": '], hang=True), timeout=SHORT), stream=False)
    assert isinstance(error, UpstreamTimeout) and error.retryable
    assert error.message == f"backend 'up' did not send its whole answer within {SHORT:g} s (timeout)"


# ---- token counting ----------------------------------------------------------------------------------


def count(codec: Any, answer: FakeResponse) -> tuple[int, bool]:
    conn, _ = connector(codec, answer)
    result = asyncio.run(conn.count_tokens(request(), "m"))
    assert answer.released
    return result


def test_the_backends_own_count() -> None:
    assert count(AnthropicCodec(), FakeResponse(200, b'{"input_tokens": 42}')) == (42, True)
    assert count(OpenAICodec(), FakeResponse(200, b'{"count": 17}')) == (17, True)  # vLLM
    assert count(OpenAICodec(), FakeResponse(200, b'{"tokens": [1, 2, 3]}')) == (3, False)  # llama.cpp


def test_the_count_goes_to_the_protocols_counting_url() -> None:
    conn, session = connector(AnthropicCodec(), FakeResponse(200, b'{"input_tokens": 1}'))
    asyncio.run(conn.count_tokens(request(), "m"))
    assert session.sent[0].url == "https://upstream.example/v1/messages/count_tokens"
    assert orjson.loads(session.sent[0].data)["messages"] == [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize("body", [b"{}", b'{"input_tokens": -1}', b'{"input_tokens": true}', b"nope", b"[1]"])
def test_an_answer_without_a_count(body: bytes) -> None:
    with pytest.raises(ProxyError) as caught:
        count(AnthropicCodec(), FakeResponse(200, body))
    assert caught.value.code == "upstream_malformed"
    assert caught.value.message == "backend 'up' answered its counting endpoint without a count"


def test_a_counting_endpoints_error_status_is_passed_on() -> None:
    with pytest.raises(UpstreamStatus) as caught:
        count(AnthropicCodec(), FakeResponse(404, b'{"type": "error", "error": {"type": "not_found_error", '
                                                   b'"message": "no such model"}}'))
    assert (caught.value.status, caught.value.code, caught.value.message) == (404, "not_found_error", "no such model")


def test_a_protocol_without_a_counting_endpoint() -> None:
    conn, session = connector(ResponsesCodec())
    with pytest.raises(ProxyError) as caught:
        asyncio.run(conn.count_tokens(request(), "m"))
    assert caught.value.code == "count_unsupported" and session.sent == []
    assert caught.value.message == "backend 'up' has no token counting endpoint"
