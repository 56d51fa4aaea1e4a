"""An app built by ``lip.app.build`` driven in-process: its lifespan run, requests sent through httpx's
ASGI transport (no socket is opened)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from lip.app import Settings, build
from shared_data import shared_encoding

MAIN = """\
backend_type: custom
api_base_url: http://127.0.0.1:9/v1
models:
  gpt-4o:
    limits: {context_window: 128000, max_output_tokens: 4096}
"""
OTHER = "backend_type: custom\napi_base_url: http://127.0.0.1:9/v1\nmodels:\n  gpt-4o-mini: {}\n"


def config_dir(root: Path, proxy: str = "default_backend: main\n") -> Path:
    """``main`` (gpt-4o, with limits) and ``other`` (gpt-4o-mini): keyless backends never called here."""
    for name, text in (("main", MAIN), ("other", OTHER)):
        (root / "backends" / name).mkdir(parents=True, exist_ok=True)
        (root / "backends" / name / "backend.yaml").write_text(text)
    (root / "proxy.yaml").write_text(proxy)
    return root


@asynccontextmanager
async def serve(root: Path, environ: Mapping[str, str] | None = None,
                **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app of ``root`` (and ``settings``) between its lifespan's start-up and shut-down, and a client for it."""
    options: dict[str, Any] = {"usage_store": "none", "encodings": shared_encoding, **settings}
    app = build(Settings(config_dir=root, environ=dict(environ or {}), **options))
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started
    try:
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://lip.test") as client:
            yield client
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
