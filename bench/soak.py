"""Soak: steady load through the proxy for minutes, sampling its memory, to show it does not grow.

Starts bench/upstream.py and `lip serve` (limits, usage recording and metrics on, as in
`bench/run.py --limits`), drives a steady mix of non-streaming and streaming requests at a fixed
concurrency, samples the proxy's RSS every ``--every`` seconds, and prints the samples and the
growth between the end of the warm-up and the end. Everything on 127.0.0.1; it stops by itself.

Run: .venv/bin/python bench/soak.py --minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from procstats import cpu_seconds, rss_mb
from run import free_port

LIMITS = ("{tokenizer: o200k_base, limits: {context_window: 128000, max_input_tokens: 100000, "
          "max_output_tokens: 4096, requests_per_minute: 100000000, tokens_per_minute: 1000000000000}}")


async def drive(url: str, seconds: float, concurrency: int, counts: dict[str, int]) -> None:
    plain = {"model": "bench:bench-model", "messages": [{"role": "user", "content": "hello there"}]}
    streamed = {**plain, "stream": True}
    end = time.monotonic() + seconds

    async def worker(index: int, session: aiohttp.ClientSession) -> None:
        n = 0
        while time.monotonic() < end:
            body = streamed if (n + index) % 2 else plain
            n += 1
            try:
                async with session.post(url, json=body) as response:
                    await response.read()
                    counts["ok" if response.status == 200 else "errors"] += 1
            except aiohttp.ClientError:
                counts["errors"] += 1

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(i, session) for i in range(concurrency)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the baseline sample")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    python = sys.executable
    here = Path(__file__).parent
    with tempfile.TemporaryDirectory(prefix="lip-soak-") as tmp:
        up_port, proxy_port = free_port(), free_port()
        lifetime = str(int(args.minutes * 60 + args.warmup + 120))
        upstream = subprocess.Popen([python, str(here / "upstream.py"), "--port", str(up_port), "--lifetime", lifetime],
                                    stdout=subprocess.DEVNULL)
        config = Path(tmp) / "backends" / "bench"
        config.mkdir(parents=True)
        (config / "backend.yaml").write_text(f"backend_type: custom\napi_base_url: http://127.0.0.1:{up_port}/v1\n"
                                             f"models:\n  bench-model: {LIMITS}\n")
        proxy = subprocess.Popen([python, "-m", "lip", "serve", "--config-dir", tmp, "--port", str(proxy_port),
                                  "--log-level", "warning", "--usage-store", f"sqlite:///{tmp}/usage.db"],
                                 cwd=tmp, stdout=subprocess.DEVNULL)
        try:
            time.sleep(3)
            url = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
            counts = {"ok": 0, "errors": 0}
            total = args.warmup + args.minutes * 60
            samples: list[tuple[float, float, float, int]] = []

            async def sample() -> None:
                start = time.monotonic()
                while time.monotonic() - start < total:
                    samples.append((time.monotonic() - start, rss_mb(proxy.pid), cpu_seconds(proxy.pid), counts["ok"]))
                    await asyncio.sleep(args.every)
                samples.append((time.monotonic() - start, rss_mb(proxy.pid), cpu_seconds(proxy.pid), counts["ok"]))

            async def both() -> None:
                await asyncio.gather(drive(url, total, args.concurrency, counts), sample())

            asyncio.run(both())
        finally:
            proxy.terminate()
            upstream.terminate()
            proxy.wait(timeout=20)
    print("| t (s) | RSS (MB) | proxy CPU (s) | requests |\n|---|---|---|---|")
    for t, rss, cpu, ok in samples:
        print(f"| {t:.0f} | {rss:.1f} | {cpu:.1f} | {ok} |")
    base = next((s for s in samples if s[0] >= args.warmup), samples[0])
    last = samples[-1]
    print(f"\nrequests: {counts['ok']} ok, {counts['errors']} errors; RSS after warm-up {base[1]:.1f} MB, "
          f"at the end {last[1]:.1f} MB, growth {last[1] - base[1]:+.1f} MB over {(last[0] - base[0]) / 60:.1f} min")


if __name__ == "__main__":
    main()
