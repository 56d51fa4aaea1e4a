"""The fault suite as a table: for each kind of upstream failure, what the client got, and how long it took.

Runs the real proxy (in this process, on 127.0.0.1) in front of the fake upstreams of ``tests/fakes``:
a primary that misbehaves on cue and one healthy fallback route (``up:m|fb:m``), with a retry budget
of 2 (``max_retries: 2``, ``retry_delay: 0.2``), ``first_token_timeout`` and ``stream_idle_timeout``
of 2 s, ``breaker_failures: 3`` and ``breaker_cooldown: 2`` (and a ``hedge`` route: the primary with
``hedge_after: 0.5``). Each kind is one streamed request through
the openai SDK (Chat Completions), except the outage (several requests) and the tool call. Outcomes:

- **rescued**: the client's whole answer is the complete answer (the fallback's, or the primary's
  after a retry), in time;
- **answered late**: complete, but after more than 1.5 ``first_token_timeout`` of waiting that no
  upstream asked for (``Retry-After`` waits are asked for): a silent upstream should cost one
  time-out (or, hedged, ``hedge_after``);
- **clean error**: the client got an error in its protocol naming the failure (never a truncated
  answer presented as complete) — right for a content filter, which is not evaded by failing over;
- **wrong**: anything else (a truncated or duplicated answer): a defect.

Also printed: the time-to-rescue of a cut stream, from the last chunk before the cut to the first
continued chunk, per upstream protocol (median of ``--repeat`` runs).

Run: ``.venv/bin/python bench/faults.py`` (about a minute).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fakes import anthropic_upstream, openai_upstream  # noqa: E402
from fakes.anthropic_upstream import FakeAnthropic  # noqa: E402
from fakes.gemini_upstream import FakeGemini, GeminiBehaviour  # noqa: E402
from fakes.openai_upstream import Behaviour, FakeOpenAI, ToolCallSpec  # noqa: E402
from integration.conftest import ProxyServer, serve_proxy, write_backend  # noqa: E402

REPLY = "The quick brown fox jumps over the lazy dog, then rests under the old oak tree by the river."
TIMEOUT = 2.0
COOLDOWN = 2.0
ARGS = '{"city": "Paris", "days": [1, 2, 3], "unit": "celsius"}'


@dataclass
class Outcome:
    kind: str
    result: str
    wall: float
    note: str = ""


def configure(root: Path, primary: str, fallback: str, protocol: str = "openai") -> Path:
    headers = f'headers:\n  anthropic-version: "{anthropic_upstream.VERSION}"\n' if protocol == "anthropic" else ""
    write_backend(root, "up", f"backend_type: custom\nprotocol: {protocol}\napi_base_url: {primary}\n{headers}"
                  f"max_retries: 2\nretry_delay: 0.2\nfirst_token_timeout: {TIMEOUT}\n"
                  f"stream_idle_timeout: {TIMEOUT}\ntimeout: 10\nmodels:\n  m: {{}}\n")
    write_backend(root, "fb", f"backend_type: custom\nprotocol: {protocol}\napi_base_url: {fallback}\n{headers}"
                  "max_retries: 2\nretry_delay: 0.2\nmodels:\n  m: {}\n  m-large: {}\n")
    write_backend(root, "hedge", f"backend_type: custom\nprotocol: {protocol}\napi_base_url: {primary}\n{headers}"
                  f"max_retries: 2\nfirst_token_timeout: {TIMEOUT}\nhedge_after: 0.5\nmodels:\n  m: {{}}\n")
    (root / "proxy.yaml").write_text(f"routing:\n  breaker_failures: 3\n  breaker_cooldown: {COOLDOWN}\n")
    return root


def stream(proxy: ProxyServer, model: str, tools: bool = False) -> tuple[str, str, list[float], Exception | None]:
    """(text, tool arguments, arrival time of each chunk, error) of one streamed request."""
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0, timeout=30)
    text, args, times = [], [], []
    extra: dict[str, Any] = {}
    if tools:
        extra["tools"] = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    try:
        for chunk in client.chat.completions.create(model=model, stream=True, messages=[
                {"role": "user", "content": "Tell me about the fox."}], **extra):
            for choice in chunk.choices:
                if choice.delta.content:
                    text.append(choice.delta.content)
                    times.append(time.perf_counter())
                for call in choice.delta.tool_calls or []:
                    if call.function and call.function.arguments:
                        args.append(call.function.arguments)
                        times.append(time.perf_counter())
    except openai.APIError as error:
        return "".join(text), "".join(args), times, error
    return "".join(text), "".join(args), times, None


def judge(kind: str, expected: str, got: str, error: Exception | None, wall: float, *, asked_wait: float = 0.0,
          note: str = "") -> Outcome:
    if error is not None:
        return Outcome(kind, "clean error" if got != expected else "wrong", wall, note or type(error).__name__)
    if got != expected:
        return Outcome(kind, "wrong", wall, f"got {got[:40]!r}")
    late = wall - asked_wait > 1.5 * TIMEOUT
    return Outcome(kind, "answered late" if late else "rescued", wall, note)


Case = Callable[[ProxyServer, FakeOpenAI, FakeOpenAI], Outcome]


def timed(run: Callable[[], tuple[str, str, list[float], Exception | None]]
          ) -> tuple[str, str, list[float], Exception | None, float]:
    started = time.perf_counter()
    text, args, times, error = run()
    return text, args, times, error, time.perf_counter() - started


def simple(kind: str, primary: Behaviour | list[Behaviour], model: str = "up:m|fb:m", asked_wait: float = 0.0,
           expected: str = REPLY) -> Case:
    def case(proxy: ProxyServer, up: FakeOpenAI, fb: FakeOpenAI) -> Outcome:
        faults = primary if isinstance(primary, list) else [primary]
        up.enqueue(*(dataclasses.replace(b, reply=REPLY, chunks=8) for b in faults))
        text, _, _, error, wall = timed(lambda: stream(proxy, model))
        note = f"primary {len(up.chat_requests())}, fallback {len(fb.chat_requests())} calls"
        return judge(kind, expected, text, error, wall, asked_wait=asked_wait, note=note)
    return case


def outage(proxy: ProxyServer, up: FakeOpenAI, fb: FakeOpenAI) -> Outcome:
    """The primary answers 503 for a while, then heals: every request is answered, and the primary
    is back within one cooldown. The wall time is from its healing to its first answer."""
    up.default = Behaviour(status=503)
    answered = all(stream(proxy, "up:m|fb:m")[0] == REPLY for _ in range(4))
    up.default = Behaviour(reply=REPLY)
    healed = time.perf_counter()
    while time.perf_counter() - healed < 3 * COOLDOWN:
        with httpx.stream("POST", proxy.url + "/v1/chat/completions", timeout=30, json={
                "model": "up:m|fb:m", "messages": [{"role": "user", "content": "hi"}]}) as response:
            backend = response.headers.get("x-lip-backend")
            response.read()
        if backend == "up":
            break
        time.sleep(0.1)
    wall = time.perf_counter() - healed
    back = backend == "up" and wall <= COOLDOWN + 0.5
    note = f"{len(up.chat_requests())} primary calls in all; back on the primary after {wall:.2f} s"
    return Outcome("outage and recovery", "rescued" if answered and back else "wrong", wall, note)


def usage_reporting(proxy: ProxyServer, up: FakeOpenAI, fb: FakeOpenAI) -> Outcome:
    """A cut stream continued on the fallback: the record names the fallback, says where it continued,
    and bills both attempts (more output tokens than the fallback alone reported)."""
    up.enqueue(Behaviour(reply=REPLY, chunks=8, cut_after_chunks=4))
    text, _, _, error, wall = timed(lambda: stream(proxy, "up:m|fb:m"))
    record = httpx.get(proxy.url + "/v1/usage", params={"limit": 1}).json()["records"][0]
    fallback_only = len(REPLY.split())
    good = (text == REPLY and error is None and record["backend"] == "fb" and record["continued_from"]
            and record["output_tokens"] > fallback_only)
    note = f"continued_from={record['continued_from']} in={record['input_tokens']} out={record['output_tokens']}"
    return Outcome("usage reporting", "rescued" if good else "wrong", wall, note)


def tool_cut(proxy: ProxyServer, up: FakeOpenAI, fb: FakeOpenAI) -> Outcome:
    up.enqueue(Behaviour(tool_call=ToolCallSpec("get_weather", ARGS, pieces=4), cut_after_chunks=3))
    fb.enqueue(Behaviour(tool_call=ToolCallSpec("get_weather", ARGS, pieces=4)))
    _, args, _, error, wall = timed(lambda: stream(proxy, "up:m|fb:m", tools=True))
    return judge("tool call cut mid-arguments", ARGS, args, error, wall, note="restart reproduced the call")


CASES: list[tuple[str, Case]] = [
    ("429 with Retry-After (once)", simple("429 with Retry-After (once)",
                                           Behaviour(status=429, headers={"Retry-After": "1"}), asked_wait=1.0)),
    ("429 without Retry-After", simple("429 without Retry-After", [Behaviour(status=429)] * 3)),
    ("500 (once)", simple("500 (once)", Behaviour(status=500))),
    ("503 (every attempt)", simple("503 (every attempt)", [Behaviour(status=503)] * 3)),
    ("connection reset", simple("connection reset", [Behaviour(reset_before_headers=True)] * 3)),
    ("no response", simple("no response", [Behaviour(silence=True)] * 3)),
    ("slow first token", simple("slow first token", [Behaviour(first_chunk_delay=5)] * 3)),
    ("slow first token, hedged", simple("slow first token, hedged (hedge_after 0.5)",
                                        [Behaviour(first_chunk_delay=5)] * 3, model="hedge:m|fb:m")),
    ("stream cut mid-answer", simple("stream cut mid-answer", Behaviour(chunks=8, cut_after_chunks=4))),
    ("stream stall", simple("stream stall", Behaviour(chunks=8, stall_after_chunks=4))),
    ("malformed event", simple("malformed event", Behaviour(chunks=8, malformed_after_chunks=4))),
    ("upstream error event", simple("upstream error event", Behaviour(chunks=8, error_after_chunks=4))),
    ("content filter (400)", simple("content filter (400)", Behaviour(status=400, error_code="content_filter",
                                                                       error_message="flagged"))),
    ("context length (400)", simple("context length (400)", Behaviour(
        status=400, error_code="context_length_exceeded", error_message="maximum context length"),
        model="up:m|fb:m-large")),
    ("outage and recovery", outage),
    ("usage reporting", usage_reporting),
    ("tool call cut mid-arguments", tool_cut),
]


@contextlib.contextmanager
def pair(protocol: str) -> Iterator[tuple[Any, Any, ProxyServer]]:
    fake = {"openai": FakeOpenAI, "anthropic": FakeAnthropic, "gemini": FakeGemini}[protocol]
    with fake() as up, fake() as fb, tempfile.TemporaryDirectory(prefix="lip-faults-") as root:
        with serve_proxy(configure(Path(root), up.base_url, fb.base_url, protocol)) as proxy:
            yield up, fb, proxy


def run_cases() -> list[Outcome]:
    outcomes = []
    for _, case in CASES:
        with pair("openai") as (up, fb, proxy):
            up.default = Behaviour(reply=REPLY, chunks=8)
            fb.default = Behaviour(reply=REPLY, chunks=8)
            outcomes.append(case(proxy, up, fb))
    return outcomes


def time_to_rescue(protocol: str, repeat: int) -> float:
    """Median seconds from the last chunk before a cut to the first continued chunk."""
    gaps = []
    behaviours = {
        "openai": lambda cut: openai_upstream.Behaviour(reply=REPLY, chunks=8, cut_after_chunks=cut),
        "anthropic": lambda cut: anthropic_upstream.Behaviour(reply=REPLY, chunks=8, cut_after_events=cut),
        "gemini": lambda cut: GeminiBehaviour(reply=REPLY, chunks=8, cut_after_chunks=cut),
    }
    lead = {"openai": 1, "anthropic": 3, "gemini": 0}[protocol]
    with pair(protocol) as (up, fb, proxy):
        fb.default = behaviours[protocol](None)
        for _ in range(repeat):
            up.enqueue(behaviours[protocol](lead + 4))
            text, _, times, error = stream(proxy, "up:m|fb:m")
            if error is None and text == REPLY and len(times) > 4:
                gaps.append(times[4] - times[3])
    return statistics.median(gaps) if gaps else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="cut streams per protocol for time-to-rescue")
    args = parser.parse_args()
    logging.getLogger("lip").setLevel(logging.ERROR)  # the router's warnings about each fault
    outcomes = run_cases()
    print(f"Fault suite: primary + one fallback route, max_retries 2, first_token_timeout {TIMEOUT:g} s, "
          f"stream_idle_timeout {TIMEOUT:g} s, breaker_cooldown {COOLDOWN:g} s; openai SDK, Chat Completions, "
          "openai upstreams\n")
    print("| fault | outcome | wall (s) | note |\n| --- | --- | ---: | --- |")
    for o in outcomes:
        print(f"| {o.kind} | {o.result} | {o.wall:.2f} | {o.note} |")
    counts = {r: sum(o.result == r for o in outcomes) for r in ("rescued", "answered late", "clean error", "wrong")}
    print("\n" + ", ".join(f"{n} {r}" for r, n in counts.items()) + f" (of {len(outcomes)})\n")
    print("| upstream protocol | time-to-rescue of a cut stream (median, ms) |\n| --- | ---: |")
    for protocol in ("openai", "anthropic", "gemini"):
        print(f"| {protocol} | {time_to_rescue(protocol, args.repeat) * 1000:.1f} |")


if __name__ == "__main__":
    main()
