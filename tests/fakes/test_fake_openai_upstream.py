"""Self-test of the fake OpenAI upstream, driven by plain httpx / aiohttp clients."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest

from .openai_upstream import Behaviour, CueError, FakeOpenAI, ToolCallSpec, parse_cue

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hello please"}]


@pytest.fixture
def fake(caplog: pytest.LogCaptureFixture) -> Iterator[FakeOpenAI]:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    with FakeOpenAI() as server:
        yield server
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not noisy, [r.getMessage() for r in noisy]


def chat(model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, **extra}


def post(fake: FakeOpenAI, body: dict[str, Any], timeout: float = 5.0) -> httpx.Response:
    return httpx.post(f"{fake.base_url}/chat/completions", json=body, timeout=timeout)


def sse_data(fake: FakeOpenAI, body: dict[str, Any],
             timeout: float = 5.0) -> tuple[httpx.Response, list[str]]:
    """POST a streaming request and return (response, list of `data:` payloads)."""
    out: list[str] = []
    with httpx.stream("POST", f"{fake.base_url}/chat/completions", json=body, timeout=timeout) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                out.append(line[len("data: "):])
    return resp, out


def stream_partial(fake: FakeOpenAI, body: dict[str, Any], timeout: float) -> tuple[list[str], Exception]:
    """Stream until the client errors; return payloads seen and the exception."""
    out: list[str] = []
    url = f"{fake.base_url}/chat/completions"
    with pytest.raises(httpx.TransportError) as info, httpx.stream("POST", url, json=body,
                                                                   timeout=timeout) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                out.append(line[len("data: "):])
    return out, info.value


def test_plain_completion_and_recording(fake: FakeOpenAI) -> None:
    t0 = time.monotonic()
    resp = httpx.post(f"{fake.base_url}/chat/completions", json=chat("my-model"),
                      headers={"Authorization": "Bearer sk-test", "X-Custom": "yes"})
    t1 = time.monotonic()
    assert resp.status_code == 200
    data = resp.json()
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-fake-")
    assert data["model"] == "my-model"
    assert isinstance(data["created"], int)
    choice = data["choices"][0]
    reply = "Hello from the fake upstream."
    assert choice["message"] == {"role": "assistant", "content": reply, "refusal": None}
    assert choice["finish_reason"] == "stop"
    # prompt: 2 + 3 words + 4 per message * 2; completion: 5 words
    assert data["usage"] == {"prompt_tokens": 13, "completion_tokens": 5, "total_tokens": 18}
    [rec] = fake.chat_requests()
    assert rec.method == "POST" and rec.path == "/v1/chat/completions"
    assert rec.headers["authorization"] == "Bearer sk-test" and rec.headers["x-custom"] == "yes"
    assert rec.body == chat("my-model")
    assert t0 <= rec.at <= t1


def test_models_unknown_path_and_reset(fake: FakeOpenAI) -> None:
    models = httpx.get(f"{fake.base_url}/models").json()
    assert models["object"] == "list" and models["data"][0]["object"] == "model"
    missing = httpx.get(f"{fake.base_url}/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"
    assert [r.path for r in fake.requests] == ["/v1/models", "/v1/nope"]
    assert fake.chat_requests() == []
    fake.default = Behaviour(reply="changed")
    fake.enqueue(Behaviour(status=500))
    fake.reset()
    assert fake.requests == []
    assert post(fake, chat()).json()["choices"][0]["message"]["content"] == "Hello from the fake upstream."


def test_streaming_reassembly_usage_and_done(fake: FakeOpenAI) -> None:
    fake.default = Behaviour(reply="one two three four five six seven", chunks=4)
    resp, data = sse_data(fake, chat("m1", stream=True, stream_options={"include_usage": True}))
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "m1" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert len(content) == 4 and "".join(content) == "one two three four five six seven"
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20}
    assert all(c["usage"] is None for c in chunks[:-1])
    # no include_usage -> no usage chunk, no usage key
    _, plain = sse_data(fake, chat(stream=True))
    parsed = [json.loads(d) for d in plain[:-1]]
    assert parsed[-1]["choices"][0]["finish_reason"] == "stop" and "usage" not in parsed[-1]


def test_tool_call_streaming_and_nonstream(fake: FakeOpenAI) -> None:
    args = '{"city": "Paris", "unit": "celsius"}'
    fake.default = Behaviour(tool_call=ToolCallSpec(name="get_weather", arguments=args, pieces=4))
    _, data = sse_data(fake, chat(stream=True))
    chunks = [json.loads(d) for d in data[:-1]]
    first = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    assert first == {"index": 0, "id": "call_fake_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": ""}}
    pieces = [c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks[1:-1]]
    assert len(pieces) == 4 and "".join(pieces) == args
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    body = post(fake, chat()).json()
    msg = body["choices"][0]["message"]
    assert msg["content"] is None and body["choices"][0]["finish_reason"] == "tool_calls"
    assert msg["tool_calls"] == [{"id": "call_fake_1", "type": "function",
                                  "function": {"name": "get_weather", "arguments": args}}]


def test_openai_sdk_parses_stream(fake: FakeOpenAI) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    fake.enqueue(Behaviour(tool_call=ToolCallSpec(name="f", arguments='{"a": 1}')))
    args = ""
    for chunk in client.chat.completions.create(model="x", messages=MESSAGES, stream=True):
        if chunk.choices and chunk.choices[0].delta.tool_calls:
            args += chunk.choices[0].delta.tool_calls[0].function.arguments or ""
    assert args == '{"a": 1}'
    done = client.chat.completions.create(model="x", messages=MESSAGES)
    assert done.choices[0].message.content == "Hello from the fake upstream."
    client.close()


def test_status_error_with_retry_after(fake: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(status=429, headers={"Retry-After": "2"}, error_code="rate_limit_exceeded",
                           error_type="requests", error_message="slow down"))
    resp = post(fake, chat(stream=True))
    assert resp.status_code == 429 and resp.headers["retry-after"] == "2"
    assert resp.json() == {"error": {"message": "slow down", "type": "requests", "param": None,
                                     "code": "rate_limit_exceeded"}}
    assert post(fake, chat()).status_code == 200  # queue drained -> default


def test_reset_before_headers(fake: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(reset_before_headers=True))
    with pytest.raises(httpx.TransportError):
        post(fake, chat())

    async def with_aiohttp() -> None:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.post(f"{fake.base_url}/chat/completions", json=chat("fault:reset"))

    asyncio.run(with_aiohttp())
    assert len(fake.chat_requests()) == 2


def test_silence_times_out(fake: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(silence=True))
    with pytest.raises(httpx.ReadTimeout):
        post(fake, chat(), timeout=0.3)


def test_cut_stream(fake: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(cut_after_chunks=2))
    data, exc = stream_partial(fake, chat(stream=True), timeout=5)
    assert len(data) == 2 and "[DONE]" not in data
    assert isinstance(exc, httpx.RemoteProtocolError)


def test_stall_stream(fake: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(stall_after_chunks=2))
    data, exc = stream_partial(fake, chat(stream=True), timeout=0.3)
    assert len(data) == 2 and isinstance(exc, httpx.ReadTimeout)


def test_malformed_chunk_then_continues(fake: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(malformed_after_chunks=1))
    _, data = sse_data(fake, chat(stream=True))
    assert data[1] == "{not json"
    json.loads(data[0])
    assert [json.loads(d)["object"] for d in data[2:-1]] == ["chat.completion.chunk"] * (len(data) - 3)
    assert data[-1] == "[DONE]"


def test_omit_done(fake: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(omit_done=True))
    resp, data = sse_data(fake, chat(stream=True))
    assert "[DONE]" not in data
    assert json.loads(data[-1])["choices"][0]["finish_reason"] == "stop"
    assert resp.headers.get("connection", "").lower() == "close"


def test_first_byte_delay_and_chunk_delay(fake: FakeOpenAI) -> None:
    fake.enqueue(Behaviour(first_byte_delay=0.3, chunk_delay=0.0),
                 Behaviour(chunk_delay=0.05, chunks=3))
    t0 = time.monotonic()
    with httpx.stream("POST", f"{fake.base_url}/chat/completions", json=chat(stream=True)) as resp:
        headers_at = time.monotonic() - t0
        assert resp.status_code == 200
        resp.read()
    assert headers_at >= 0.3, "the head waited for first_byte_delay (a lower bound only: loaded machines)"
    t0 = time.monotonic()
    _, data = sse_data(fake, chat(stream=True))
    # role + 3 content + finish chunk + [DONE] = 6 data lines -> 5 gaps
    assert len(data) == 6 and time.monotonic() - t0 >= 0.05 * 5


def test_fault_cue_times_counting(fake: FakeOpenAI) -> None:
    cue = "fault:status=429,retry_after=2,times=1"
    first = post(fake, chat(cue))
    assert first.status_code == 429 and first.headers["retry-after"] == "2"
    assert first.json()["error"]["code"] == "rate_limit_exceeded"
    second = post(fake, chat(cue))
    assert second.status_code == 200 and second.json()["model"] == cue
    # a different model string is counted separately
    assert post(fake, chat(cue + ",code=x")).status_code == 429
    # no times -> forever
    forever = "fault:status=400,code=context_length_exceeded"
    for _ in range(3):
        err = post(fake, chat(forever))
        assert err.status_code == 400 and err.json()["error"]["code"] == "context_length_exceeded"
    # queue wins over cue, and does not consume the cue's count
    fake.enqueue(Behaviour())
    assert post(fake, chat("fault:status=503,times=1")).status_code == 200
    bad = post(fake, chat("fault:status=503,times=1"))
    assert bad.status_code == 503 and bad.json()["error"]["type"] == "server_error"
    # bad cue
    junk = post(fake, chat("fault:bogus"))
    assert junk.status_code == 400 and junk.json()["error"]["code"] == "fake_bad_fault_cue"


def test_fault_cues_drive_stream_faults(fake: FakeOpenAI) -> None:
    data, exc = stream_partial(fake, chat("fault:cut_after=2", stream=True), timeout=5)
    assert len(data) == 2 and isinstance(exc, httpx.RemoteProtocolError)
    _, data = sse_data(fake, chat("fault:malformed_after=1", stream=True))
    assert data[1] == "{not json" and data[-1] == "[DONE]"
    _, data = sse_data(fake, chat("fault:omit_done", stream=True))
    assert "[DONE]" not in data
    with pytest.raises(httpx.ReadTimeout):
        post(fake, chat("fault:silence"), timeout=0.2)


def test_parse_cue_grammar() -> None:
    base = Behaviour(reply="base")
    beh, times = parse_cue("fault:status=429,retry_after=2,times=1", base)
    assert (beh.status, beh.headers, times, beh.reply) == (429, {"Retry-After": "2"}, 1, "base")
    assert parse_cue("fault:silence", base)[0].silence
    assert parse_cue("fault:reset", base)[0].reset_before_headers
    assert parse_cue("fault:cut_after=2", base)[0].cut_after_chunks == 2
    assert parse_cue("fault:stall_after=2", base)[0].stall_after_chunks == 2
    assert parse_cue("fault:malformed_after=1", base)[0].malformed_after_chunks == 1
    assert parse_cue("fault:omit_done", base)[0].omit_done
    assert parse_cue("fault:first_byte_delay=1.5", base)[0].first_byte_delay == 1.5
    beh, times = parse_cue("fault:status=400,code=context_length_exceeded", base)
    assert (beh.status, beh.error_code, beh.error_type, times) == (
        400, "context_length_exceeded", "invalid_request_error", None)
    for bad in ("fault:status=abc", "fault:nope", "fault:silence=1"):
        with pytest.raises(CueError):
            parse_cue(bad, base)


def test_shutdown_is_prompt_with_stalled_and_silent_handlers() -> None:
    errors: list[BaseException] = []

    def client(body: dict[str, Any]) -> None:
        try:
            with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body, timeout=10) as r:
                for _ in r.iter_lines():
                    pass
        except httpx.TransportError as exc:
            errors.append(exc)

    with FakeOpenAI() as server:
        threads = [threading.Thread(target=client, args=(b,)) for b in
                   (chat("fault:silence"), chat("fault:stall_after=1", stream=True))]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 2
        while len(server.chat_requests()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
    # leaving the block stopped the server although both requests were still held open
    for t in threads:
        t.join(15)
    assert len(errors) == 2
    assert not any(isinstance(e, httpx.TimeoutException) for e in errors), \
        "the connections were dropped by the stop, before the clients' own 10 s time-out"


def test_responder_scripts_a_conversation_before_the_queue(fake: FakeOpenAI) -> None:
    def script(body: Any) -> Behaviour | None:
        if body["messages"][-1]["role"] == "tool":
            return Behaviour(reply="got " + body["messages"][-1]["content"])
        return None  # the queue, the cue, the default decide

    fake.responder = script
    fake.enqueue(Behaviour(tool_call=ToolCallSpec("read", '{"p": 1}')))
    first = post(fake, chat()).json()["choices"][0]["message"]
    assert first["tool_calls"][0]["function"]["name"] == "read"  # None from the script: the queue's entry
    tool_turn = chat(messages=[*MESSAGES, {"role": "tool", "tool_call_id": "c", "content": "42"}])
    fake.enqueue(Behaviour(reply="from the queue"))
    assert post(fake, tool_turn).json()["choices"][0]["message"]["content"] == "got 42"  # before the queue
    assert post(fake, chat()).json()["choices"][0]["message"]["content"] == "from the queue"
    fake.reset()
    assert fake.responder is None
