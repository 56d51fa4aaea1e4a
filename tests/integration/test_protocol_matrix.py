"""The cross-protocol matrix: 4 client surfaces x 4 upstream protocols, over real sockets.

Surfaces (official SDKs against the proxy): OpenAI Chat Completions, OpenAI Responses, Anthropic
Messages, Gemini generateContent. Upstreams (fakes that speak the real wire formats and record what
they receive): OpenAI Chat Completions, OpenAI Responses, Anthropic Messages, Gemini generateContent.

For every one of the 16 cells: plain text, streamed text, a streamed tool call (arguments in several
pieces where the upstream protocol carries text), a tool-result turn, an image input, usage, and an
upstream error. Drivers (one per surface) and scripts (one per upstream) live in matrix_support.py.
One proxy per upstream protocol, started on first use and shared by every surface for the module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from integration.conftest import serve_proxy, write_backend
from integration.matrix_support import (
    CALL_ARGS,
    DRIVERS,
    FAKES,
    IMAGE_QUESTION,
    PNG,
    RESULT,
    RESULT_TEXT,
    SCRIPTS,
    TOOL_NAME,
    TOOL_QUESTION,
    Driver,
    Part,
    Script,
)

DEFAULT_REPLY = "Hello from the matrix."
ARGUMENTS = '{"city": "Paris", "days": [1, 2, 3], "unit": "celsius"}'
UPSTREAM_CALL_IDS = {"openai": "call_up_1", "anthropic": "toolu_up_1", "gemini": "unused",
                     "openai-responses": "call_up_r1"}
ERROR_MESSAGE = "matrix: max_tokens is too large for this model"
ERROR_KINDS = {"chat": "invalid_request_error", "responses": "invalid_request_error",
               "anthropic": "invalid_request_error", "gemini": "INVALID_ARGUMENT"}

# Cells that fail because of a bug in src/: {(test, surface, upstream): reason}. Each is a strict xfail.
KNOWN_BUGS: dict[tuple[str, str, str], str] = {}


def cells(test: str) -> list[Any]:
    """The 16 (surface, upstream) cells of one test, with a strict xfail on those of KNOWN_BUGS."""
    out = []
    for upstream in SCRIPTS:
        for surface in DRIVERS:
            reason = KNOWN_BUGS.get((test, surface, upstream))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(surface, upstream, id=f"{surface}-{upstream}", marks=marks))
    return out


@dataclass
class Cell:
    driver: Driver
    up: Script

    @property
    def model(self) -> str:
        return self.up.client_model

    @property
    def text_both_ways(self) -> bool:
        """Tool arguments travel as JSON text on both sides, so they can be passed through byte for byte."""
        return self.driver.args_text and self.up.args_text


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Script]]:
    """Each upstream fake with its own proxy, started when a cell first needs it; all stopped at the end."""
    with ExitStack() as stack:

        class Lazy(dict[str, Script]):
            def __missing__(self, protocol: str) -> Script:
                fake = stack.enter_context(FAKES[protocol]())
                script = SCRIPTS[protocol](fake)
                config: Path = tmp_path_factory.mktemp(f"matrix-{protocol}")
                write_backend(config, script.backend, script.backend_yaml())
                script.proxy = stack.enter_context(serve_proxy(config, environ={script.key_env: "sk-matrix-up"}))
                self[protocol] = script
                return script

        yield Lazy()


@pytest.fixture
def cell(stacks: dict[str, Script], surface: str, upstream: str) -> Cell:
    up = stacks[upstream]
    up.begin()
    assert up.proxy is not None
    driver = up.drivers.get(surface)
    if driver is None:
        driver = up.drivers[surface] = DRIVERS[surface](up.proxy)
    return Cell(driver, up)


def by_kind(parts: list[Part], kind: str) -> list[Part]:
    return [p for p in parts if p.kind == kind]


# ---- the seven checks --------------------------------------------------------------------------


@pytest.mark.parametrize(("surface", "upstream"), cells("text"))
def test_text(cell: Cell) -> None:
    reply = "Bonjour ! Plain text, «exact» — with ünïcödé ✓ and\nnew lines."
    cell.up.text(reply, 3)
    got = cell.driver.text(cell.model, "Say hello in French")
    assert got.text == reply
    assert got.finish == "stop"
    seen = cell.up.only()
    assert not seen.streamed
    user = [(p.kind, p.text) for p in cell.up.parts(seen.body) if p.role == "user"]
    assert user == [("text", "Say hello in French")]


@pytest.mark.parametrize(("surface", "upstream"), cells("stream"))
def test_stream(cell: Cell) -> None:
    reply = "Streaming «exactly»: one two three, quatre cinq six — sept ✓!"
    cell.up.text(reply, 6)
    got = cell.driver.stream(cell.model, "Count in two languages")
    assert len([p for p in got.pieces if p]) >= 3, f"several chunks, got {got.pieces!r}"
    assert "".join(got.pieces) == reply
    assert got.finish == "stop"
    assert cell.up.only().streamed, "the upstream was asked to stream"


@pytest.mark.parametrize(("surface", "upstream"), cells("tool_stream"))
def test_streamed_tool_call(cell: Cell) -> None:
    upstream_id = UPSTREAM_CALL_IDS[cell.up.protocol]
    cell.up.tool_call(ARGUMENTS, upstream_id, pieces=5)
    got = cell.driver.tool_stream(cell.model, "Weather in Paris for three days?")
    (call,) = got.calls
    assert call.name == TOOL_NAME
    assert call.args == json.loads(ARGUMENTS)
    if cell.text_both_ways:
        assert call.arguments == ARGUMENTS, "the pieces are assembled byte for byte"
        assert call.deltas >= 3, f"the upstream's pieces pass through as pieces ({call.deltas})"
    elif cell.driver.args_text:
        assert call.arguments is not None and json.loads(call.arguments) == json.loads(ARGUMENTS)
    if call.final is not None:
        assert json.loads(call.final) == json.loads(ARGUMENTS)
        if cell.text_both_ways:
            assert call.final == ARGUMENTS
    if cell.up.has_ids:
        assert call.id == upstream_id
    elif cell.driver.call_id is not None:
        assert call.id, "a surface that links results by id gets an id"
    assert got.finish == "tool"
    seen = cell.up.only()
    assert seen.streamed
    assert cell.up.tool_names(seen.body) == [TOOL_NAME]


@pytest.mark.parametrize(("surface", "upstream"), cells("tool_result"))
def test_tool_result_turn(cell: Cell) -> None:
    got = cell.driver.tool_result(cell.model)
    assert got.text == DEFAULT_REPLY
    seen = cell.up.only()
    parts = cell.up.parts(seen.body)
    assert [p.text for p in by_kind(parts, "text") if p.role == "user"] == [TOOL_QUESTION]
    (call,) = by_kind(parts, "call")
    (result,) = by_kind(parts, "result")
    assert parts.index(call) < parts.index(result)
    assert (call.role, call.name, call.value) == ("assistant", TOOL_NAME, CALL_ARGS)
    assert result.value == RESULT, f"the tool's answer reaches the upstream ({result.raw!r})"
    if cell.text_both_ways:
        assert result.raw == RESULT_TEXT, "text content is passed as it was sent"
    if cell.up.has_ids:
        assert call.id and result.id == call.id, "the result names its call"
        if cell.driver.call_id is not None:
            assert call.id == cell.driver.call_id, "the client's id is kept"
    else:
        assert result.name == call.name == TOOL_NAME, "Gemini links a response to its call by name"
        if call.id is not None or result.id is not None:
            assert result.id == call.id
    assert cell.up.tool_names(seen.body) == [TOOL_NAME]


@pytest.mark.parametrize(("surface", "upstream"), cells("image"))
def test_image_input(cell: Cell) -> None:
    got = cell.driver.image(cell.model)
    assert got.text == DEFAULT_REPLY
    parts = [p for p in cell.up.parts(cell.up.only().body) if p.role == "user"]
    assert [p.kind for p in parts] == ["text", "image"]
    assert parts[0].text == IMAGE_QUESTION
    assert parts[1].mime == "image/png"
    assert parts[1].data == PNG, "the same bytes"


@pytest.mark.parametrize(("surface", "upstream"), cells("usage"))
def test_usage(cell: Cell) -> None:
    cell.up.text("one two three four five", 5)
    whole = cell.driver.text(cell.model, "count to five please")
    streamed = cell.driver.stream(cell.model, "count to five please")
    first, second = cell.up.seen()
    expected_whole, expected_streamed = cell.up.usage(first), cell.up.usage(second)
    assert min(expected_whole) > 0 and min(expected_streamed) > 0
    assert whole.usage == expected_whole, "(input, output) as the upstream reported them"
    assert streamed.usage == expected_streamed, "(input, output) as the upstream reported them, streamed"


@pytest.mark.parametrize(("surface", "upstream"), cells("error"))
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_upstream_error(cell: Cell, stream: bool) -> None:
    cell.up.error(400, ERROR_MESSAGE)
    failure = cell.driver.error(cell.model, stream)
    assert isinstance(failure.error, cell.driver.bad_request), repr(failure.error)
    assert failure.status == 400
    assert ERROR_MESSAGE in failure.message
    assert failure.kind == ERROR_KINDS[cell.driver.surface]
    assert len(cell.up.seen()) == 1, "a 400 is not retried"
