"""Benchmark the proxy against a direct baseline: same load, same fake upstream.

Starts ``bench/upstream.py`` and ``python -m lip serve`` (pointed at the upstream via a
temporary config dir) as subprocesses on 127.0.0.1, runs every scenario twice with
``bench/loadgen.py`` -- DIRECT (loadgen -> upstream) and PROXY (loadgen -> proxy ->
upstream) -- and prints a markdown table (also written to ``bench/results/latest.md``).

Everything is bounded: each run is ``--warmup`` + ``--duration`` seconds plus a short
grace period, the whole thing is capped by ``--max-total``, and all child processes are
killed on exit, Ctrl-C, SIGTERM or error (and get SIGTERM if this process dies).

Run: ``.venv/bin/python bench/run.py`` (see ``--help`` and bench/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procstats import tree, tree_cpu_seconds, tree_rss_mb

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
HOST = "127.0.0.1"
PR_SET_PDEATHSIG = 1
SCENARIOS = {"chat": False, "stream": True, "long": False}  # name -> stream?
SCENARIO_LABEL = {"chat": "chat (non-stream)", "stream": "chat stream (20 chunks)",
                  "long": "chat, 100k-char prompt"}
PROMPT_CHARS = {"long": 100_000}  # scenarios that send a long prompt (the same one every request)
# Things in flight at shutdown get this long after SIGTERM before SIGKILL.
KILL_GRACE_S = 5.0


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _preexec(cpus: set[int] | None) -> Callable[[], None]:
    def fn() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        # Get SIGTERM if the bench runner dies, however it dies (Linux only).
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return fn


class CpuQuota:
    """Caps each process of the proxy (each worker) at ``cores`` CPUs, with a cgroup per process.

    With every worker's CPU fixed, ``--workers N`` shows how throughput scales with the cores the
    workers get, even on a machine too small to give each worker a core of its own next to the load
    generator. Each process gets its own cap, so a worker that took all the connections could not
    borrow the others' CPU and pass for scaling. Needs root and the cgroup v1 or v2 ``cpu`` controller.
    """

    PERIOD_US = 100_000

    def __init__(self, cores: float) -> None:
        self.cores = cores
        self._quota = max(1000, int(cores * self.PERIOD_US))
        name = f"lip-bench-{os.getpid()}"
        v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
        try:
            if (v1 / "cpu.cfs_quota_us").exists():
                self.v2, self.path = False, v1 / name
            elif "cpu" in (v2 / "cgroup.controllers").read_text().split():
                self.v2, self.path = True, v2 / name
                (v2 / "cgroup.subtree_control").write_text("+cpu")
            else:
                raise OSError("no cgroup cpu controller")
            self.path.mkdir()
            if self.v2:
                (self.path / "cgroup.subtree_control").write_text("+cpu")
        except OSError as exc:
            raise SystemExit(f"--proxy-cpu-quota needs root and a cgroup cpu controller: {exc}") from exc
        self.capped: list[int] = []

    def cap(self, pid: int) -> None:
        """Give process ``pid`` a cgroup of its own with the quota."""
        group = self.path / f"p{pid}"
        group.mkdir(exist_ok=True)
        if self.v2:
            (group / "cpu.max").write_text(f"{self._quota} {self.PERIOD_US}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(self._quota))
        (group / "cgroup.procs").write_text(str(pid))
        self.capped.append(pid)

    def close(self) -> None:
        groups = [g for g in self.path.iterdir() if g.is_dir()] if self.path.exists() else []
        for path in [*groups, self.path]:
            for _ in range(50):  # a directory can go once its processes have exited
                try:
                    path.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self) -> None:
        """SIGTERM the child's whole process group (it has its own session), then SIGKILL."""
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=KILL_GRACE_S)
        # Workers that outlived their parent in the same group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


@dataclass
class Children:
    items: list[Child] = field(default_factory=list)

    def spawn(
        self,
        name: str,
        cmd: list[str],
        *,
        cpus: set[int] | None,
        log_dir: Path,
        env: dict[str, str],
        cwd: Path,
    ) -> Child:
        log_path = log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
                preexec_fn=_preexec(cpus),  # noqa: PLW1509 - single-threaded here
            )
        child = Child(name, popen, log_path)
        self.items.append(child)
        return child

    def stop_all(self) -> None:
        for child in reversed(self.items):
            child.stop()


def http_get_status(url: str, timeout: float = 1.0) -> int | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore *_proxy env vars
    try:
        with opener.open(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def http_post(url: str, body: dict[str, Any], timeout: float = 10.0) -> tuple[int | None, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer bench"},
        method="POST",
    )
    try:
        with opener.open(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except OSError as exc:
        return None, repr(exc).encode()


def wait_healthy(child: Child, url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.alive():
            return False
        if http_get_status(url) == 200:
            return True
        time.sleep(0.1)
    return False


def probe(url: str, model: str, stream: bool) -> str | None:
    """One request by hand; returns an error description or None if it looks right."""
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    status, data = http_post(url, body)
    if status != 200:
        return f"HTTP {status}: {data[:300]!r}"
    if stream and b"[DONE]" not in data:
        return f"stream without [DONE]: {data[:300]!r}"
    if not stream and b'"choices"' not in data:
        return f"no choices: {data[:300]!r}"
    return None


# --------------------------------------------------------------------------- load runs


def wait_listeners(port: int, count: int, timeout: float) -> bool:
    """Wait until ``count`` sockets listen on ``port`` (``lip serve --workers``: one per worker), so
    that the load generator's connections, opened together, are spread over every worker."""
    deadline = time.monotonic() + timeout
    suffix = f":{port:04X}"
    while time.monotonic() < deadline:
        try:
            lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
        except OSError:
            return True  # not Linux: nothing to wait for
        if sum(1 for ln in lines if ln.split()[1].endswith(suffix) and ln.split()[3] == "0A") >= count:
            return True
        time.sleep(0.05)
    return False


def run_loadgen(
    *,
    url: str,
    model: str,
    stream: bool,
    concurrency: int,
    duration: float,
    warmup: float,
    watch: list[int],
    cpus: set[int] | None,
    prompt_chars: int = 0,
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(BENCH_DIR / "loadgen.py"),
        "--url",
        url,
        "--model",
        model,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--json",
    ]
    if stream:
        cmd.append("--stream")
    if prompt_chars:
        cmd += ["--prompt-chars", str(prompt_chars)]
    for pid in watch:
        cmd += ["--watch-pid", str(pid)]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        timeout=warmup + duration + 60,
        check=False,
        preexec_fn=_preexec(cpus),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    return result


WRK_LUA = """wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench"
"""


def _wrk_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def run_wrk(
    *,
    url: str,
    model: str,
    concurrency: int,
    duration: float,
    cpus: set[int] | None,
    tmp: Path,
    proxy_pid: int | None,
) -> dict[str, Any]:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Say hello."}], "stream": False})
    script = tmp / f"wrk-{abs(hash(model)) % 10_000}.lua"
    script.write_text(WRK_LUA.format(body=body))
    cmd = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    cpu0 = tree_cpu_seconds(proxy_pid) if proxy_pid else 0.0
    proc = subprocess.run(
        cmd,
        capture_output=True,
        timeout=duration + 30,
        check=False,
        preexec_fn=_preexec(cpus),
    )
    cpu1 = tree_cpu_seconds(proxy_pid) if proxy_pid else 0.0
    out = proc.stdout.decode(errors="replace")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    n = int(total.group(1)) if total else 0
    return {
        "rps": float(rps.group(1)) if rps else None,
        "requests": n,
        "p50_ms": _wrk_ms(p50.group(1)) if p50 else None,
        "p99_ms": _wrk_ms(p99.group(1)) if p99 else None,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "proxy_cpu_ms_per_req": ((cpu1 - cpu0) * 1000.0 / n) if (proxy_pid and n) else None,
        "raw": out if proc.returncode == 0 else out + proc.stderr.decode(errors="replace"),
    }


# --------------------------------------------------------------------------- report


def _f(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def build_rows(results: list[dict[str, Any]]) -> list[dict[str, str]]:
    direct = {(r["scenario"], r["concurrency"]): r for r in results if r["target"] == "direct"}
    rows: list[dict[str, str]] = []
    for r in results:
        if r.get("skipped") or "load" not in r:
            r.setdefault("skipped", "interrupted")
            rows.append(
                {
                    "scenario": SCENARIO_LABEL[r["scenario"]],
                    "conc": str(r["concurrency"]),
                    "target": r["target"],
                    "req/s": f"skipped: {r['skipped']}"[:60],
                }
            )
            continue
        lg = r["load"]
        lat, ttft = lg["latency_ms"], lg["ttft_ms"]
        base = direct.get((r["scenario"], r["concurrency"]))
        is_proxy = r["target"] == "proxy"
        blat = base["load"]["latency_ms"] if (base and is_proxy and not base.get("skipped")) else None
        bttft = base["load"]["ttft_ms"] if (base and is_proxy and not base.get("skipped")) else None
        pcpu = lg["watched_cpu"].get(str(r.get("proxy_pid"))) if is_proxy else None
        rows.append(
            {
                "scenario": SCENARIO_LABEL[r["scenario"]],
                "conc": str(r["concurrency"]),
                "target": r["target"] + (f" [{r['store']}]" if r.get("store") else ""),
                "req/s": _f(lg["rps"], 0),
                "p50 ms": _f(lat["p50"]),
                "p99 ms": _f(lat["p99"]),
                "+p50 ms": _f(_sub(lat["p50"], blat["p50"])) if blat else "",
                "+p99 ms": _f(_sub(lat["p99"], blat["p99"])) if blat else "",
                "TTFT p50": _f(ttft["p50"]) if ttft else "",
                "TTFT p99": _f(ttft["p99"]) if ttft else "",
                "+TTFT p50": _f(_sub(ttft["p50"], bttft["p50"])) if (ttft and bttft) else "",
                "+TTFT p99": _f(_sub(ttft["p99"], bttft["p99"])) if (ttft and bttft) else "",
                "proxy CPU ms/req": _f(pcpu["cpu_ms_per_req"], 3) if pcpu else "",
                "proxy CPU %": _f(pcpu["cpu_pct"], 0) if pcpu else "",
                "RSS idle MB": _f(r.get("rss_before_mb"), 1) if is_proxy else "",
                "RSS after MB": _f(r.get("rss_after_mb"), 1) if is_proxy else "",
                "loadgen CPU %": _f(lg["loadgen_cpu_pct"], 0),
                "errors": str(lg["errors"]),
            }
        )
    return rows


COLUMNS = [
    "scenario",
    "conc",
    "target",
    "req/s",
    "p50 ms",
    "p99 ms",
    "+p50 ms",
    "+p99 ms",
    "TTFT p50",
    "TTFT p99",
    "+TTFT p50",
    "+TTFT p99",
    "proxy CPU ms/req",
    "proxy CPU %",
    "RSS idle MB",
    "RSS after MB",
    "loadgen CPU %",
    "errors",
]


def markdown_table(rows: list[dict[str, str]], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(r.get(c, "")) for r in rows)) for c in columns}
    lines = [
        "| " + " | ".join(c.ljust(widths[c]) for c in columns) + " |",
        "|" + "|".join("-" * (widths[c] + 2) for c in columns) + "|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(r.get(c, "").ljust(widths[c]) for c in columns) + " |")
    return "\n".join(lines)


def render(meta: dict[str, Any], results: list[dict[str, Any]], wrk: list[dict[str, Any]], notes: list[str]) -> str:
    out = [
        "# LLM Interactive Proxy — overhead benchmark",
        "",
        f"- date: {meta['date']}  ",
        f"- host: {meta['cpu']} x {meta['ncpu']} CPUs, Python {meta['python']}, lip {meta['lip_version']}  ",
        f"- window: {meta['warmup']} s warm-up + {meta['duration']} s measured per run; "
        f"stream = {meta['chunks']} content chunks, chunk delay {meta['chunk_delay_ms']} ms  ",
        f"- pinning: {meta['pinning']}; proxy workers: {meta['workers'] or 'default'}  ",
        "- latencies in ms; `+` columns = proxy minus direct for the same scenario and concurrency",
        "",
        markdown_table(build_rows(results), COLUMNS),
    ]
    if wrk:
        out += [
            "",
            "wrk cross-check (non-streaming, `wrk -t1`, same targets):",
            "",
            markdown_table(
                [
                    {
                        "conc": str(w["concurrency"]),
                        "target": w["target"],
                        "req/s": _f(w["rps"], 0),
                        "p50 ms": _f(w["p50_ms"]),
                        "p99 ms": _f(w["p99_ms"]),
                        "proxy CPU ms/req": _f(w["proxy_cpu_ms_per_req"], 3) if w["target"] == "proxy" else "",
                        "non-2xx": str(w["non_2xx"]),
                    }
                    for w in wrk
                ],
                ["conc", "target", "req/s", "p50 ms", "p99 ms", "proxy CPU ms/req", "non-2xx"],
            ),
        ]
    if notes:
        out += ["", "Notes:", "", *[f"- {n}" for n in notes]]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- main


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _lip_version() -> str:
    try:
        from importlib.metadata import version  # noqa: PLC0415

        return version("llm-interactive-proxy")
    except Exception:  # noqa: BLE001 - purely informational
        return "unknown"


def plan_cpus(pin: str, workers: int | None) -> tuple[set[int] | None, set[int] | None, str]:
    cpus = sorted(os.sched_getaffinity(0))
    if pin == "off" or len(cpus) < 2:
        return None, None, "off (all processes float over all CPUs)"
    n_proxy = max(1, len(cpus) // 2)
    proxy, load = set(cpus[:n_proxy]), set(cpus[n_proxy:])
    desc = f"proxy on CPU {sorted(proxy)}, loadgen + upstream on CPU {sorted(load)}"
    if workers and workers > len(proxy):
        desc += f" (note: {workers} workers share {len(proxy)} CPU; use --pin off to let them spread)"
    return proxy, load, desc


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0, help="unrecorded warm-up seconds per run (default 1)")
    ap.add_argument("--concurrency", default="1,16", help="comma list (default 1,16)")
    ap.add_argument("--scenarios", default="chat,stream,long", help=f"comma list of {','.join(SCENARIOS)}")
    ap.add_argument("--workers", type=int, default=None, help="pass --workers N to `lip serve`")
    ap.add_argument("--chunks", type=int, default=20, help="content chunks per streamed reply (default 20)")
    ap.add_argument("--chunk-delay-ms", type=float, default=0.0, help="upstream delay between chunks (default 0)")
    ap.add_argument("--pin", choices=["auto", "off"], default="auto", help="CPU pinning (default auto)")
    ap.add_argument("--proxy-cpu-quota", type=float, default=None, metavar="CORES",
                    help="cap the proxy's processes at CORES CPUs with a cgroup (root): for --workers scaling")
    ap.add_argument("--no-proxy", action="store_true", help="only run the direct baseline")
    ap.add_argument("--wrk", action="store_true", help="also cross-check non-streaming RPS with wrk if installed")
    ap.add_argument("--serve-arg", action="append", default=[], help="extra argument for `lip serve` (repeatable)")
    ap.add_argument("--proxy-model", default="bench:bench-model", help="model name sent through the proxy")
    ap.add_argument(
        "--proxy-cmd",
        default=None,
        help="replace `lip serve` by this command; placeholders {python} {host} {port} {config_dir} "
        "{upstream_base} (e.g. to compare with another proxy); must serve GET /health",
    )
    ap.add_argument(
        "--limits",
        action="store_true",
        help="give bench-model context/input/output limits and (very high) RPM/TPM, so every request is "
        "counted, admitted and reconciled as in production",
    )
    ap.add_argument(
        "--limits-store",
        default=None,
        metavar="STORES",
        help="comma list of memory, mmap, redis (a redis-server started on an ephemeral port) or a redis:// URL: "
        "the proxy runs once per store, with --limits, in this one run (CPU per request side by side)",
    )
    ap.add_argument("--startup-timeout", type=float, default=30.0, help="seconds to wait for /health")
    ap.add_argument("--max-total", type=float, default=300.0, help="hard cap on the whole run, seconds")
    ap.add_argument("--json-out", type=Path, default=None, help="also write raw results as JSON here")
    ap.add_argument("--md-out", type=Path, default=BENCH_DIR / "results" / "latest.md", help="markdown output")
    args = ap.parse_args(argv)
    args.store_list = [s.strip() for s in str(args.limits_store or "").split(",") if s.strip()]
    if args.store_list:
        args.limits = True
    bad = [s for s in args.store_list if s not in ("memory", "mmap", "redis") and not s.startswith("redis://")]
    if bad:
        ap.error(f"--limits-store: unknown {bad}; expected memory, mmap, redis or redis://...")
    args.concurrency_list = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    args.scenario_list = [s.strip() for s in str(args.scenarios).split(",") if s.strip()]
    unknown = [s for s in args.scenario_list if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    if not args.concurrency_list or min(args.concurrency_list) < 1 or args.duration <= 0 or args.warmup < 0:
        ap.error("need concurrency >= 1, --duration > 0, --warmup >= 0")
    return args


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    # Background jobs of non-interactive shells start with SIGINT ignored; make Ctrl-C / kill -INT work.
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, old_int)


class Bench:
    """State of one benchmark run; every child it starts is stopped in ``close``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t_start = time.monotonic()
        self.proxy_cpus, self.load_cpus, self.pin_desc = plan_cpus(args.pin, args.workers)
        self.quota = CpuQuota(args.proxy_cpu_quota) if args.proxy_cpu_quota else None
        if self.quota is not None:
            self.pin_desc += f"; each proxy process capped at {self.quota.cores:g} CPU (cgroup)"
        self.tmp = Path(tempfile.mkdtemp(prefix="lip-bench-"))
        self.children = Children()
        self.results: list[dict[str, Any]] = []
        self.wrk_results: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.upstream: Child | None = None
        self.direct_url = ""
        self.proxy: Child | None = None
        self.proxy_url = ""
        self.proxy_problem: str | None = "--no-proxy" if args.no_proxy else None
        self.store: str | None = None
        self.use_wrk = bool(args.wrk) and shutil.which("wrk") is not None
        if args.wrk and not self.use_wrk:
            self.notes.append("--wrk given but `wrk` is not installed; skipped the wrk cross-check")
        self.per_run = args.warmup + args.duration + 1.5  # + process start-up and drain
        env = {k: v for k, v in os.environ.items() if k.lower() not in {"http_proxy", "https_proxy", "all_proxy"}}
        env.update({"NO_PROXY": f"{HOST},localhost", "no_proxy": f"{HOST},localhost", "PYTHONUNBUFFERED": "1"})
        env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO / "src"), env.get("PYTHONPATH", "")] if p)
        self.env = env

    def time_left(self) -> bool:
        return bool(time.monotonic() - self.t_start + self.per_run <= self.args.max_total)

    def close(self) -> None:
        self.children.stop_all()
        if self.quota is not None:
            self.quota.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- processes
    def start_upstream(self) -> bool:
        port = free_port()
        cmd = [
            sys.executable, str(BENCH_DIR / "upstream.py"),
            "--port", str(port),
            "--chunks", str(self.args.chunks),
            "--chunk-delay-ms", str(self.args.chunk_delay_ms),
            "--lifetime", str(self.args.max_total + 60),
            "--exit-with-parent",
        ]  # fmt: skip
        self.upstream = self.children.spawn(
            "upstream", cmd, cpus=self.load_cpus, log_dir=self.tmp, env=self.env, cwd=self.tmp
        )
        if not wait_healthy(self.upstream, f"http://{HOST}:{port}/health", 15):
            print(f"upstream did not start:\n{self.upstream.log_tail()}", file=sys.stderr)
            return False
        self.direct_url = f"http://{HOST}:{port}/v1/chat/completions"
        return True

    def start_redis(self) -> str | None:
        binary = shutil.which("redis-server")
        if binary is None:
            self.notes.append("--limits-store redis: redis-server is not installed (scripts/ensure-services.sh)")
            return None
        port = free_port()
        cmd = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", str(self.tmp)]
        child = self.children.spawn("redis", cmd, cpus=self.load_cpus, log_dir=self.tmp, env=self.env, cwd=self.tmp)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and child.alive():
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return f"redis://{HOST}:{port}/0"
            time.sleep(0.05)
        self.notes.append(f"redis-server did not start: {child.log_tail(5)}")
        return None

    def store_url(self, store: str) -> str | None:
        if store == "redis":
            return self.start_redis()
        if store == "mmap":
            return f"mmap:///{self.tmp / 'ratelimit.map'}"
        return store  # memory, or a redis:// URL

    def stop_proxy(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        self.proxy, self.proxy_url, self.proxy_problem = None, "", None

    def start_proxy(self, store: str | None = None) -> None:
        cfg = self.tmp / "config"
        (cfg / "backends" / "bench").mkdir(parents=True, exist_ok=True)
        self.store = store
        proxy_yaml = "server:\n  drain_delay: 0\n"  # stopped by SIGTERM: no balancer to wait for
        if store is not None:
            url = self.store_url(store)
            if url is None:
                self.proxy_problem = f"no {store} store"
                return
            proxy_yaml += f"limits:\n  store: {url}\n"
        (cfg / "proxy.yaml").write_text(proxy_yaml)
        upstream_base = self.direct_url.removesuffix("/chat/completions")
        model_config = "{}"
        if self.args.limits:
            model_config = (
                "{tokenizer: o200k_base, limits: {context_window: 128000, max_input_tokens: 100000, "
                "max_output_tokens: 4096, requests_per_minute: 100000000, tokens_per_minute: 1000000000000}}"
            )
        (cfg / "backends" / "bench" / "backend.yaml").write_text(
            f"backend_type: custom\napi_base_url: {upstream_base}\nmodels:\n  bench-model: {model_config}\n"
        )
        port = free_port()
        cmd = [
            sys.executable, "-m", "lip", "serve",
            "--config-dir", str(cfg),
            "--host", HOST,
            "--port", str(port),
            "--default-backend", "bench",
            "--log-level", "warning",
            "--usage-store", f"sqlite:///{self.tmp / 'usage.db'}",  # recording on, never into the user's store
        ]  # fmt: skip
        if self.args.workers:
            cmd += ["--workers", str(self.args.workers)]
        cmd += self.args.serve_arg
        if self.args.proxy_cmd:  # benchmark some other proxy with the same harness
            fields = {"python": sys.executable, "host": HOST, "port": port, "config_dir": cfg}
            cmd = [part.format(upstream_base=upstream_base, **fields) for part in shlex.split(self.args.proxy_cmd)]
        proxy = self.children.spawn("proxy", cmd, cpus=self.proxy_cpus, log_dir=self.tmp, env=self.env, cwd=self.tmp)
        if wait_healthy(proxy, f"http://{HOST}:{port}/health", self.args.startup_timeout):
            self.proxy, self.proxy_url = proxy, f"http://{HOST}:{port}/v1/chat/completions"
            if self.args.workers and not wait_listeners(port, self.args.workers, self.args.startup_timeout):
                self.notes.append(f"fewer than {self.args.workers} sockets listened on port {port}: "
                                  "some workers were not up when the load started")
            time.sleep(0.5)  # let workers settle before the idle RSS reading
            if self.quota is not None:
                for pid in tree(proxy.pid):  # the proxy, or its supervisor and each worker
                    self.quota.cap(pid)
            return
        state = "exited" if not proxy.alive() else f"no 200 from /health in {self.args.startup_timeout:.0f}s"
        self.proxy_problem = f"proxy did not start ({state})"
        tail = proxy.log_tail()
        print(f"{self.proxy_problem}; log tail:\n{tail}", file=sys.stderr)
        self.notes.append(f"{self.proxy_problem}: `{' '.join(cmd[1:])}`; log tail: `{tail[-300:]}`")
        proxy.stop()

    # ---- runs
    def run_all(self, direct: bool = True) -> None:
        for scenario in self.args.scenario_list:
            stream = SCENARIOS[scenario]
            probe_err = probe(self.proxy_url, self.args.proxy_model, stream) if self.proxy else None
            if probe_err:
                self.notes.append(f"proxy probe failed for {scenario}: {probe_err}")
                print(f"proxy probe failed for {scenario}: {probe_err}", file=sys.stderr)
            for conc in self.args.concurrency_list:
                if direct:
                    self.run_one(scenario, stream, conc, "direct", None)
                self.run_one(scenario, stream, conc, "proxy", probe_err)

    def run_one(self, scenario: str, stream: bool, conc: int, target: str, probe_err: str | None) -> None:
        assert self.upstream is not None
        entry: dict[str, Any] = {"scenario": scenario, "concurrency": conc, "target": target}
        if target == "proxy" and self.store is not None:
            entry["store"] = self.store
        self.results.append(entry)
        proxy = self.proxy if target == "proxy" else None
        if target == "proxy" and (proxy is None or probe_err):
            entry["skipped"] = self.proxy_problem or "probe failed"
            return
        if not self.time_left():
            entry["skipped"] = "--max-total reached"
            return
        url, model = (self.proxy_url, self.args.proxy_model) if proxy else (self.direct_url, "bench-model")
        watch = [self.upstream.pid]
        if proxy is not None:
            entry["proxy_pid"] = proxy.pid
            entry["rss_before_mb"] = tree_rss_mb(proxy.pid)
            watch.append(proxy.pid)
        print(f"running {scenario} c={conc} {target} ...", file=sys.stderr, flush=True)
        load = run_loadgen(
            url=url,
            model=model,
            stream=stream,
            concurrency=conc,
            duration=self.args.duration,
            warmup=self.args.warmup,
            watch=watch,
            cpus=self.load_cpus,
            prompt_chars=PROMPT_CHARS.get(scenario, 0),
        )
        entry["load"] = load
        up = load["watched_cpu"].get(str(self.upstream.pid))
        entry["upstream_cpu_ms_per_req"] = up["cpu_ms_per_req"] if up else None
        if proxy is not None:
            entry["rss_after_mb"] = tree_rss_mb(proxy.pid)
            if not proxy.alive():
                self.notes.append(f"proxy died during {scenario} c={conc}: {proxy.log_tail(5)}")
                self.proxy_problem, self.proxy = "proxy died", None
        if load["error_samples"]:
            self.notes.append(f"{scenario} c={conc} {target} errors: {load['error_samples']}")
        if self.use_wrk and not stream and self.time_left():
            w = run_wrk(
                url=url,
                model=model,
                concurrency=conc,
                duration=self.args.duration,
                cpus=self.load_cpus,
                tmp=self.tmp,
                proxy_pid=proxy.pid if proxy else None,
            )
            self.wrk_results.append({"concurrency": conc, "target": target, **w})

    def summary_notes(self) -> None:
        runs = [r for r in self.results if "load" in r]
        if any((r["load"]["loadgen_cpu_pct"] or 0) > 90 and r["concurrency"] > 1 for r in runs):
            self.notes.append(
                "loadgen CPU > 90% in some runs: their req/s is (partly) bounded by the load generator; "
                "compare CPU ms/req and latency rather than req/s there"
            )
        costs = [r["upstream_cpu_ms_per_req"] for r in runs if r.get("upstream_cpu_ms_per_req")]
        if costs:
            self.notes.append(
                f"fake upstream cost {min(costs):.3f} to {max(costs):.3f} CPU ms/req (it is not the bottleneck)"
            )

    def meta(self) -> dict[str, Any]:
        a = self.args
        return {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": _cpu_model(),
            "ncpu": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "lip_version": _lip_version(),
            "warmup": a.warmup,
            "duration": a.duration,
            "chunks": a.chunks,
            "chunk_delay_ms": a.chunk_delay_ms,
            "pinning": self.pin_desc,
            "workers": a.workers,
            "wall_s": round(time.monotonic() - self.t_start, 1),
        }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    try:
        with terminate_on_sigterm():
            if not bench.start_upstream():
                return 2
            if args.store_list:
                for index, store in enumerate(args.store_list):
                    bench.start_proxy(store)
                    bench.run_all(direct=index == 0)
                    bench.stop_proxy()
            else:
                if not args.no_proxy:
                    bench.start_proxy()
                bench.run_all()
            bench.summary_notes()
    except KeyboardInterrupt:
        print("interrupted; stopping children", file=sys.stderr)
        bench.notes.append("run interrupted")
    finally:
        bench.close()

    meta = bench.meta()
    md = render(meta, bench.results, bench.wrk_results, bench.notes)
    print(md)
    args.md_out.parent.mkdir(parents=True, exist_ok=True)
    args.md_out.write_text(md)
    print(f"wrote {args.md_out} (total {meta['wall_s']} s)", file=sys.stderr)
    if args.json_out:
        for w in bench.wrk_results:
            w.pop("raw", None)
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"meta": meta, "results": bench.results, "wrk": bench.wrk_results}
        args.json_out.write_text(json.dumps(payload, indent=2))
    complete = all("load" in r or r.get("skipped") == "--no-proxy" for r in bench.results)
    return 0 if complete and "run interrupted" not in bench.notes else 1


if __name__ == "__main__":
    sys.exit(main())
