"""The shape of backend.yaml and proxy.yaml as pydantic models; unknown keys are rejected."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from lip.protocols.registry import UPSTREAMS
from lip.state import urls

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BACKEND_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

PositiveInt = Annotated[int, Field(gt=0, strict=True)]
PositiveSeconds = Annotated[float, Field(gt=0)]


def _known_protocol(value: str) -> str:
    if value not in UPSTREAMS:
        raise ValueError(f"unknown protocol {value!r}; expected one of {', '.join(UPSTREAMS)}")
    return value


Protocol = Annotated[str, AfterValidator(_known_protocol)]  # a protocol of lip.protocols.registry
ROOT_TYPES = frozenset({"custom", "mock"})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Margin = Annotated[float, Field(ge=0, lt=1)]
OutputPolicy = Literal["clamp", "reject"]
TOKENIZER_NAMES = ("o200k_base", "cl100k_base", "mistral_tekken", "upstream")
TOKENIZER_EXPECTED = ("expected o200k_base, cl100k_base, mistral_tekken, upstream, "
                      "or the path of a Hugging Face tokenizer.json (ending in .json)")


class Limits(Strict):
    context_window: PositiveInt | None = None
    max_input_tokens: PositiveInt | None = None
    max_output_tokens: PositiveInt | None = None
    requests_per_minute: PositiveInt | None = None
    tokens_per_minute: PositiveInt | None = None
    # Headroom for a tokenizer that is not the model's own: a count c is checked as c x (1 + margin).
    token_count_margin: Margin | None = None  # None: proxy.yaml's limits.token_count_margin (default 0)
    # A client's output request above max_output_tokens, or past the context window: lowered or refused.
    output_policy: OutputPolicy | None = None  # None: proxy.yaml's limits.output_policy (default clamp)

    @property
    def sized(self) -> bool:
        """Whether any context limit needs the request measured."""
        return (self.context_window or self.max_input_tokens or self.max_output_tokens) is not None

    @model_validator(mode="after")
    def _consistent(self) -> Limits:
        cw = self.context_window
        if cw is not None and self.max_input_tokens is not None and self.max_input_tokens > cw:
            raise ValueError(
                f"max_input_tokens ({self.max_input_tokens}) must not exceed context_window ({cw})"
            )
        if cw is not None and self.max_output_tokens is not None and self.max_output_tokens > cw:
            raise ValueError(
                f"max_output_tokens ({self.max_output_tokens}) must not exceed context_window ({cw})"
            )
        return self


class Pricing(Strict):
    input_per_million: Annotated[float, Field(ge=0)] = 0.0
    output_per_million: Annotated[float, Field(ge=0)] = 0.0


class ModelConfig(Strict):
    upstream_model: str | None = None
    tokenizer: str | None = None  # default: guessed from the model name (o200k_base for unknown families)
    limits: Limits = Limits()
    parameters: dict[str, Any] = {}
    pricing: Pricing | None = None
    # resilience, per route (each overrides the backend's key of the same name)
    prefill: StrictBool | None = None  # continues a final assistant message (default: anthropic protocol only)
    continuation: StrictBool | None = None  # streams of this route that fail mid-answer are continued
    hedge_after: PositiveSeconds | None = None  # seconds without a first token before the next route starts too

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer(cls, value: str | None) -> str | None:
        if value is None or value in TOKENIZER_NAMES or value.endswith(".json"):
            return value
        if value == "estimate":
            raise ValueError("'estimate' is gone: counts are never multiplied. Name the model's tokenizer, "
                             "and for headroom set limits.token_count_margin (e.g. 0.2); " + TOKENIZER_EXPECTED)
        raise ValueError(TOKENIZER_EXPECTED)


def _check_env_name(value: str) -> str:
    if not ENV_NAME.fullmatch(value):
        # Never echo the value: an operator who pasted a key here must not see it in logs.
        raise ValueError(
            "expected the NAME of an environment variable (letters, digits, underscore), "
            "not a key itself; put the key in the environment and name the variable here"
        )
    return value


class BackendConfig(Strict):
    """One backend.yaml, after its preset (if any) has been merged in."""

    name: str | None = None
    backend_type: str
    protocol: Protocol | None = None
    api_base_url: str | None = None
    api_key_env_var: str | list[str] | None = None
    auth_type: Literal["bearer", "custom"] | None = None  # None: the protocol's own (OpenAI: bearer)
    auth_header: str | None = None
    headers: dict[str, str] = {}
    default_model: str | None = None
    timeout: PositiveSeconds = 60.0
    connect_timeout: PositiveSeconds = 10.0
    first_token_timeout: PositiveSeconds = 30.0
    stream_idle_timeout: PositiveSeconds = 30.0
    max_response_bytes: PositiveInt = 64 * 2**20  # a bigger non-streaming answer is a 502
    max_event_bytes: PositiveInt = 16 * 2**20  # a bigger (or never-ending) stream event is a 502
    max_retries: Annotated[int, Field(ge=0, le=10, strict=True)] = 2
    retry_delay: Annotated[float, Field(ge=0)] = 1.0
    retry_on_timeout: StrictBool = False  # retry the same route after a time-out (default: fail over at once)
    continuation: StrictBool = True  # a stream that fails mid-answer is continued on the next route
    prefill: StrictBool | None = None  # the models continue a final assistant message (None: by protocol)
    hedge_after: PositiveSeconds | None = None  # start the next route too after this long without a first token
    models: dict[str, ModelConfig] = {}
    passthrough_models: StrictBool | None = None

    @field_validator("api_key_env_var")
    @classmethod
    def _env_names(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list):
            if not value:
                raise ValueError("expected at least one variable name")
            return [_check_env_name(v) for v in value]
        return None if value is None else _check_env_name(value)

    @field_validator("api_base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("expected an http:// or https:// URL, e.g. https://api.example.com/v1")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _consistent(self) -> BackendConfig:
        if self.auth_type == "custom" and not self.auth_header:
            raise ValueError("auth_type: custom needs auth_header (e.g. X-API-Key)")
        if self.backend_type == "custom" and not self.api_base_url:
            raise ValueError("backend_type: custom needs api_base_url")
        unknown_default = self.default_model is not None and self.default_model not in self.models
        if unknown_default and self.models and not self.passthrough_models:
            raise ValueError(f"default_model {self.default_model!r} is not one of models: {', '.join(self.models)}")
        return self

    @property
    def key_env_vars(self) -> list[str]:
        value = self.api_key_env_var
        if value is None:
            return []
        return [value] if isinstance(value, str) else list(value)


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535, strict=True)] = 8000
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    workers: Annotated[int, Field(ge=1, le=64, strict=True)] = 1
    # Slow clients: a request head must be complete this many seconds after it began, a body this many
    # seconds after its head (408 when a response is still possible); an idle kept-alive connection closes.
    header_timeout: PositiveSeconds = 10.0
    body_timeout: PositiveSeconds = 60.0
    keep_alive_timeout: PositiveSeconds = 5.0
    max_header_bytes: Annotated[int, Field(ge=1024, strict=True)] = 65536  # a bigger request head: 431
    max_connections: PositiveInt = 1000  # per process; beyond it a request gets 503 until connections close
    # Bytes of one request body (Content-Length, or counted as a chunked body arrives); larger: 413.
    max_request_body: PositiveInt = 32 * 1024 * 1024
    # Addresses (or networks) of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed;
    # none by default: the peer's own address is the client's (the failed-key throttle counts by it).
    trusted_proxies: list[str] = []
    # SIGTERM: seconds readiness fails (and keep-alives close) before the socket stops accepting
    drain_delay: Annotated[float, Field(ge=0, le=300)] = 5.0
    drain_timeout: Annotated[float, Field(ge=0, le=3600)] = 30.0  # then: seconds requests under way get to finish
    pid_file: str | None = None  # where `lip serve` writes its pid for `lip reload` (default <tmp>/lip-<port>.pid)
    replica: Annotated[str, Field(min_length=1, max_length=200)] | None = None  # usage rows' replica (default: host)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/8)") from None
        return value


class LimitsStoreConfig(Strict):
    """Where rate-limit buckets live: this process, a shared file (workers of one machine), Redis or PostgreSQL
    (replicas); and the defaults of every model's ``token_count_margin`` and ``output_policy``."""

    store: str = "memory"
    on_store_error: Literal["allow", "deny"] = "allow"
    token_count_margin: Margin = 0.0  # every model's, unless its own limits set one
    output_policy: OutputPolicy = "clamp"  # every model's, unless its own limits set one

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        return urls.check(value)


class RewriteRule(Strict):
    """``pattern`` (a regular expression matched against the whole model name) → ``replacement``."""

    pattern: str
    replacement: str

    @model_validator(mode="after")
    def _valid(self) -> RewriteRule:
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {self.pattern!r}: {exc}") from None
        for number, name in re.findall(r"\\(\d+)|\\g<(\w+)>", self.replacement):
            index = number or (name if name.isdigit() else "")
            if (index and int(index) > compiled.groups) or (name and not name.isdigit()
                                                            and name not in compiled.groupindex):
                raise ValueError(f"replacement {self.replacement!r} refers to a group that "
                                 f"{self.pattern!r} does not have")
        return self


class RoutingConfig(Strict):
    retry_after_cap: PositiveSeconds = 60.0  # an upstream asking for a longer wait is failed over, not waited for
    max_attempts: PositiveInt = 10  # upstream calls for one request, all routes and retries together
    breaker_failures: PositiveInt = 5  # consecutive failures that open a backend:model's circuit
    breaker_cooldown: PositiveSeconds = 30.0  # seconds before one probe request is let through
    max_continuations: Annotated[int, Field(ge=0, le=10, strict=True)] = 2  # mid-stream rescues per request


class CommandsConfig(Strict):
    enabled: bool = True
    prefix: Annotated[str, Field(min_length=1, max_length=8)] = "!/"


SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


class ClientConfig(Strict):
    """A client of the proxy: its key comes from an environment variable or as a sha256 hash, never in clear."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    key_env_var: str | None = None
    key_sha256: str | None = None
    tier: str | None = None
    admin: bool = False

    @field_validator("key_env_var")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        return None if value is None else _check_env_name(value)

    @field_validator("key_sha256")
    @classmethod
    def _hash(cls, value: str | None) -> str | None:
        if value is not None and not SHA256_HEX.match(value):
            raise ValueError("expected 64 hex digits: the sha256 of the key (e.g. `printf %s KEY | sha256sum`)")
        return value.lower() if value else value

    @model_validator(mode="after")
    def _one_key(self) -> ClientConfig:
        if (self.key_env_var is None) == (self.key_sha256 is None):
            raise ValueError("give exactly one of key_env_var or key_sha256")
        return self


class TierConfig(Strict):
    backends: list[str] = ["*"]  # globs over backend:model
    default_backend: str | None = None
    requests_per_minute: PositiveInt | None = None  # per client of this tier
    tokens_per_minute: PositiveInt | None = None


USAGE_URL = re.compile(r"^(sqlite:///\S+|postgres(ql)?://\S+|none)$")


class UsageConfig(Strict):
    # None: the per-user data directory ($XDG_DATA_HOME/lip/usage.db); a relative sqlite path is under the
    # config directory (beside proxy.yaml); "none": off
    store: str | None = None
    pool_size: Annotated[int, Field(ge=1, le=100, strict=True)] = 4  # PostgreSQL connections per process

    @field_validator("store")
    @classmethod
    def _store(cls, value: str | None) -> str | None:
        if value is not None and not USAGE_URL.match(value):
            raise ValueError("expected sqlite:///path/usage.db, postgresql://user@host/db or none")
        return value


class LoggingConfig(Strict):
    format: Literal["text", "json"] = "text"  # json: one line per request, with its request id
    requests: bool = False  # text format: also a line per request
    access: bool = False  # the access log: one line per HTTP request (as --access-log)


class MetricsConfig(Strict):
    # Who may read GET /metrics when clients are configured: admin clients' keys (default), any
    # client's key, or anyone (a scraper on a private network). Without clients, anyone may.
    access: Literal["admin", "clients", "public"] = "admin"


class TracingConfig(Strict):
    """OpenTelemetry traces (the ``[otel]`` extra): a span per request, a child per upstream attempt."""

    enabled: bool = False
    endpoint: str | None = None  # OTLP/HTTP traces URL; None: OTEL_EXPORTER_OTLP_* or http://localhost:4318/v1/traces
    service_name: Annotated[str, Field(min_length=1, max_length=200)] = "lip"
    capture_content: bool = False  # also the request's messages (canonical JSON) as a span event
    sample_ratio: Annotated[float, Field(ge=0, le=1)] = 1.0

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("expected an http:// or https:// URL, e.g. http://127.0.0.1:4318/v1/traces")
        return value


class ProxyConfig(Strict):
    """proxy.yaml."""

    server: ServerConfig = ServerConfig()
    default_backend: str | None = None
    limits: LimitsStoreConfig = LimitsStoreConfig()
    routing: RoutingConfig = RoutingConfig()
    model_rewrites: list[RewriteRule] = []
    commands: CommandsConfig = CommandsConfig()
    clients: list[ClientConfig] = []
    tiers: dict[str, TierConfig] = {}
    usage: UsageConfig = UsageConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    tracing: TracingConfig = TracingConfig()

    @model_validator(mode="after")
    def _clients(self) -> ProxyConfig:
        names = [c.name for c in self.clients]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"clients: duplicate names {', '.join(duplicates)}")
        for client in self.clients:
            if client.tier is not None and client.tier not in self.tiers:
                known = ", ".join(self.tiers) or "(no tiers defined)"
                raise ValueError(f"client {client.name!r}: unknown tier {client.tier!r}; tiers: {known}")
        return self
