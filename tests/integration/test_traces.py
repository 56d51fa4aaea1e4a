"""OpenTelemetry traces reach an OTLP/HTTP receiver started by the test on 127.0.0.1: a SERVER span per
request with a CLIENT child per upstream attempt, GenAI attributes, the request id, and no bodies
unless the operator asks for them. The receiver decodes what the SDK's exporter sends (protobuf)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from fakes.openai_upstream import Behaviour, FakeOpenAI
from integration.conftest import serve_proxy, write_backend

PROMPT = "a prompt that must not leave the proxy"


class Receiver:
    """An OTLP/HTTP traces endpoint: every export request kept, raw and decoded."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.path == "/v1/traces" and self.headers["content-type"] == "application/x-protobuf":
                    receiver.raw.append(body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def spans(self) -> list[Any]:
        found = []
        for raw in self.raw:
            request = ExportTraceServiceRequest()
            request.ParseFromString(raw)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    found.extend(scope.spans)
        return found


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def _attributes(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        out[kv.key] = [v.string_value for v in value.array_value.values] if kind == "array_value" else getattr(
            value, kind)
    return out


def _config(tmp_path: Path, fake: FakeOpenAI, receiver: Receiver, extra: str = "") -> Path:
    write_backend(tmp_path, "main", f"""\
        backend_type: custom
        api_base_url: {fake.base_url}
        max_retries: 1
        retry_delay: 0.01
        models:
          gpt-4o: {{}}
        """)
    (tmp_path / "proxy.yaml").write_text(f"default_backend: main\nserver:\n  replica: r1\n"
                                         f"tracing:\n  enabled: true\n  endpoint: {receiver.url}\n{extra}")
    return tmp_path


def test_a_span_per_request_and_a_child_per_upstream_attempt(
    tmp_path: Path, fake: FakeOpenAI, receiver: Receiver
) -> None:
    fake.enqueue(Behaviour(status=500))  # the first attempt fails, the retry answers
    with serve_proxy(_config(tmp_path, fake, receiver)) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0)
        retried = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": PROMPT}])
        with client.chat.completions.with_streaming_response.create(
                model="gpt-4o", messages=[{"role": "user", "content": PROMPT}], stream=True) as streamed:
            chunks = list(streamed.iter_lines())
    assert any("[DONE]" in line for line in chunks)
    spans = receiver.spans()  # the proxy's shutdown exported what was waiting
    servers = [s for s in spans if s.kind == s.SPAN_KIND_SERVER]
    children = [s for s in spans if s.kind == s.SPAN_KIND_CLIENT]
    assert len(servers) == 2 and len(children) == 3
    first = next(s for s in servers if _attributes(s)["lip.request_id"] == retried.headers["x-request-id"])
    attrs = _attributes(first)
    assert first.name == "chat gpt-4o"
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.system"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o" and attrs["gen_ai.response.model"] == "gpt-4o"
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["http.response.status_code"] == 200 and attrs["lip.replica"] == "r1"
    own = sorted((c for c in children if c.parent_span_id == first.span_id), key=lambda c: c.start_time_unix_nano)
    assert [c.trace_id for c in own] == [first.trace_id] * 2
    assert "error.type" in _attributes(own[0]) and own[0].status.code == own[0].status.STATUS_CODE_ERROR
    assert "error.type" not in _attributes(own[1])
    assert first.start_time_unix_nano <= own[0].start_time_unix_nano <= own[1].end_time_unix_nano <= \
        first.end_time_unix_nano
    stream_span = next(s for s in servers if s is not first)
    assert _attributes(stream_span)["lip.stream"] is True
    assert all(PROMPT.encode() not in raw for raw in receiver.raw), "a body reached the traces"


def test_content_only_when_the_operator_asks(tmp_path: Path, fake: FakeOpenAI, receiver: Receiver) -> None:
    with serve_proxy(_config(tmp_path, fake, receiver, "  capture_content: true\n")) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": PROMPT}])
    (span,) = [s for s in receiver.spans() if s.kind == s.SPAN_KIND_SERVER]
    (event,) = span.events
    assert event.name == "gen_ai.content.prompt"
    assert PROMPT in _attributes(event)["gen_ai.prompt"]
