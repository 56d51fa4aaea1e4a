"""Hostile requests and hostile upstreams, over real sockets: selectors that would freeze the proxy or
break a header, model names that would climb out of an upstream's path, numbers an upstream sends
that no clock or header can hold."""

from __future__ import annotations

import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from fakes.gemini_upstream import FakeGemini, GeminiBehaviour
from fakes.openai_upstream import Behaviour, FakeOpenAI
from integration.conftest import serve_proxy, write_backend
from lip.app import Settings
from lip.routing.selector import MAX_LENGTH, MAX_ROUTES

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as upstream:
        yield upstream


def passthrough(tmp_path: Path, fake: FakeOpenAI) -> Path:
    write_backend(tmp_path, "up", f"backend_type: custom\napi_base_url: {fake.base_url}\nmax_retries: 0\n"
                                  "passthrough_models: true\nmodels:\n  ok: {}\n")
    return tmp_path


def chat(url: str, model: str, **extra: object) -> httpx.Response:
    return httpx.post(url + CHAT, json={"model": model, "messages": MESSAGES, **extra}, timeout=20)


def test_a_selector_of_thousands_of_routes_is_refused_naming_the_cap(tmp_path: Path, fake: FakeOpenAI) -> None:
    """`^`.join(8000 routes) took 10.7 s of event-loop time; now a 400 that names the cap, on every surface."""
    huge = "^".join(["up:ok"] * 8000)
    with serve_proxy(passthrough(tmp_path, fake)) as proxy:
        response = chat(proxy.url, huge)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid_selector" and error["param"] == "model"
        assert f"at most {MAX_ROUTES}" in error["message"] and "8000 routes" in error["message"]
        anthropic = httpx.post(proxy.url + "/v1/messages", json={"model": "|".join(["up:ok"] * 100),
                                                                 "max_tokens": 5, "messages": MESSAGES}, timeout=20)
        assert anthropic.status_code == 400 and anthropic.json()["type"] == "error"
        assert f"at most {MAX_ROUTES}" in anthropic.json()["error"]["message"]
        long = chat(proxy.url, "up:" + "x" * (MAX_LENGTH + 1))
        assert long.status_code == 400 and f"at most {MAX_LENGTH}" in long.json()["error"]["message"]
        most = chat(proxy.url, "^".join(["up:ok"] * MAX_ROUTES))  # the cap itself is served
        assert most.status_code == 200, most.text
        assert httpx.get(proxy.url + "/health", timeout=20).status_code == 200
    assert len(fake.chat_requests()) == 1  # nothing refused reached the upstream


def test_model_names_that_cannot_go_in_a_header(tmp_path: Path, fake: FakeOpenAI) -> None:
    """`up:oké中` was a plain-text 500 after the upstream was paid; CR/LF/NUL dropped the connection."""
    with serve_proxy(passthrough(tmp_path, fake)) as proxy:
        unicode = chat(proxy.url, "up:oké中")
        assert unicode.status_code == 200, unicode.text
        assert unicode.headers["x-lip-model"] == "ok%C3%A9%E4%B8%AD"
        assert urllib.parse.unquote(unicode.headers["x-lip-model"]) == "oké中"
        assert fake.chat_requests()[0].body["model"] == "oké中"
        for bad in ("up:a\r\nx-evil: 1", "up:a\x00b", "up:a\nb", "up:\x7f"):
            response = chat(proxy.url, bad)
            assert response.status_code == 400, bad
            error = response.json()["error"]
            assert error["code"] == "invalid_selector" and "control character" in error["message"]
        streamed = chat(proxy.url, "up:a\rb", stream=True)
        assert streamed.status_code == 400 and streamed.json()["error"]["code"] == "invalid_selector"
        gemini = httpx.post(proxy.url + "/v1beta/models/up:a%0D%0Ab:generateContent",
                            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, timeout=20)
        assert gemini.status_code == 400 and gemini.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert len(fake.chat_requests()) == 1


def test_gemini_model_names_cannot_climb_out_of_the_upstream_path(tmp_path: Path, gemini: FakeGemini) -> None:
    """`gem:x/../../../../etc` made the proxy POST /etc:generateContent with the operator's key."""
    write_backend(tmp_path, "gem", f"backend_type: custom\nprotocol: gemini\napi_base_url: {gemini.base_url}\n"
                                   "api_key_env_var: GEM_KEY\nmax_retries: 0\npassthrough_models: true\n"
                                   "models:\n  gemini-2.5-flash: {}\n")
    with serve_proxy(tmp_path, environ={"GEM_KEY": "gm-operator-key-123456"}) as proxy:
        for model in ("gem:x/../../../../etc", "gem:..", "gem:a#frag", "gem:%2e%2e%2fetc"):
            gemini.enqueue(GeminiBehaviour())
            response = chat(proxy.url, model)
            assert response.status_code == 200, (model, response.text)
        streamed = chat(proxy.url, "gem:../../x", stream=True)
        assert streamed.status_code == 200
    paths = [r.path for r in gemini.requests]
    assert len(paths) == 5 and all(p.startswith("/v1beta/models/") for p in paths), paths
    assert [r.model for r in gemini.requests] == ["x/../../../../etc", "..", "a#frag", "%2e%2e%2fetc", "../../x"]


@pytest.mark.parametrize("headers", [{"Retry-After": "inf"}, {"retry-after-ms": "1e400"}, {"Retry-After": "nan"},
                                     {"Retry-After": "1e308"}, {"Retry-After": "-5"}])
def test_retry_after_numbers_no_clock_can_hold(tmp_path: Path, fake: FakeOpenAI, headers: dict[str, str]) -> None:
    """`Retry-After: inf` (or `retry-after-ms: 1e400`) was a plain-text 500 (OverflowError)."""
    with serve_proxy(passthrough(tmp_path, fake)) as proxy:
        fake.enqueue(Behaviour(status=429, headers=headers))
        response = chat(proxy.url, "up:ok")
        assert response.status_code == 429
        assert response.json()["error"]["type"] == "rate_limit_error"
        wait = response.headers.get("retry-after")
        assert wait is None or 1 <= int(wait) <= 86_400
        fake.enqueue(Behaviour(status=503, headers=headers))
        streamed = chat(proxy.url, "up:ok", stream=True)
        assert streamed.status_code == 503 and streamed.json()["error"]["code"]


def test_gemini_retry_delay_no_clock_can_hold(tmp_path: Path, gemini: FakeGemini) -> None:
    write_backend(tmp_path, "gem", f"backend_type: custom\nprotocol: gemini\napi_base_url: {gemini.base_url}\n"
                                   "max_retries: 0\nmodels:\n  gemini-2.5-flash: {}\n")
    with serve_proxy(tmp_path) as proxy:
        gemini.enqueue(GeminiBehaviour(status=429, retry_after="1e400"))
        response = httpx.post(proxy.url + "/v1beta/models/gem:gemini-2.5-flash:generateContent",
                              json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, timeout=20)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "86400"
    details = response.json()["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "86400s"} in details


# ---- request bodies: authentication first, and a cap ------------------------------------------------------------

CLIENT_KEY = "lip-client-key-0123456789"


def raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` (and the start of a body) on a raw socket; the answer, read until the proxy closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536) or b"\r\n\r\n"
        top, _, rest = data.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            more = sock.recv(65536)
            if not more:
                break
            rest += more
        return int(lines[0].split()[1]), headers, rest[:length]


def body_cap_config(tmp_path: Path, fake: FakeOpenAI, cap: int | None = None) -> Path:
    passthrough(tmp_path, fake)
    server = f"server: {{max_request_body: {cap}}}\n" if cap else ""
    (tmp_path / "proxy.yaml").write_text(f"{server}clients:\n  - {{name: c, key_env_var: CLIENT_KEY}}\n")
    return tmp_path


GIGABYTE = 1 << 30


@pytest.mark.parametrize(("path", "envelope"), [
    ("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic"), ("/v1/responses", "openai"),
    ("/v1beta/models/up:ok:generateContent", "gemini"), ("/v1/messages/count_tokens", "anthropic"),
])
def test_a_gigabyte_body_without_a_key_is_refused_before_it_is_read(tmp_path: Path, fake: FakeOpenAI, path: str,
                                                                   envelope: str) -> None:
    """A 1 GB body with no key took the proxy to 2.2 GB RSS, then a 401: now the 401 comes at once, in the
    path's envelope, after only the head (and 1 KB) was sent, and the connection is closed."""
    with serve_proxy(body_cap_config(tmp_path, fake), environ={"CLIENT_KEY": CLIENT_KEY}) as proxy:
        status, headers, body = raw_request(proxy.port, f"POST {path} HTTP/1.1\nHost: x\n"
                                            f"Content-Type: application/json\nContent-Length: {GIGABYTE}\n",
                                            b"{" + b" " * 1024)
        assert status == 401 and headers["connection"] == "close"
        error = orjson.loads(body)
        if envelope == "anthropic":
            assert error["type"] == "error" and error["error"]["type"] == "authentication_error"
        elif envelope == "gemini":
            assert error["error"]["status"] == "UNAUTHENTICATED"
        else:
            assert error["error"]["code"] == "invalid_api_key"
        # with the key: 413 naming the cap, still before the body
        key = "?key=" + CLIENT_KEY if envelope == "gemini" else ""
        status, headers, body = raw_request(proxy.port, f"POST {path}{key} HTTP/1.1\nHost: x\n"
                                            f"Authorization: Bearer {CLIENT_KEY}\nx-api-key: {CLIENT_KEY}\n"
                                            f"Content-Length: {GIGABYTE}\n", b"{")
        assert status == 413 and headers["connection"] == "close"
        assert b"33554432 bytes; server.max_request_body" in body
    assert fake.chat_requests() == []


def test_a_chunked_body_is_counted_as_it_arrives(tmp_path: Path, fake: FakeOpenAI) -> None:
    body = orjson.dumps({"model": "up:ok", "messages": [{"role": "user", "content": "x" * 3000}]})
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:1500], body[1500:])) + b"0\r\n\r\n"
    head = f"Host: x\nAuthorization: Bearer {CLIENT_KEY}\nTransfer-Encoding: chunked\n"
    with serve_proxy(body_cap_config(tmp_path, fake, cap=2000), environ={"CLIENT_KEY": CLIENT_KEY}) as proxy:
        for path, kind in (("/v1/chat/completions", "invalid_request_error"),
                           ("/v1/messages/count_tokens", "request_too_large")):
            status, headers, answer = raw_request(proxy.port, f"POST {path} HTTP/1.1\n{head}", chunked)
            assert status == 413 and headers["connection"] == "close", answer
            assert b"2000 bytes; server.max_request_body" in answer and kind.encode() in answer
        small = httpx.post(proxy.url + CHAT, json={"model": "up:ok", "messages": MESSAGES}, timeout=20,
                           headers={"Authorization": f"Bearer {CLIENT_KEY}"})
        assert small.status_code == 200, small.text
        declared = httpx.post(proxy.url + CHAT, content=body, timeout=20, headers={
            "Authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"})
        assert declared.status_code == 413 and declared.json()["error"]["code"] == "request_too_large"
    assert len(fake.chat_requests()) == 1


def test_the_body_cap_setting_overrides_proxy_yaml(tmp_path: Path, fake: FakeOpenAI) -> None:
    """`--max-request-body` / LIP_MAX_REQUEST_BODY (Settings.max_request_body) win over proxy.yaml."""
    config = body_cap_config(tmp_path, fake, cap=100)
    settings = Settings(config_dir=config, config_dir_required=True, max_request_body=100_000)
    with serve_proxy(config, environ={"CLIENT_KEY": CLIENT_KEY}, settings=settings) as proxy:
        response = httpx.post(proxy.url + CHAT, json={"model": "up:ok", "messages": MESSAGES}, timeout=20,
                              headers={"Authorization": f"Bearer {CLIENT_KEY}"})
    assert response.status_code == 200, response.text


# ---- what one client keeps is its own ---------------------------------------------------------------------------

ALICE, BOB = "lip-alice-key-0123456789", "lip-bob-key-9876543210"


def two_clients(tmp_path: Path, fake: FakeOpenAI) -> Path:
    passthrough(tmp_path, fake)
    (tmp_path / "proxy.yaml").write_text("clients:\n  - {name: alice, key_env_var: ALICE_KEY}\n"
                                         "  - {name: bob, key_env_var: BOB_KEY}\n")
    return tmp_path


def as_client(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def test_a_session_id_is_scoped_to_the_client(tmp_path: Path, fake: FakeOpenAI) -> None:
    """bob sending alice's x-session-id read her !/usage and !/set her route; now he has a session of his own."""
    with serve_proxy(two_clients(tmp_path, fake), environ={"ALICE_KEY": ALICE, "BOB_KEY": BOB}) as proxy:
        def say(key: str, text: str) -> httpx.Response:
            body = {"model": "up:ok", "messages": [{"role": "user", "content": text}]}
            return httpx.post(proxy.url + CHAT, json=body, headers=as_client(key, **{"x-session-id": "shared-1"}),
                              timeout=20)

        assert say(ALICE, "!/set(model=up:alice-model)").status_code == 200
        assert say(ALICE, "hello").status_code == 200
        usage = say(BOB, "!/usage").json()["choices"][0]["message"]["content"]
        assert "This session: 0 requests" in usage  # not alice's count
        assert say(BOB, "hello").status_code == 200  # bob's own session: the model he asked for
        assert say(BOB, "!/set(model=up:bob-model)").status_code == 200
        assert say(ALICE, "hello again").status_code == 200  # alice's route is still hers
    assert [r.body["model"] for r in fake.chat_requests()] == ["alice-model", "ok", "alice-model"]


def test_derived_sessions_of_gemini_clients_keyed_in_the_query_are_apart(tmp_path: Path, fake: FakeOpenAI) -> None:
    """Derived ids ignored Gemini's ?key=: two Gemini clients with the same first message shared a session."""
    def ask(url: str, key: str, *texts: str) -> httpx.Response:
        contents = [{"role": "user" if i % 2 == 0 else "model", "parts": [{"text": t}]} for i, t in enumerate(texts)]
        return httpx.post(f"{url}/v1beta/models/up:ok:generateContent?key={key}", json={"contents": contents},
                          timeout=20)

    for clients in (True, False):  # with client keys (scoped by client), and without (the ?key= is the credential)
        fake.reset()
        config = two_clients(tmp_path, fake) if clients else passthrough(tmp_path, fake)
        if not clients:
            (tmp_path / "proxy.yaml").write_text("{}\n")
        with serve_proxy(config, environ={"ALICE_KEY": ALICE, "BOB_KEY": BOB}) as proxy:
            assert ask(proxy.url, ALICE, "hello", "hi", "!/set(model=up:alice-model)").status_code == 200
            assert ask(proxy.url, ALICE, "hello", "hi", "x", "Set.", "go").status_code == 200
            assert ask(proxy.url, BOB, "hello").status_code == 200
        assert [r.body["model"] for r in fake.chat_requests()] == ["alice-model", "ok"], clients


def test_stored_responses_are_the_clients_own(tmp_path: Path, fake: FakeOpenAI) -> None:
    """With client keys, a client read, continued and deleted another's stored response given its id: now 404."""
    with serve_proxy(two_clients(tmp_path, fake), environ={"ALICE_KEY": ALICE, "BOB_KEY": BOB}) as proxy:
        made = httpx.post(proxy.url + "/v1/responses", json={"model": "up:ok", "input": "alice's secret plan"},
                          headers=as_client(ALICE), timeout=20)
        assert made.status_code == 200, made.text
        rid = made.json()["id"]
        read = httpx.get(f"{proxy.url}/v1/responses/{rid}", headers=as_client(BOB), timeout=20)
        assert read.status_code == 404 and read.json()["error"]["code"] == "response_not_found"
        go_on = httpx.post(proxy.url + "/v1/responses", json={"model": "up:ok", "input": "and then?",
                                                              "previous_response_id": rid},
                           headers=as_client(BOB), timeout=20)
        assert go_on.status_code == 404 and go_on.json()["error"]["code"] == "previous_response_not_found"
        gone = httpx.delete(f"{proxy.url}/v1/responses/{rid}", headers=as_client(BOB), timeout=20)
        assert gone.status_code == 404
        assert httpx.get(f"{proxy.url}/v1/responses/{rid}", headers=as_client(ALICE), timeout=20).status_code == 200
        mine = httpx.post(proxy.url + "/v1/responses", json={"model": "up:ok", "input": "and then?",
                                                             "previous_response_id": rid},
                          headers=as_client(ALICE), timeout=20)
        assert mine.status_code == 200
        assert httpx.delete(f"{proxy.url}/v1/responses/{rid}", headers=as_client(ALICE), timeout=20).status_code == 200
    bodies = [str(r.body) for r in fake.chat_requests()]
    assert len(bodies) == 2 and "alice's secret plan" in bodies[1]  # alice's own turn carried her history
