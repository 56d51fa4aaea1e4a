"""Composition root: settings → config, connectors, router → the ASGI app (a front door over one route
table) whose lifespan owns them."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lip.access.clients import Authenticator, Client, presented_key
from lip.access.quota import ClientLimits
from lip.access.redact import KeyRedactor
from lip.backends.connector import Endpoint, HttpConnector
from lip.backends.http import HttpPool
from lip.backends.mock import MockConnector
from lip.commands.parse import CommandSyntax
from lip.commands.processor import Commands
from lip.config import loader
from lip.config.loader import Backend, Config
from lip.config.schema import Pricing
from lip.core.errors import ConfigError
from lip.core.secrets import MIN_SECRET_LENGTH
from lip.edge.asgi import Receive, Scope, Send
from lip.edge.door import FrontDoor
from lip.edge.operator import operator_routes
from lip.edge.resources import Endpoints
from lip.edge.routes import Table, route_table
from lip.edge.services import Services
from lip.lifecycle import KnownModels, Lifecycle, Shared, store_health
from lip.limits.admission import Admitter
from lip.limits.ratelimit import RateLimiter
from lip.limits.tokens import Encoder, TokenCounter, TokenizerUnavailable, is_path, load_tokenizer
from lip.observability.access import AccessLog
from lip.observability.metrics import Metrics
from lip.observability.otel import Tracer
from lip.observability.reporter import Reporter
from lip.protocols.registry import PROTOCOLS, SurfaceNeeds, codec_for
from lip.routing import selector
from lip.routing.resolve import BackendRuntime
from lip.routing.rewrites import Rewrites
from lip.routing.router import Router
from lip.state.shared import open_state
from lip.usage.recorder import UsageRecorder
from lip.usage.store import SQLITE_PREFIX, absolute, default_path, open_store

log = logging.getLogger("lip.app")


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the configuration is and how to serve it (flags > LIP_* env > proxy.yaml > defaults)."""

    config_dir: Path | None = None
    config_dir_required: bool = False
    default_backend: str | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    encodings: Callable[[str], Encoder] = load_tokenizer  # tests share one loaded copy
    limits_store: str | None = None  # overrides proxy.yaml limits.store (set for --workers)
    model_rewrites: tuple[tuple[str, str], ...] = ()  # --model-rewrite rules, before proxy.yaml's
    command_prefix: str | None = None  # --command-prefix (else proxy.yaml commands.prefix, "!/")
    disable_commands: bool = False  # --disable-commands
    usage_store: str | None = None  # overrides proxy.yaml usage.store ("none": no records); relative: to the cwd
    max_request_body: int | None = None  # --max-request-body: overrides proxy.yaml server.max_request_body
    access_log: bool = False  # --access-log (else proxy.yaml logging.access, or a debug log level)


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything one configuration serves with; ``shared`` outlives a reload."""

    config: Config
    router: Router
    commands: Commands
    services: Services
    shared: Shared
    usage_store: str  # the absolute URL usage records go to; "none": not recorded

    @property
    def pool(self) -> HttpPool:
        return self.shared.pool

    @property
    def counter(self) -> TokenCounter:
        return self.shared.counter

    @property
    def limiter(self) -> RateLimiter:
        return self.shared.state.limiter


def load_config(settings: Settings) -> Config:
    return loader.load(settings.config_dir, required=settings.config_dir_required)


def build_shared(settings: Settings, config: Config) -> Shared:
    """What one process keeps across reloads: pool, tokenizers, shared state, metrics, usage recorder."""
    routing = config.proxy.routing
    state = open_state(settings.limits_store or config.proxy.limits.store,
                       on_store_error=config.proxy.limits.on_store_error,
                       breaker_failures=routing.breaker_failures, breaker_cooldown=routing.breaker_cooldown)
    url = usage_store_url(settings, config)
    recorder = None if url == "none" else UsageRecorder(open_store(url, pool_size=config.proxy.usage.pool_size))
    known = KnownModels()
    metrics = Metrics(known=known)
    _watch(metrics, state.limiter, recorder)
    tracing = config.proxy.tracing
    systems = {name: protocol.system for name, protocol in PROTOCOLS.items()}
    tracer = Tracer(tracing, replica=replica_name(settings, config), systems=systems) if tracing.enabled else None
    return Shared(HttpPool(), TokenCounter(settings.encodings), state, metrics, recorder, known, tracer)


def _watch(metrics: Metrics, limiter: RateLimiter, recorder: UsageRecorder | None) -> None:
    """Numbers /metrics reads from their owners: fail-open admissions, the usage recorder's queue."""
    metrics.watch("lip_limit_store_unavailable_admissions", "Admissions let through uncounted while the "
                  "rate-limit store was unreachable (on_store_error: allow)",
                  lambda: getattr(limiter, "uncounted", 0), counter=True)
    if recorder is not None:
        metrics.watch("lip_usage_records_pending", "Usage records waiting to be written to the usage store",
                      lambda: recorder.pending)
        metrics.watch("lip_usage_records_dropped", "Usage records dropped because too many were waiting "
                      "(the usage store was unreachable for long)", lambda: recorder.dropped, counter=True)


def build_runtime(settings: Settings, config: Config | None = None, shared: Shared | None = None) -> Runtime:
    """The routes, limits, clients and commands of ``config`` (loaded from settings when None) over
    ``shared`` (new when None; then it serves this configuration's models)."""
    config = config or load_config(settings)
    fresh = shared is None
    shared = shared or build_shared(settings, config)
    pool, counter, state = shared.pool, shared.counter, shared.state
    default = default_selector(settings, config)
    named = _named_defaults(default.backend, config)
    runtimes = {
        name: _runtime(backend, pool, counter, settings.environ) if _enabled(backend, named)
        else BackendRuntime(backend, None, _not_enabled(backend))
        for name, backend in config.backends.items()
    }
    rules = [*settings.model_rewrites, *((r.pattern, r.replacement) for r in config.proxy.model_rewrites)]
    _load_tokenizer_files(config, counter)
    admitter = Admitter(counter, margin=config.proxy.limits.token_count_margin,
                        policy=config.proxy.limits.output_policy)
    router = Router(runtimes, default, admitter, state.limiter, settings=config.proxy.routing,
                    rewrites=Rewrites(rules), breakers=state.breakers)
    if fresh:
        shared.known.runtimes = router.runtimes
    settings_commands = config.proxy.commands
    commands = Commands(
        router,
        state.sessions,
        CommandSyntax(settings.command_prefix or settings_commands.prefix),
        enabled=settings_commands.enabled and not settings.disable_commands,
    )
    metrics, recorder = shared.metrics, shared.recorder
    router.on_retry(lambda backend: metrics.retries.labels(backend).inc())
    proxy = config.proxy
    services = Services(
        router=router,
        commands=commands,
        auth=Authenticator(proxy, settings.environ),
        client_limits=ClientLimits(admitter, state.limiter),
        report=Reporter(metrics, recorder.record if recorder else None, _pricing_of(router),
                        log_format=proxy.logging.format,
                        log_requests=proxy.logging.requests, replica=replica_name(settings, config),
                        spans=shared.tracer),
        metrics=metrics,
        recorder=recorder,
        redactor=KeyRedactor(_upstream_keys(config, settings.environ)),
        metrics_access=proxy.metrics.access,
        scrape=lambda: store_health(shared),
        traced=shared.tracer is not None,
        capture_content=shared.tracer is not None and shared.tracer.capture_content,
    )
    return Runtime(config=config, router=router, commands=commands, services=services, shared=shared,
                   usage_store=usage_store_url(settings, config))


def replica_name(settings: Settings, config: Config) -> str:
    """The name usage rows give this process: LIP_REPLICA, else proxy.yaml server.replica, else the host name."""
    return settings.environ.get("LIP_REPLICA") or config.proxy.server.replica or socket.gethostname()


def usage_store_url(settings: Settings, config: Config) -> str:
    """Where usage records go, as an absolute URL ("none": nowhere). First that is set wins:
    ``--usage-store`` / ``LIP_USAGE_STORE`` (a relative path is under the working directory, as for any flag),
    proxy.yaml ``usage.store`` (relative: under the config directory, so the file does not depend on where
    the proxy was started), else the per-user data directory (``$XDG_DATA_HOME/lip/usage.db``).
    """
    if settings.usage_store:
        return absolute(settings.usage_store, Path.cwd())
    configured = config.proxy.usage.store
    if configured:
        return absolute(configured, config.config_dir or Path.cwd())
    return SQLITE_PREFIX + str(default_path(settings.environ))


def _upstream_keys(config: Config, environ: Mapping[str, str]) -> list[str]:
    """Every backend's keys and ``${ENV}`` header values: what a prompt must not carry upstream."""
    names = {name for backend in config.backends.values() for name in backend.config.key_env_vars}
    keys = [environ[name] for name in names if environ.get(name)]
    return keys + [value for backend in config.backends.values() for value in _header_secrets(backend, environ)]


def _header_secrets(backend: Backend, environ: Mapping[str, str]) -> tuple[str, ...]:
    """The values of the ``${ENV}`` references in a backend's ``headers:`` (secrets like its keys)."""
    names = {name for template in backend.config.headers.values() for name in loader.ENV_REF.findall(template)}
    return tuple(environ[name] for name in sorted(names) if len(environ.get(name, "")) >= MIN_SECRET_LENGTH)


def _pricing_of(router: Router) -> Callable[[str | None, str | None], Pricing | None]:
    def pricing(backend: str | None, model: str | None) -> Pricing | None:
        runtime = router.runtimes.get(backend or "")
        config = runtime.backend.config.models.get(model or "") if runtime else None
        return config.pricing if config else None

    return pricing


def default_selector(settings: Settings, config: Config) -> selector.Selector:
    """--default-backend > proxy.yaml default_backend > the one backend in config/ > mock."""
    text = settings.default_backend or config.proxy.default_backend
    if not text:
        own = [b.name for b in config.backends.values() if not b.preset]
        text = own[0] if len(own) == 1 else "mock"
    backend, _, model = text.partition(":")
    if backend not in config.backends:
        known = ", ".join(sorted(config.backends))
        raise ConfigError([f"--default-backend: unknown backend {backend!r}; backends: {known}"])
    return selector.Selector(backend, model or None)


def _named_defaults(default_backend: str | None, config: Config) -> set[str]:
    """The backends the operator named as a default route: the default backend and the tiers' defaults."""
    tiers = (t.default_backend.partition(":")[0] for t in config.proxy.tiers.values() if t.default_backend)
    return {name for name in (default_backend, *tiers) if name}


def _enabled(backend: Backend, named: set[str]) -> bool:
    """Whether a backend may serve. A built-in preset with no key variable (a local server such as
    ollama's) is a guess that something listens there: it serves only when the operator configured it
    in config/backends/ or named it as a default route. The offline mock always serves."""
    if not backend.preset or backend.root_type == "mock" or backend.config.key_env_vars:
        return True
    return backend.name in named


def _not_enabled(backend: Backend) -> str:
    return (f"a preset for a local server ({backend.config.api_base_url}), off until you use it: create "
            f"config/backends/{backend.name}/backend.yaml with `backend_type: {backend.name}`, "
            f"or pass --default-backend {backend.name}")


def _load_tokenizer_files(config: Config, counter: TokenCounter) -> None:
    """Every tokenizer.json a model names is read now: one that cannot be is a configuration error."""
    problems = []
    for backend in config.backends.values():
        for name, model in backend.config.models.items():
            if model.tokenizer is None or not is_path(model.tokenizer):
                continue
            try:
                counter.load(model.tokenizer)
            except TokenizerUnavailable as error:
                problems.append(f"{backend.source}: models.{name}.tokenizer: {error.message}; expected a "
                                "Hugging Face tokenizer.json (the file the model's repository ships)")
    if problems:
        raise ConfigError(problems)


def _runtime(
    backend: Backend, pool: HttpPool, counter: TokenCounter, environ: Mapping[str, str]
) -> BackendRuntime:
    cfg = backend.config
    if backend.root_type == "mock":
        return BackendRuntime(backend, MockConnector(counter.count_text))
    missing = [name for name in backend.config.key_env_vars if not environ.get(name)]
    headers: dict[str, str] = {}
    for header, template in cfg.headers.items():
        value, unset = loader.expand_env(template, environ)
        missing.extend(unset)
        headers[header] = value
    if missing:
        names = ", ".join(dict.fromkeys(missing))
        return BackendRuntime(backend, None, f"environment variable {names} is not set or empty")
    assert cfg.api_base_url is not None  # validated: custom needs it, presets carry it
    endpoint = Endpoint(
        name=backend.name,
        base_url=cfg.api_base_url,
        keys=tuple(environ[name] for name in cfg.key_env_vars),
        auth_type=cfg.auth_type,
        auth_header=cfg.auth_header,
        headers=headers,
        timeout=cfg.timeout,
        connect_timeout=cfg.connect_timeout,
        first_token_timeout=cfg.first_token_timeout,
        stream_idle_timeout=cfg.stream_idle_timeout,
        secrets=_header_secrets(backend, environ),
        max_response_bytes=cfg.max_response_bytes,
        max_event_bytes=cfg.max_event_bytes,
    )
    protocol = PROTOCOLS[backend.protocol]
    codec = codec_for(backend.protocol)
    assert codec is not None, "the schema admits only the registry's protocols that have a codec"
    return BackendRuntime(backend, HttpConnector(endpoint, pool, codec), prefills=protocol.prefills)


# Keys read once, when the process starts: a reload that changes them says so and keeps the running values.
RESTART_ONLY = ("server", "limits.store", "limits.on_store_error", "routing.breaker_failures",
                "routing.breaker_cooldown", "usage.store", "usage.pool_size", "logging.access", "tracing")


class ProxyApp(FrontDoor):
    """The ASGI app of one proxy instance: the runtime it serves now, its lifecycle, and reloads."""

    def __init__(self, settings: Settings, runtime: Runtime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.lifecycle = Lifecycle(runtime.shared, deny_on_store_error=runtime.config.proxy.limits.on_store_error
                                   == "deny")
        self._reloading = asyncio.Lock()
        server = runtime.config.proxy.server
        super().__init__(self._routes(runtime), body_timeout=server.body_timeout, admit=self.admit_caller,
                         max_body=settings.max_request_body or server.max_request_body,
                         access=access_log(settings, runtime.config))

    def admit_caller(self, headers: Mapping[str, str], query: Mapping[str, str], address: str) -> Client | None:
        """Who presents the key in ``headers`` / ``query`` (checked before a body is read); 401 or 429."""
        return self.runtime.services.auth.authenticate(presented_key(headers, query), address)

    def _routes(self, runtime: Runtime) -> Table:
        """The route table of ``runtime``: every protocol's declared routes, the operator's, the lifecycle's."""
        services = runtime.services
        return route_table(PROTOCOLS.values(), SurfaceNeeds(responses=runtime.shared.state.responses),
                     Endpoints(services), operator_routes(services, *self.lifecycle.routes()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifecycle.lifespan(self.runtime.config, receive, send)
            return
        await FrontDoor.__call__(self, scope, receive, send)

    def drain(self) -> None:
        """Readiness fails from now on, and every response closes its connection."""
        self.lifecycle.drain()
        self.closing = True

    async def reload(self) -> bool:
        """Load, validate and warm the configuration again, then swap it in; on any error keep the old one
        (each error logged). Requests under way finish on the configuration they started with."""
        async with self._reloading:
            started = time.monotonic()
            try:
                config = await asyncio.to_thread(load_config, self.settings)
                runtime = await asyncio.to_thread(build_runtime, self.settings, config, self.runtime.shared)
            except ConfigError as error:
                for problem in error.problems:
                    log.error("reload: %s", problem)
                log.error("reload failed: %d error(s); still serving the configuration loaded before",
                          len(error.problems))
                self.lifecycle.last_reload = {"status": "failed", "errors": list(error.problems), "at": time.time()}
                return False
            except Exception as exc:  # a bug, or a file that vanished mid-read: the old configuration stays
                log.error("reload failed; still serving the configuration loaded before", exc_info=exc)
                self.lifecycle.last_reload = {"status": "failed", "errors": [repr(exc)], "at": time.time()}
                return False
            await self.lifecycle.warm(config)
            for key in _restart_only_changes(self.runtime.config, config):
                log.warning("reload: %s changed; it takes effect when the proxy restarts", key)
            self.replace(self._routes(runtime))
            self.runtime = runtime
            runtime.shared.known.runtimes = runtime.router.runtimes
            log.info("reloaded the configuration in %.2f s (%d backends)", time.monotonic() - started,
                     len(config.backends))
            self.lifecycle.last_reload = {"status": "ok", "at": time.time()}
            return True


def _restart_only_changes(old: Config, new: Config) -> list[str]:
    def value(config: Config, key: str) -> object:
        found: object = config.proxy
        for part in key.split("."):
            found = getattr(found, part)
        return found

    return [key for key in RESTART_ONLY if value(old, key) != value(new, key)]


def build(settings: Settings, runtime: Runtime | None = None) -> ProxyApp:
    return ProxyApp(settings, runtime or build_runtime(settings))


def access_log(settings: Settings, config: Config) -> AccessLog | None:
    """The access log when --access-log, proxy.yaml ``logging.access`` or a debug log level asks for it."""
    if settings.access_log or config.proxy.logging.access or logging.getLogger("lip").isEnabledFor(logging.DEBUG):
        return AccessLog(json=config.proxy.logging.format == "json")
    return None


def from_environment() -> ProxyApp:
    """App factory for ``uvicorn --factory`` and multi-worker serving: settings from LIP_* variables."""
    config_dir = os.environ.get("LIP_CONFIG_DIR")
    return build(
        Settings(
            config_dir=Path(config_dir) if config_dir else Path("config"),
            config_dir_required=bool(config_dir),
            default_backend=os.environ.get("LIP_DEFAULT_BACKEND") or None,
            limits_store=os.environ.get("LIP_LIMITS_STORE") or None,
            usage_store=os.environ.get("LIP_USAGE_STORE") or None,
            command_prefix=os.environ.get("LIP_COMMAND_PREFIX") or None,
            disable_commands=os.environ.get("LIP_DISABLE_COMMANDS", "") in ("1", "true", "yes"),
            max_request_body=_env_bytes("LIP_MAX_REQUEST_BODY"),
            access_log=os.environ.get("LIP_ACCESS_LOG", "") in ("1", "true", "yes"),
            model_rewrites=tuple(
                (p, r) for p, _, r in (rule.partition("=") for rule in _env_lines("LIP_MODEL_REWRITES"))
            ),
        )
    )


def _env_bytes(name: str) -> int | None:
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def _env_lines(name: str) -> list[str]:
    return os.environ.get(name, "").splitlines()
