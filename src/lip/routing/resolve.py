"""Which backend and model a selector names: the resolution rules of the spec, with helpful errors."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

from lip.backends.base import Connector
from lip.config.loader import Backend
from lip.config.schema import ModelConfig
from lip.core.errors import BackendUnavailable, InvalidRequest, NotFound
from lip.routing import selector


@dataclass(frozen=True, slots=True)
class BackendRuntime:
    """A configured backend with its connector, or the reason it cannot serve."""

    backend: Backend
    connector: Connector | None
    unavailable: str | None = None
    prefills: bool = False  # its protocol's models continue a final assistant message (backend.yaml may say)

    @property
    def name(self) -> str:
        return self.backend.name


@dataclass(frozen=True, slots=True)
class Route:
    runtime: BackendRuntime
    model: str
    upstream_model: str
    config: ModelConfig | None
    label: str = field(init=False)  # backend:model

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", f"{self.runtime.name}:{self.model}")


class Resolver:
    """Resolves selectors against the configured backends and the default route."""

    def __init__(self, runtimes: Mapping[str, BackendRuntime], default: selector.Selector) -> None:
        self.runtimes = dict(runtimes)
        self.default = default
        self._routes: dict[tuple[str, selector.Selector | None], Route] = {}  # routes are fixed by the config

    def resolve(self, text: str, default: selector.Selector | None = None) -> Route:
        """The route ``text`` names; ``default`` (a client tier's) replaces the proxy's default route."""
        key = (text, default)
        route = self._routes.get(key)
        if route is None:
            route = self._resolve(text, default)
            if len(self._routes) >= 4096:
                self._routes.clear()
            self._routes[key] = route
        return route

    def _resolve(self, text: str, default: selector.Selector | None) -> Route:
        chosen = default or self.default
        sel = selector.parse(text)
        if sel.backend is None and sel.model is None:
            return self._route(self._runtime(chosen.backend or ""), chosen.model)
        if sel.backend is not None:
            runtime = self.runtimes.get(sel.backend)
            if runtime is not None:
                return self._route(runtime, sel.model)
            owner = self._owner(text)  # a listed model name that contains ':' (e.g. llama3:8b)
            if owner is not None:
                return self._route(owner, text)
            raise NotFound(
                f"Unknown backend '{sel.backend}'{_hint(sel.backend, self.runtimes)} in model '{text}'. "
                f"Backends: {', '.join(sorted(self.runtimes))}. Write backend:model, e.g. "
                f"'{chosen.backend}:{sel.model}'.",
                param="model",
            )
        model = sel.model or ""
        home = self._runtime(chosen.backend or "")
        if model in home.backend.config.models:
            return self._route(home, model)
        owner = self._owner(model)  # a ready backend that lists the model beats one that accepts any
        if owner is not None and (owner.unavailable is None or not home.backend.passthrough):
            return self._route(owner, model)
        if home.backend.passthrough:
            return self._route(home, model)
        raise NotFound(
            f"The model '{model}' is not served by the default backend '{home.name}' nor listed by "
            f"any other backend{_hint(model, self._all_models())}. Use backend:model; "
            f"GET /v1/models lists what can be routed.",
            param="model",
        )

    def _owner(self, model: str) -> BackendRuntime | None:
        owners = [rt for rt in self.runtimes.values() if model in rt.backend.config.models]
        ready = [rt for rt in owners if rt.unavailable is None]
        if len(ready) > 1:
            raise InvalidRequest(
                f"The model '{model}' is listed by several backends ({', '.join(rt.name for rt in ready)}); "
                f"name one, e.g. '{ready[0].name}:{model}'.",
                param="model",
                code="ambiguous_model",
            )
        if ready:
            return ready[0]
        return owners[0] if owners else None

    def _runtime(self, name: str) -> BackendRuntime:
        runtime = self.runtimes.get(name)
        if runtime is None:
            raise NotFound(f"Unknown backend '{name}'. Backends: {', '.join(sorted(self.runtimes))}.")
        return runtime

    def _route(self, runtime: BackendRuntime, model: str | None) -> Route:
        backend = runtime.backend
        model = model or backend.default_model
        if not model:
            raise InvalidRequest(
                f"Backend '{runtime.name}' has no default model; name one as '{runtime.name}:<model>'.",
                param="model",
            )
        config = backend.config.models.get(model)
        if config is None and not backend.passthrough:
            listed = ", ".join(backend.config.models) or "(none)"
            raise NotFound(
                f"The model '{model}' is not served by backend '{runtime.name}'"
                f"{_hint(model, backend.config.models)}. Its models: {listed}.",
                param="model",
            )
        if runtime.unavailable is not None:
            raise BackendUnavailable(f"Backend '{runtime.name}' is unavailable: {runtime.unavailable}.")
        upstream = config.upstream_model if config and config.upstream_model else model
        return Route(runtime=runtime, model=model, upstream_model=upstream, config=config)

    def _all_models(self) -> list[str]:
        return [m for rt in self.runtimes.values() for m in rt.backend.config.models]

    def routable(self) -> list[Route]:
        """Every listed backend:model that can serve now."""
        return [
            Route(rt, name, cfg.upstream_model or name, cfg)
            for rt in self.runtimes.values()
            if rt.unavailable is None
            for name, cfg in rt.backend.config.models.items()
        ]

def _hint(word: str, candidates: Mapping[str, object] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
