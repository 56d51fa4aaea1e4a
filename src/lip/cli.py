"""Command line: ``lip serve`` (default), ``lip check``, ``lip models``, ``lip usage``, ``lip reload``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from pydantic import ValidationError
from rich.console import Console

from lip import signals
from lip import workers as lip_workers
from lip.app import Runtime, Settings, build, build_runtime
from lip.check import check
from lip.config.schema import LimitsStoreConfig, RewriteRule
from lip.core.errors import ConfigError, ProxyError
from lip.edge.index import banner
from lip.limits.tokens import TokenizerUnavailable, check_tokenizer_data
from lip.observability import logsafe
from lip.serving import uvicorn_options
from lip.state import urls
from lip.usage.records import parse_query
from lip.usage.report import table as usage_table
from lip.usage.store import open_store, redact

log = logging.getLogger("lip")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
COMMANDS = frozenset({"serve", "check", "models", "usage", "reload", "-h", "--help"})


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config-dir", default=os.environ.get("LIP_CONFIG_DIR"),
                        help="configuration directory (env LIP_CONFIG_DIR; default ./config)")
    common.add_argument("--default-backend", default=os.environ.get("LIP_DEFAULT_BACKEND"),
                        metavar="NAME[:MODEL]",
                        help="route for requests whose model names no backend (env LIP_DEFAULT_BACKEND)")
    common.add_argument("--model-rewrite", action="append", default=[], metavar="PATTERN=REPLACEMENT",
                        help="rewrite model names (regex, whole name, \\1 groups); before proxy.yaml's rules")
    common.add_argument("--command-prefix", default=os.environ.get("LIP_COMMAND_PREFIX"),
                        help="prefix of in-chat commands (default !/; env LIP_COMMAND_PREFIX)")
    common.add_argument("--disable-commands", action="store_true",
                        default=os.environ.get("LIP_DISABLE_COMMANDS", "") in ("1", "true", "yes"),
                        help="send command text to the model unchanged (env LIP_DISABLE_COMMANDS=1)")
    common.add_argument("--limits-store", default=os.environ.get("LIP_LIMITS_STORE"), metavar="URL",
                        help="shared state (limits, sessions, breakers, stored Responses): memory, redis://..., "
                        "postgresql://..., mmap:///path or sqlite:///path; overrides proxy.yaml limits.store "
                        "(env LIP_LIMITS_STORE)")
    common.add_argument("--usage-store", default=os.environ.get("LIP_USAGE_STORE"), metavar="URL",
                        help="usage records: sqlite:///path, postgresql://..., or none (env LIP_USAGE_STORE)")
    parser = argparse.ArgumentParser(prog="lip", description="LLM Interactive Proxy")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", parents=[common], help="serve the proxy (default)")
    serve.add_argument("--host", default=os.environ.get("LIP_HOST"), help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=_env_int("LIP_PORT"), help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=_env_int("LIP_WORKERS"), help="worker processes")
    serve.add_argument("--log-level", choices=LOG_LEVELS, default=os.environ.get("LIP_LOG_LEVEL"),
                       help="debug also turns the access log and a per-request detail line on")
    serve.add_argument("--access-log", action="store_true",
                       default=os.environ.get("LIP_ACCESS_LOG", "") in ("1", "true", "yes"),
                       help="one line per request on stderr: time, method, path, status, client, backend:model, "
                            "latency, request id (env LIP_ACCESS_LOG=1; proxy.yaml logging.access)")
    reload = sub.add_parser("reload", parents=[common],
                            help="make the running server reload its configuration (SIGHUP via its pid file)")
    for command in (serve, reload):
        command.add_argument("--pid-file", default=os.environ.get("LIP_PID_FILE"), metavar="PATH",
                             help="the server's pid file (env LIP_PID_FILE; default <tmp>/lip-<port>.pid)")
    reload.add_argument("--port", type=int, default=_env_int("LIP_PORT"),
                        help="the server's port, for the default pid file (default: proxy.yaml's, else 8000)")
    serve.add_argument("--max-request-body", type=_positive, default=_env_int("LIP_MAX_REQUEST_BODY"),
                       metavar="BYTES",
                       help="largest request body (default 33554432, proxy.yaml server.max_request_body; "
                            "env LIP_MAX_REQUEST_BODY)")
    sub.add_parser("check", parents=[common], help="validate the configuration and list backends")
    sub.add_parser("models", parents=[common], help="list every routable backend:model")
    usage = sub.add_parser("usage", parents=[common], help="print usage records or totals from the usage store")
    for name, text in (("since", "from (unix time, ISO date, or an age like 24h / 7d)"), ("until", "before"),
                       ("backend", "only this backend"), ("model", "only this model"), ("client", "only this client"),
                       ("limit", "most rows (default 1000)")):
        usage.add_argument(f"--{name}", help=text)
    usage.add_argument("--group-by", choices=["model", "backend", "client", "day"], help="totals by")
    usage.add_argument("--json", action="store_true", help="print the JSON that GET /v1/usage returns")
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number of bytes, got {text!r}")
    return int(text)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else None


def _settings(args: argparse.Namespace) -> Settings:
    explicit = args.config_dir is not None
    return Settings(
        config_dir=Path(args.config_dir) if explicit else Path("config"),
        config_dir_required=explicit,
        default_backend=args.default_backend or None,
        model_rewrites=_rewrites(args.model_rewrite),
        command_prefix=args.command_prefix or None,
        disable_commands=args.disable_commands,
        usage_store=args.usage_store or None,
        limits_store=_limits_store(args.limits_store),
        max_request_body=getattr(args, "max_request_body", None) or None,
        access_log=getattr(args, "access_log", False),
    )


def _limits_store(url: str | None) -> str | None:
    if not url:
        return None
    try:
        LimitsStoreConfig(store=url)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigError([f"--limits-store / LIP_LIMITS_STORE: {reason}"]) from None
    return url


def _rewrites(texts: list[str]) -> tuple[tuple[str, str], ...]:
    rules, problems = [], []
    for text in texts:
        pattern, sep, replacement = text.partition("=")
        try:
            if not sep:
                raise ValueError("expected PATTERN=REPLACEMENT")
            RewriteRule(pattern=pattern, replacement=replacement)
        except (ValueError, ValidationError) as exc:
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ") if isinstance(exc, ValidationError) else exc
            problems.append(f"--model-rewrite {text!r}: {reason}")
            continue
        rules.append((pattern, replacement))
    if problems:
        raise ConfigError(problems)
    return tuple(rules)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or words[0] not in COMMANDS:
        words.insert(0, "serve")  # `lip --port 9000` means `lip serve --port 9000`
    args = _parser().parse_args(words)
    command = args.command
    try:
        settings = _settings(args)
        runtime = build_runtime(settings)
    except ConfigError as error:
        print(f"lip: {error}", file=sys.stderr)
        return 1
    if command == "check":
        return check(runtime)
    if command == "models":
        for route in runtime.router.routable():
            print(route.label)
        return 0
    if command == "usage":
        return show_usage(args, runtime)
    if command == "reload":
        return reload(args, runtime)
    return serve(args, runtime)


def _pid_path(args: argparse.Namespace, runtime: Runtime, port: int) -> Path:
    given = args.pid_file or runtime.config.proxy.server.pid_file
    return Path(given) if given else signals.default_pid_file(port)


def reload(args: argparse.Namespace, runtime: Runtime) -> int:
    """``lip reload``: the configuration is valid here (else exit 1, nothing sent); SIGHUP the server."""
    port = args.port if args.port is not None else runtime.config.proxy.server.port
    path = _pid_path(args, runtime, port)
    try:
        pid = signals.signal_server(path)
    except (OSError, ValueError) as exc:
        print(f"lip: cannot signal the server through {path}: {exc}", file=sys.stderr)
        return 1
    print(f"lip: configuration valid; asked the server (pid {pid}) to reload it; its log says how it went")
    return 0


def serve(args: argparse.Namespace, runtime: Runtime) -> int:
    server = runtime.config.proxy.server
    host = args.host or server.host
    port = args.port if args.port is not None else server.port
    workers = args.workers or server.workers
    level = args.log_level or server.log_level
    logsafe.configure(level)
    _startup_report(runtime, host, port)
    if not runtime.config.proxy.clients and not _loopback(host):
        log.warning("!!! listening on %s with NO client keys: anyone who can reach this address can spend your "
                    "upstream credits. Configure `clients:` in proxy.yaml, or bind to 127.0.0.1. !!!", host)
    for missing in runtime.services.auth.missing:
        log.warning("%s: that client cannot authenticate", missing)
    try:
        log.info(check_tokenizer_data())
    except TokenizerUnavailable as error:
        log.error("%s: requests to models with limits will get 503 until it is reinstalled", error)
    if workers > 1:
        _export_for_workers(args)
        shared_dir = None
        if args.limits_store:
            os.environ["LIP_LIMITS_STORE"] = args.limits_store
        elif runtime.config.proxy.limits.store == urls.MEMORY:
            # Workers are separate processes: share the buckets through one memory-mapped file (and
            # command sessions and stored Responses through files beside it) so that every limit
            # holds for the machine and a conversation may go on at any worker.
            shared_dir = Path(tempfile.mkdtemp(prefix="lip-shared-"))
            os.environ["LIP_LIMITS_STORE"] = urls.mmap_url(shared_dir / "ratelimit.map")
            log.info("%d workers share limits, sessions and stored responses in %s", workers, shared_dir)
        try:
            if lip_workers.available():
                with signals.pid_file(_pid_path(args, runtime, port)):
                    return lip_workers.run(host, port, workers, level, server)
            options = {**uvicorn_options(server), "http": "lip.serving:HttpProtocol"}  # spawned: by name
            uvicorn.run("lip.app:from_environment", factory=True, host=host, port=port, workers=workers,
                        log_level=level, access_log=False, lifespan="on", **options)
            return 0
        finally:
            if shared_dir is not None:
                shutil.rmtree(shared_dir, ignore_errors=True)
    app = build(_settings(args), runtime)
    config = uvicorn.Config(app, host=host, port=port, log_level=level, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=math.ceil(server.drain_timeout), **uvicorn_options(server))
    with signals.pid_file(_pid_path(args, runtime, port)):
        signals.Server(config, app, drain_delay=server.drain_delay).run()
    return 0


def _export_for_workers(args: argparse.Namespace) -> None:
    """The flags as LIP_* variables, which the worker processes read (lip.app.from_environment)."""
    if args.config_dir is not None:  # else ./config if it exists, as for one process
        os.environ["LIP_CONFIG_DIR"] = str(args.config_dir)
    if args.default_backend:
        os.environ["LIP_DEFAULT_BACKEND"] = args.default_backend
    if args.usage_store:
        os.environ["LIP_USAGE_STORE"] = args.usage_store
    if args.command_prefix:
        os.environ["LIP_COMMAND_PREFIX"] = args.command_prefix
    if args.disable_commands:
        os.environ["LIP_DISABLE_COMMANDS"] = "1"
    if args.access_log:
        os.environ["LIP_ACCESS_LOG"] = "1"
    if args.model_rewrite:
        os.environ["LIP_MODEL_REWRITES"] = "\n".join(args.model_rewrite)
    if args.max_request_body:
        os.environ["LIP_MAX_REQUEST_BODY"] = str(args.max_request_body)


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _startup_report(runtime: Runtime, host: str, port: int) -> None:
    router = runtime.router
    for line in banner(f"http://{host}:{port}"):
        log.info("%s", line)
    log.info("default route: %s", router.default)
    store = runtime.usage_store
    log.info("usage records: %s", "off (usage.store: none)" if store == "none" else redact(store))
    for rt in sorted(router.runtimes.values(), key=lambda r: (r.backend.preset, r.name)):
        origin = "preset" if rt.backend.preset else rt.backend.source
        if rt.unavailable is None:
            log.info("backend %s ready (%s, %s)", rt.name, rt.backend.protocol, origin)
        elif not rt.backend.preset:
            log.warning("backend %s NOT ready: %s (%s)", rt.name, rt.unavailable, origin)
        else:
            log.info("backend %s not ready: %s (preset)", rt.name, rt.unavailable)


def show_usage(args: argparse.Namespace, runtime: Runtime) -> int:
    """``lip usage``: reads the store that proxy.yaml names (the same one ``lip serve`` writes)."""
    url = runtime.usage_store
    if url == "none":
        print("lip: usage recording is off (usage.store: none)", file=sys.stderr)
        return 1
    params = {k: str(v) for k in ("since", "until", "backend", "model", "client", "limit")
              if (v := getattr(args, k)) is not None}
    if args.group_by:
        params["group_by"] = args.group_by

    async def read() -> dict[str, Any]:
        store = open_store(url)
        await store.start()
        try:
            return await store.query(parse_query(params))
        finally:
            await store.close()

    try:
        result = asyncio.run(read())
    except (ConfigError, ProxyError) as error:
        print(f"lip: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        Console(width=200).print(usage_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
