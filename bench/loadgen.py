"""Closed-loop async HTTP load generator for OpenAI-style chat completions.

``--concurrency`` workers share one keep-alive ``aiohttp`` session; each sends a
request, reads the whole response, and immediately sends the next one. The run is
``--warmup`` seconds (not recorded) followed by a ``--duration`` second measured
window; a request counts when it *completes* inside the window. Workers stop
issuing at the end of the window, and in-flight requests get a short grace period.
The run is also bounded by ``--max-requests``.

Recorded per request: latency (send -> last body byte) and, for streams, TTFT (send
-> arrival of the first body bytes that contain a ``data:`` SSE event).

With ``--watch-pid PID`` (repeatable) the CPU time (utime+stime from /proc, the
process *and its descendants*) of those processes is sampled exactly at the window
boundaries, so CPU-per-request numbers come from the kernel, not from this tool.

Run: ``python bench/loadgen.py --url http://127.0.0.1:8001/v1/chat/completions
--model bench-model --concurrency 16 --duration 5 [--stream] [--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from procstats import CLK_TCK, cpu_seconds, self_cpu_seconds, tree

PROMPT = "Say hello in twenty words."
WORDS = ("the", "proxy", "counts", "every", "token", "of", "a", "long", "prompt", "before", "it", "goes",
         "upstream", "and", "remembers", "what", "it", "counted", "so", "a", "resent", "history", "is", "cheap")
ERROR_PAUSE_S = 0.01


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(values: list[float]) -> dict[str, float | None]:
    s = sorted(values)
    return {
        "p50": percentile(s, 50),
        "p90": percentile(s, 90),
        "p99": percentile(s, 99),
        "max": s[-1] if s else None,
        "mean": (sum(s) / len(s)) if s else None,
    }


@dataclass
class Sample:
    done_at: float
    latency_s: float
    ttft_s: float | None
    ok: bool
    error: str | None = None


@dataclass
class State:
    stop_at: float
    max_requests: int
    issued: int = 0
    samples: list[Sample] = field(default_factory=list)


def long_prompt(chars: int) -> str:
    """``chars`` characters of varied prose (words and numbers), the same on every call."""
    text = " ".join(f"{WORDS[i % len(WORDS)]} {i % 997}," if i % 7 == 0 else WORDS[i % len(WORDS)]
                    for i in range(chars // 3 + 1))
    return text[:chars]


def request_body(model: str, stream: bool, max_tokens: int, prompt_chars: int = 0) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": long_prompt(prompt_chars) if prompt_chars else PROMPT}],
        "max_tokens": max_tokens,
        "stream": stream,
        "prompt_chars": prompt_chars,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


async def one_request(
    session: aiohttp.ClientSession, url: str, body: bytes, stream: bool
) -> tuple[float | None, bool, str | None]:
    """Returns (ttft offset from *now*, ok, error); latency is measured by the caller."""
    t0 = time.perf_counter()
    async with session.post(url, data=body) as resp:
        if not stream:
            data = await resp.read()
            if resp.status != 200:
                return None, False, f"HTTP {resp.status}: {data[:120]!r}"
            if b'"choices"' not in data:
                return None, False, f"no choices in body: {data[:120]!r}"
            return None, True, None
        ttft: float | None = None
        buf = bytearray()
        async for chunk in resp.content.iter_any():
            buf += chunk
            if ttft is None and b"data:" in buf:
                ttft = time.perf_counter() - t0
        if resp.status != 200:
            return ttft, False, f"HTTP {resp.status}: {bytes(buf[:120])!r}"
        if b"[DONE]" not in buf[-64:]:
            return ttft, False, f"stream did not end with [DONE]: {bytes(buf[-120:])!r}"
        if buf.count(b"data:") < 2:
            return ttft, False, "stream had fewer than 2 data events"
        return ttft, True, None


async def worker(session: aiohttp.ClientSession, url: str, body: bytes, stream: bool, st: State) -> None:
    while time.perf_counter() < st.stop_at and st.issued < st.max_requests:
        st.issued += 1
        t0 = time.perf_counter()
        error: str | None
        try:
            ttft, ok, error = await one_request(session, url, body, stream)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            ttft, ok, error = None, False, f"{type(exc).__name__}: {exc}"
        t1 = time.perf_counter()
        st.samples.append(Sample(t1, t1 - t0, ttft, ok, error))
        if not ok:
            await asyncio.sleep(ERROR_PAUSE_S)


def _cpu_snapshot(pids: dict[int, list[int]]) -> dict[int, float]:
    return {root: sum(cpu_seconds(p) for p in members) for root, members in pids.items()}


async def run_load(
    url: str,
    model: str,
    *,
    stream: bool,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    max_requests: int = 2_000_000,
    timeout_s: float = 30.0,
    max_tokens: int = 64,
    headers: dict[str, str] | None = None,
    watch_pids: list[int] | None = None,
    prompt_chars: int = 0,
) -> dict[str, Any]:
    body = request_body(model, stream, max_tokens, prompt_chars)
    # Resolve process trees once, before load, so sampling at the boundaries is cheap.
    watched = {pid: tree(pid) for pid in (watch_pids or [])}
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=60, ttl_dns_cache=None)
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        headers={"Content-Type": "application/json", "Authorization": "Bearer bench", **(headers or {})},
        auto_decompress=False,
    )
    start = time.perf_counter()
    st = State(stop_at=start + warmup_s + duration_s, max_requests=max_requests)
    async with session:
        tasks = [asyncio.create_task(worker(session, url, body, stream, st)) for _ in range(concurrency)]
        # Window start: sample CPU exactly when the warm-up ends.
        await asyncio.sleep(max(0.0, start + warmup_s - time.perf_counter()))
        w_start = time.perf_counter()
        cpu0, self0 = _cpu_snapshot(watched), self_cpu_seconds()
        await asyncio.sleep(max(0.0, st.stop_at - time.perf_counter()))
        w_end = time.perf_counter()
        cpu1, self1 = _cpu_snapshot(watched), self_cpu_seconds()
        # Let in-flight requests finish (not counted), but bounded.
        _done, pending = await asyncio.wait(tasks, timeout=min(timeout_s, 5.0))
        for t in pending:
            t.cancel()
        for t in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    window = w_end - w_start
    in_window = [s for s in st.samples if w_start <= s.done_at <= w_end]
    ok = [s for s in in_window if s.ok]
    errors = [s for s in in_window if not s.ok]
    err_counts = Counter((s.error or "?")[:160] for s in errors)
    ttfts = [s.ttft_s * 1000.0 for s in ok if s.ttft_s is not None]
    cpu = {
        str(pid): {
            "cpu_s": cpu1[pid] - cpu0[pid],
            "cpu_ms_per_req": ((cpu1[pid] - cpu0[pid]) * 1000.0 / len(ok)) if ok else None,
            "cpu_pct": 100.0 * (cpu1[pid] - cpu0[pid]) / window if window > 0 else None,
            "pids": watched[pid],
        }
        for pid in watched
    }
    return {
        "url": url,
        "model": model,
        "stream": stream,
        "concurrency": concurrency,
        "warmup_s": warmup_s,
        "window_s": window,
        "issued_total": st.issued,
        "requests": len(ok),
        "errors": len(errors),
        "error_samples": dict(err_counts.most_common(3)),
        "rps": len(ok) / window if window > 0 else 0.0,
        "latency_ms": summarize([s.latency_s * 1000.0 for s in ok]),
        "ttft_ms": summarize(ttfts) if stream else None,
        "watched_cpu": cpu,
        "loadgen_cpu_pct": 100.0 * (self1 - self0) / window if window > 0 else None,
        "clk_tck": CLK_TCK,
    }


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def print_human(r: dict[str, Any]) -> None:
    lat = r["latency_ms"]
    print(
        f"{r['url']} stream={r['stream']} c={r['concurrency']} window={r['window_s']:.2f}s "
        f"ok={r['requests']} err={r['errors']} rps={r['rps']:.1f} "
        f"p50={_fmt(lat['p50'])}ms p99={_fmt(lat['p99'])}ms loadgen_cpu={_fmt(r['loadgen_cpu_pct'])}%"
    )
    if r["ttft_ms"]:
        print(f"  ttft p50={_fmt(r['ttft_ms']['p50'])}ms p99={_fmt(r['ttft_ms']['p99'])}ms")
    for pid, c in r["watched_cpu"].items():
        cpu_ms = c["cpu_s"] * 1000
        print(f"  pid {pid}: cpu {cpu_ms:.0f}ms ({_fmt(c['cpu_pct'])}%), {_fmt(c['cpu_ms_per_req'])}ms/req")
    for msg, n in r["error_samples"].items():
        print(f"  error x{n}: {msg}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="full URL, e.g. http://127.0.0.1:8001/v1/chat/completions")
    ap.add_argument("--model", default="bench-model")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--duration", type=float, default=5.0, help="measured window, seconds (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0, help="unrecorded warm-up, seconds (default 1)")
    ap.add_argument("--max-requests", type=int, default=2_000_000, help="hard cap on requests issued")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    ap.add_argument("--header", action="append", default=[], help="extra 'Name: value' header (repeatable)")
    ap.add_argument("--watch-pid", type=int, action="append", default=[], help="sample CPU of PID (+children)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    ap.add_argument("--prompt-chars", type=int, default=0,
                    help="send a prompt of this many characters (same every request) instead of a short one")
    args = ap.parse_args(argv)
    if args.concurrency < 1 or args.duration <= 0 or args.warmup < 0:
        ap.error("need --concurrency >= 1, --duration > 0, --warmup >= 0")
    if not args.url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
        ap.error("this benchmark only talks to loopback URLs")
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}

    coro = run_load(
        args.url,
        args.model,
        stream=args.stream,
        concurrency=args.concurrency,
        duration_s=args.duration,
        warmup_s=args.warmup,
        max_requests=args.max_requests,
        timeout_s=args.timeout,
        headers=headers,
        prompt_chars=args.prompt_chars,
        watch_pids=args.watch_pid,
    )
    try:
        import uvloop  # noqa: PLC0415

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(coro)
    if args.json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    else:
        print_human(result)


if __name__ == "__main__":
    main()
