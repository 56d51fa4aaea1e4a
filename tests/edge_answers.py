"""An upstream's answer as the chat endpoint hands it to a surface: its events folded for a client of
``protocol`` (lip.core.opaque.for_client), then collected into one ChatResponse."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from lip.core.model import ChatResponse, Collector, StreamEvent
from lip.core.opaque import for_client


def answer_for(events: Iterable[StreamEvent], protocol: str) -> ChatResponse:
    async def run() -> ChatResponse:
        async def source() -> AsyncIterator[StreamEvent]:
            for event in events:
                yield event
        collector = Collector()
        async for event in for_client(source(), protocol):
            collector.add(event)
        return collector.result()
    return asyncio.run(run())
