"""Which upstream HTTP client costs less CPU per request: aiohttp or httpx (the proxy's choice).

Starts bench/upstream.py, then sends the same non-streaming and streaming chat requests with each
client from one event loop (keep-alive pool, concurrency 8) and reports CPU ms per request of this
process (the client's cost plus a constant loop overhead) and requests per second.

Run: .venv/bin/python bench/clients.py [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import orjson
import uvloop

BODY = orjson.dumps({"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]})
STREAM_BODY = orjson.dumps({"model": "bench-model", "stream": True, "messages": [{"role": "user", "content": "hi"}]})


async def run(n: int, concurrency: int, one: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    queue = iter(range(n))

    async def worker() -> None:
        for _ in queue:
            await one()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - cpu) * 1000 / n, n / (time.perf_counter() - wall)


async def measure(url: str, n: int, concurrency: int) -> list[tuple[str, str, float, float]]:
    rows = []
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession() as session:

        async def aio_plain() -> None:
            async with session.post(url, data=BODY, headers=headers) as response:
                await response.read()

        async def aio_stream() -> None:
            async with session.post(url, data=STREAM_BODY, headers=headers) as response:
                async for _ in response.content.iter_any():
                    pass

        for label, fn in (("non-stream", aio_plain), ("stream", aio_stream)):
            await run(n // 10, concurrency, fn)
            rows.append(("aiohttp", label, *await run(n, concurrency, fn)))
    async with httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=64)) as client:

        async def hx_plain() -> None:
            response = await client.post(url, content=BODY, headers=headers)
            response.read()

        async def hx_stream() -> None:
            async with client.stream("POST", url, content=STREAM_BODY, headers=headers) as response:
                async for _ in response.aiter_raw():
                    pass

        for label, fn in (("non-stream", hx_plain), ("stream", hx_stream)):
            await run(n // 10, concurrency, fn)
            rows.append(("httpx", label, *await run(n, concurrency, fn)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    upstream = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("upstream.py")), "--port", "0", "--lifetime", "120",
         "--exit-with-parent"], stdout=subprocess.PIPE, text=True,
    )
    try:
        assert upstream.stdout is not None
        line = upstream.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1] + "/v1/chat/completions"
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {0})
        rows = uvloop.run(measure(url, args.requests, args.concurrency))
    finally:
        upstream.terminate()
    print("| client | request | CPU ms/request | requests/s |\n|---|---|---|---|")
    for client, kind, cpu, rps in rows:
        print(f"| {client} | {kind} | {cpu:.3f} | {rps:.0f} |")


if __name__ == "__main__":
    main()
