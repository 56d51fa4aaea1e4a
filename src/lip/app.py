"""Composition root: settings → config, connectors, router → a Starlette app whose lifespan owns them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from tiktoken import Encoding

from lip.access.clients import Authenticator
from lip.access.quota import ClientLimits
from lip.access.redact import KeyRedactor
from lip.asgi import FrontDoor
from lip.backends import anthropic, gemini, openai_responses
from lip.backends.connector import Codec, Endpoint, HttpConnector
from lip.backends.http import HttpPool
from lip.backends.mock import MockConnector
from lip.backends.openai import OpenAICodec
from lip.commands.parse import CommandSyntax
from lip.commands.processor import Commands
from lip.commands.sessions import MemorySessionStore, RedisSessionStore, SessionStore, SqliteSessionStore
from lip.config import loader
from lip.config.loader import Backend, Config
from lip.config.schema import Pricing
from lip.core.errors import ConfigError, ProxyError
from lip.core.secrets import MIN_SECRET_LENGTH
from lip.frontends.openai_responses import OpenAIResponses, ResponseStore, StoresResponses
from lip.frontends.shared_responses import SqliteResponseStore
from lip.limits.admission import Admitter
from lip.limits.mapped import MappedRateLimiter
from lip.limits.ratelimit import MemoryRateLimiter, RateLimiter
from lip.limits.shared_stores import RedisRateLimiter, SqliteRateLimiter
from lip.limits.tokens import TokenCounter, load_encoding
from lip.observability.metrics import Metrics
from lip.observability.reporter import Reporter
from lip.routing import selector
from lip.routing.breaker import Breakers, BreakerStore, RedisBreakers
from lip.routing.resolve import BackendRuntime
from lip.routing.rewrites import Rewrites
from lip.routing.router import Router
from lip.server import (
    Handlers,
    Services,
    chat_routes,
    gemini_routes,
    internal_error,
    method_not_allowed,
    not_found,
    proxy_error,
    request_failed,
    routes,
)
from lip.usage.recorder import UsageRecorder
from lip.usage.store import SQLITE_PREFIX, absolute, default_path, open_store


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the configuration is and how to serve it (flags > LIP_* env > proxy.yaml > defaults)."""

    config_dir: Path | None = None
    config_dir_required: bool = False
    default_backend: str | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    encodings: Callable[[str], Encoding] = load_encoding  # tests share one loaded copy
    limits_store: str | None = None  # overrides proxy.yaml limits.store (set for --workers)
    model_rewrites: tuple[tuple[str, str], ...] = ()  # --model-rewrite rules, before proxy.yaml's
    command_prefix: str | None = None  # --command-prefix (else proxy.yaml commands.prefix, "!/")
    disable_commands: bool = False  # --disable-commands
    usage_store: str | None = None  # overrides proxy.yaml usage.store ("none": no records); relative: to the cwd


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything one app instance owns."""

    config: Config
    router: Router
    pool: HttpPool
    counter: TokenCounter
    limiter: RateLimiter
    commands: Commands
    services: Services
    usage_store: str  # the absolute URL usage records go to; "none": not recorded


def load_config(settings: Settings) -> Config:
    return loader.load(settings.config_dir, required=settings.config_dir_required)


def build_runtime(settings: Settings, config: Config | None = None) -> Runtime:
    config = config or load_config(settings)
    pool = HttpPool()
    counter = TokenCounter(settings.encodings)
    default = default_selector(settings, config)
    named = _named_defaults(default.backend, config)
    runtimes = {
        name: _runtime(backend, pool, counter, settings.environ) if _enabled(backend, named)
        else BackendRuntime(backend, None, _not_enabled(backend))
        for name, backend in config.backends.items()
    }
    store = settings.limits_store or config.proxy.limits.store
    limiter = make_limiter(store, config.proxy.limits.on_store_error)
    rules = [*settings.model_rewrites, *((r.pattern, r.replacement) for r in config.proxy.model_rewrites)]
    routing = config.proxy.routing
    breakers: BreakerStore = (
        RedisBreakers(store, failures=routing.breaker_failures, cooldown=routing.breaker_cooldown)
        if _is_redis(store)
        else Breakers(routing.breaker_failures, routing.breaker_cooldown)
    )
    router = Router(runtimes, default, Admitter(counter), limiter, settings=routing, rewrites=Rewrites(rules),
                    breakers=breakers)
    settings_commands = config.proxy.commands
    sessions = session_store(store)
    commands = Commands(
        router,
        sessions,
        CommandSyntax(settings.command_prefix or settings_commands.prefix),
        enabled=settings_commands.enabled and not settings.disable_commands,
    )
    metrics = Metrics(known=_configured_models(router))
    store_url = usage_store_url(settings, config)
    recorder = None if store_url == "none" else UsageRecorder(open_store(store_url))
    router.on_retry(lambda backend: metrics.retries.labels(backend).inc())
    proxy = config.proxy
    services = Services(
        router=router,
        commands=commands,
        auth=Authenticator(proxy, settings.environ),
        client_limits=ClientLimits(Admitter(counter), limiter),
        report=Reporter(metrics, recorder.record if recorder else None, _pricing_of(router),
                        log_format=proxy.logging.format,
                        log_requests=proxy.logging.requests),
        metrics=metrics,
        recorder=recorder,
        redactor=KeyRedactor(_upstream_keys(config, settings.environ)),
        metrics_access=proxy.metrics.access,
    )
    return Runtime(config=config, router=router, pool=pool, counter=counter, limiter=limiter, commands=commands,
                   services=services, usage_store=store_url)


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


def _configured_models(router: Router) -> Callable[[str, str], bool]:
    def known(backend: str, model: str) -> bool:
        runtime = router.runtimes.get(backend)
        return runtime is None or model in runtime.backend.config.models  # None: "lip", "-": bounded names

    return known


def _pricing_of(router: Router) -> Callable[[str | None, str | None], Pricing | None]:
    def pricing(backend: str | None, model: str | None) -> Pricing | None:
        runtime = router.runtimes.get(backend or "")
        config = runtime.backend.config.models.get(model or "") if runtime else None
        return config.pricing if config else None

    return pricing


# Where shared state lives follows limits.store: Redis for replicas; a file of one machine's processes
# (mmap:///path or sqlite:///path: three slashes, then a relative path or /an/absolute/one), with
# sessions and stored Responses in files beside it; else this process.
MACHINE_SCHEMES = ("mmap:///", "sqlite:///")


def _is_redis(store: str) -> bool:
    return store.startswith(("redis://", "rediss://", "unix://"))


def _machine_file(store: str, suffix: str = "") -> Path | None:
    """The limits file of a machine-wide ``store`` (with ``suffix``: a file beside it); None otherwise."""
    for scheme in MACHINE_SCHEMES:
        if store.startswith(scheme):
            path = Path(store.removeprefix(scheme))
            return path.with_name(path.stem + suffix) if suffix else path
    return None


def session_store(limits_store: str) -> SessionStore:
    if _is_redis(limits_store):
        return RedisSessionStore(limits_store)
    path = _machine_file(limits_store, "-sessions.db")
    return SqliteSessionStore(path) if path is not None else MemorySessionStore()


def response_store(limits_store: str) -> StoresResponses:
    path = _machine_file(limits_store, "-responses.db")
    return SqliteResponseStore(path) if path is not None else ResponseStore()


def make_limiter(store: str, on_error: str) -> RateLimiter:
    if store == "memory":
        return MemoryRateLimiter()
    path = _machine_file(store)
    if path is not None:
        return MappedRateLimiter(path) if store.startswith("mmap:") else SqliteRateLimiter(path)
    return RedisRateLimiter(store, on_error=on_error)


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


def _runtime(
    backend: Backend, pool: HttpPool, counter: TokenCounter, environ: Mapping[str, str]
) -> BackendRuntime:
    cfg = backend.config
    if backend.root_type == "mock":
        return BackendRuntime(backend, MockConnector(counter.count_text))
    codec = _codec(backend.protocol)
    if codec is None:
        return BackendRuntime(backend, None, f"protocol '{backend.protocol}' is not supported yet")
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
    )
    return BackendRuntime(backend, HttpConnector(endpoint, pool, codec))


def _codec(protocol: str) -> Codec | None:
    if protocol == "openai":
        return OpenAICodec()
    if protocol == "anthropic" and anthropic.READY:
        return anthropic.AnthropicCodec()
    if protocol == "gemini" and gemini.READY:
        return gemini.GeminiCodec()
    if protocol == "openai-responses" and openai_responses.READY:
        return openai_responses.ResponsesCodec()
    return None


class ProxyApp(FrontDoor):
    """The ASGI app of one proxy instance, with the runtime it owns."""

    def __init__(self, runtime: Runtime, fallback: Starlette, handlers: Handlers, responses: OpenAIResponses) -> None:
        super().__init__(fallback, chat_routes(handlers, responses), gemini_routes(handlers), method_not_allowed,
                         fail=request_failed, body_timeout=runtime.config.proxy.server.body_timeout)
        self.runtime = runtime


def build(settings: Settings, runtime: Runtime | None = None) -> ProxyApp:
    runtime = runtime or build_runtime(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.pool.start()
        recorder = runtime.services.recorder
        if recorder is not None:
            await recorder.start()
        try:
            yield
        finally:
            if recorder is not None:
                await recorder.close()  # flushes: nothing recorded is lost on a clean shutdown
            await runtime.pool.close()
            await runtime.limiter.close()
            await runtime.router.breakers.close()
            await runtime.commands.close()
            if isinstance(responses.store, SqliteResponseStore):
                responses.store.close()

    handlers = Handlers(runtime.services)
    responses = OpenAIResponses(response_store(settings.limits_store or runtime.config.proxy.limits.store))
    fallback = Starlette(
        routes=routes(handlers, responses),
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: not_found, ProxyError: proxy_error, Exception: internal_error},
    )
    return ProxyApp(runtime, fallback, handlers, responses)


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
            model_rewrites=tuple(
                (p, r) for p, _, r in (rule.partition("=") for rule in _env_lines("LIP_MODEL_REWRITES"))
            ),
        )
    )


def _env_lines(name: str) -> list[str]:
    return os.environ.get(name, "").splitlines()
