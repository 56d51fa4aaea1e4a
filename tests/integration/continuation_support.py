"""Fakes of each upstream protocol that fail mid-answer on cue, and the proxy configuration the fault suite uses.

``Upstream`` wraps one fake of a protocol and builds its behaviours from protocol-neutral words:
``answer(reply, prefill=...)``, ``fault(kind, after=k)`` (``cut``, ``stall``, ``malformed`` or ``error``
after ``k`` text pieces reached the proxy), ``tool(arguments, cut_after_pieces=...)``. ``suite_config``
writes a config directory with a faulty primary ``up`` and fallbacks of the same protocol: ``fb``
(takes a prefill), ``fbr`` (restarts instead), ``fbx`` (takes a prefill, for the refusal test),
``off`` (the primary with continuation switched off) and ``hedge`` (the primary with
``hedge_after: 0.2``). Time-outs are small so that the suite stays short.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakes import anthropic_upstream, openai_upstream
from fakes.anthropic_upstream import FakeAnthropic, ToolUseSpec
from fakes.gemini_upstream import FakeGemini, GeminiBehaviour
from fakes.openai_upstream import FakeOpenAI, ToolCallSpec
from fakes.responses_upstream import CallSpec, FakeResponses, ResponsesBehaviour
from fakes.server import split_even
from integration.conftest import write_backend

REPLY = "The quick brown fox jumps over the lazy dog, then rests under the old oak tree by the river."
CHUNKS = 8
MODEL = "m"
TOOL_ARGS = '{"city": "Paris", "days": [1, 2, 3], "unit": "celsius"}'
IDLE = 0.5  # stream_idle_timeout and first_token_timeout of the primary

# Per protocol: the fake, the field names of its faults, and the events written before the first text piece.
FIELDS: dict[str, dict[str, str]] = {
    "openai": {"cut": "cut_after_chunks", "stall": "stall_after_chunks", "malformed": "malformed_after_chunks",
               "error": "error_after_chunks"},
    "anthropic": {"cut": "cut_after_events", "stall": "stall_after_events", "malformed": "malformed_after_events",
                  "error": "error_after_events"},
    "gemini": {"cut": "cut_after_chunks", "stall": "stall_after_chunks", "malformed": "malformed_after_chunks",
               "error": "error_after_chunks"},
    "openai-responses": {"cut": "cut_after", "stall": "stall_after", "malformed": "malformed_after",
                         "error": "error_after"},
}
# the events before the first text piece: role chunk / message_start, block start, ping / none /
# response.created, response.in_progress, output_item.added
LEAD = {"openai": 1, "anthropic": 3, "gemini": 0, "openai-responses": 3}


@dataclass
class Upstream:
    protocol: str
    fake: Any

    def answer(self, reply: str = REPLY, prefill: str = "continue", **extra: Any) -> Any:
        if self.protocol == "openai":
            return openai_upstream.Behaviour(reply=reply, chunks=CHUNKS, prefill=prefill, **extra)
        if self.protocol == "anthropic":
            return anthropic_upstream.Behaviour(reply=reply, chunks=CHUNKS, prefill=prefill, **extra)
        if self.protocol == "openai-responses":
            return ResponsesBehaviour(reply=reply, chunks=CHUNKS, prefill=prefill, **extra)
        return GeminiBehaviour(reply=reply, chunks=CHUNKS, prefill=prefill, **extra)

    def fault(self, kind: str, after: int = 3, reply: str = REPLY) -> Any:
        return self.answer(reply, **{FIELDS[self.protocol][kind]: LEAD[self.protocol] + after})

    def error(self, status: int, message: str = "upstream trouble", retry_after: str | None = None,
              code: str | None = None) -> Any:
        """An error status in this protocol's envelope (with a Retry-After header when given)."""
        if self.protocol == "gemini":
            return GeminiBehaviour(status=status, error_message=message, retry_after=retry_after)
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        if self.protocol == "openai-responses":
            kind = "server_error" if status >= 500 else "invalid_request_error"
            body = {"error": {"message": message, "type": kind, "param": None, "code": code}} if code else None
            return ResponsesBehaviour(status=status, error_message=message, headers=headers, error_body=body)
        if self.protocol == "anthropic":
            return anthropic_upstream.Behaviour(status=status, error_message=message, headers=headers)
        return openai_upstream.Behaviour(status=status, error_message=message, headers=headers, error_code=code,
                                         error_type="server_error" if status >= 500 else "invalid_request_error")

    def tool(self, arguments: str = TOOL_ARGS, cut_after_pieces: int | None = None) -> Any:
        """A tool call streamed in 4 argument pieces, cut after ``cut_after_pieces`` of them."""
        if self.protocol == "openai":
            cut = None if cut_after_pieces is None else 1 + cut_after_pieces
            return openai_upstream.Behaviour(tool_call=ToolCallSpec("get_weather", arguments, pieces=4),
                                             cut_after_chunks=cut)
        if self.protocol == "openai-responses":  # created, in_progress, output_item.added, then the pieces
            cut = None if cut_after_pieces is None else 3 + cut_after_pieces
            return ResponsesBehaviour(call=CallSpec("get_weather", arguments, pieces=4), cut_after=cut)
        # message_start, block start, ping, the empty first input_json_delta, then the pieces
        cut = None if cut_after_pieces is None else 4 + cut_after_pieces
        return anthropic_upstream.Behaviour(tool_use=ToolUseSpec("get_weather", arguments, pieces=4),
                                            cut_after_events=cut)

    def requests(self) -> list[Any]:
        if self.protocol == "openai":
            return self.fake.chat_requests()
        if self.protocol == "anthropic":
            return self.fake.message_requests()
        if self.protocol == "openai-responses":
            return self.fake.response_requests()
        return self.fake.generate_requests()

    def prefill_of(self, request: Any) -> str | None:
        """The final assistant message's text of a recorded request (None: it ended with the user)."""
        body = request.body
        if self.protocol == "gemini":
            last = body["contents"][-1]
            return "".join(p.get("text", "") for p in last["parts"]) if last["role"] == "model" else None
        last = body["input"][-1] if self.protocol == "openai-responses" else body["messages"][-1]
        if last.get("role") != "assistant":
            return None
        content = last["content"]
        return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


    def reset(self) -> None:
        self.fake.reset()
        self.fake.default = self.answer()


FAKES = {"openai": FakeOpenAI, "anthropic": FakeAnthropic, "gemini": FakeGemini, "openai-responses": FakeResponses}
HEADERS = {"anthropic": f'headers:\n  anthropic-version: "{anthropic_upstream.VERSION}"\n'}


def backend_yaml(protocol: str, url: str, extra: str = "", model_extra: str = "") -> str:
    model = f"  {MODEL}: {{{model_extra}}}\n"
    return (f"backend_type: custom\nprotocol: {protocol}\napi_base_url: {url}\n{HEADERS.get(protocol, '')}"
            f"{extra}models:\n{model}")


def suite_config(root: Path, protocol: str, primary: Upstream, fallback: Upstream) -> Path:
    timeouts = f"first_token_timeout: {IDLE}\nstream_idle_timeout: {IDLE}\ntimeout: 5\n"
    fast = "max_retries: 1\nretry_delay: 0.01\n"
    write_backend(root, "up", backend_yaml(protocol, primary.fake.base_url, timeouts + fast))
    write_backend(root, "off", backend_yaml(protocol, primary.fake.base_url, timeouts + fast + "continuation: false\n"))
    write_backend(root, "fb", backend_yaml(protocol, fallback.fake.base_url, "max_retries: 0\n", "prefill: true"))
    write_backend(root, "fbr", backend_yaml(protocol, fallback.fake.base_url, "max_retries: 0\n", "prefill: false"))
    write_backend(root, "fbx", backend_yaml(protocol, fallback.fake.base_url, "max_retries: 0\nprefill: true\n"))
    write_backend(root, "hedge", backend_yaml(protocol, primary.fake.base_url,
                                              "first_token_timeout: 5\nmax_retries: 0\nhedge_after: 0.2\n"))
    (root / "proxy.yaml").write_text("routing:\n  max_continuations: 2\n")
    return root


def pieces_sent(after: int) -> str:
    return "".join(split_even(REPLY, CHUNKS)[:after])


def replace(behaviour: Any, **changes: Any) -> Any:
    return dataclasses.replace(behaviour, **changes)


__all__ = [
    "CHUNKS",
    "FAKES",
    "MODEL",
    "REPLY",
    "TOOL_ARGS",
    "FakeAnthropic",
    "FakeGemini",
    "FakeOpenAI",
    "Upstream",
    "pieces_sent",
    "replace",
    "suite_config",
]
