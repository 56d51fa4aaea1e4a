"""The built-in offline backend: deterministic answers, streamed in chunks, with realistic usage."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator, Callable

from lip.core.model import (
    ChatRequest,
    Finish,
    ResponseStart,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)

CHUNKS = 20
ECHO_CHARS = 200


class MockConnector:
    """Answers with text derived from the last user message; no network, no key.

    With tools and ``tool_choice`` "required" (or naming a function) it calls that tool
    (the first one for "required") with arguments ``{"mock": true}``, streamed in pieces.
    ``max_tokens`` truncates the answer (finish reason "length").
    """

    def __init__(self, count_tokens: Callable[[str], int], chunk_delay: float = 0.0) -> None:
        self._count = count_tokens
        self._delay = chunk_delay

    async def stream(self, request: ChatRequest, upstream_model: str) -> AsyncGenerator[StreamEvent, None]:
        prompt = "\n".join(m.text() for m in request.messages)
        input_tokens = self._count(prompt) + 3 * len(request.messages) + 3
        digest = hashlib.blake2b(f"{upstream_model}\n{prompt}".encode(), digest_size=8).hexdigest()
        yield ResponseStart(id=f"chatcmpl-mock-{digest}", model=upstream_model, created=1_700_000_000)
        tool = self._tool_to_call(request)
        if tool is not None:
            arguments = '{"mock": true}'
            yield ToolCallDelta(index=0, id=f"call_mock_{digest[:8]}", name=tool, arguments="")
            for piece in (arguments[:5], arguments[5:10], arguments[10:]):
                yield ToolCallDelta(index=0, arguments=piece)
            yield Finish("tool_calls")
            yield UsageReport(Usage(input_tokens=input_tokens, output_tokens=self._count(tool + arguments)))
            return
        text, reason = self._answer(request, upstream_model)
        for piece in _split(text, CHUNKS):
            if self._delay:
                await asyncio.sleep(self._delay)
            yield TextDelta(piece)
        yield Finish(reason)
        yield UsageReport(Usage(input_tokens=input_tokens, output_tokens=self._count(text)))

    def _answer(self, request: ChatRequest, model: str) -> tuple[str, str]:
        last = next((m.text() for m in reversed(request.messages) if m.role == "user"), "")
        echo = " ".join(last.split())
        if len(echo) > ECHO_CHARS:
            echo = echo[:ECHO_CHARS] + "..."
        text = f"This is the mock backend of the LLM Interactive Proxy, answering as {model}. You said: {echo}"
        limit = request.max_output_tokens
        if limit is not None and self._count(text) > limit:
            words = text.split(" ")
            while words and self._count(" ".join(words)) > limit:
                words.pop()
            return " ".join(words), "length"
        return text, "stop"

    @staticmethod
    def _tool_to_call(request: ChatRequest) -> str | None:
        if not request.tools:
            return None
        choice = request.tool_choice
        if choice is None:
            return None
        if choice.mode == "required":
            return request.tools[0].name
        return choice.name if choice.mode == "tool" else None


def _split(text: str, parts: int) -> list[str]:
    """``text`` in at most ``parts`` pieces at word boundaries, concatenating back to ``text``."""
    words = text.split(" ")
    if len(words) <= parts:
        return [w if i == 0 else " " + w for i, w in enumerate(words)]
    size, extra = divmod(len(words), parts)
    pieces, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        piece = " ".join(words[start:end])
        pieces.append(piece if i == 0 else " " + piece)
        start = end
    return pieces
