"""The one configuration loader: discovers presets and config/, merges, validates, reports every problem.

Used by ``lip serve`` and ``lip check`` alike. Each problem names the file, the key path and what
was expected; all problems of one load are raised together as one ConfigError.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from lip.config.schema import BACKEND_NAME, ROOT_TYPES, BackendConfig, ProxyConfig
from lip.core.errors import ConfigError

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
PRESET_SOURCE = "<built-in preset>"
SECRET_KEYS = frozenset({"headers", "api_key_env_var"})


@dataclass(frozen=True, slots=True)
class Backend:
    """A validated backend: its name, where it came from, and what it resolves to."""

    name: str
    config: BackendConfig
    source: str  # file path, or "<built-in preset>/<name>.yaml"
    root_type: str  # "custom" or "mock": which connector family serves it
    preset: bool  # True when it is a built-in preset not replaced by config/

    @property
    def protocol(self) -> str:
        return "mock" if self.root_type == "mock" else (self.config.protocol or "openai")

    @property
    def passthrough(self) -> bool:
        return bool(self.config.passthrough_models)

    @property
    def default_model(self) -> str | None:
        if self.config.default_model:
            return self.config.default_model
        return next(iter(self.config.models), None)


@dataclass(frozen=True, slots=True)
class Config:
    backends: dict[str, Backend]
    proxy: ProxyConfig
    config_dir: Path | None


def preset_texts() -> dict[str, tuple[str, str]]:
    """Built-in presets: name -> (source label, YAML text)."""
    found: dict[str, tuple[str, str]] = {}
    for entry in resources.files("lip.config.presets").iterdir():
        if entry.name.endswith(".yaml"):
            name = entry.name[: -len(".yaml")]
            found[name] = (f"{PRESET_SOURCE}/{entry.name}", entry.read_text(encoding="utf-8"))
    return found


def load(config_dir: Path | None, *, required: bool = False) -> Config:
    """Load presets and ``config_dir``; ``required`` makes a missing directory an error."""
    problems: list[str] = []
    presets = {name: _parse(src, text, problems) for name, (src, text) in preset_texts().items()}
    preset_sources = {name: src for name, (src, _) in preset_texts().items()}
    raw: dict[str, tuple[str, dict[str, Any] | None, bool]] = {
        name: (preset_sources[name], data, True) for name, data in presets.items()
    }
    proxy = ProxyConfig()
    if config_dir is not None and config_dir.exists():
        if not config_dir.is_dir():
            raise ConfigError([f"{config_dir}: expected a directory"])
        for name, path in _discover(config_dir, problems):
            raw[name] = (str(path), _read(path, problems), False)
        proxy = _load_proxy(config_dir / "proxy.yaml", problems)
    elif config_dir is not None and required:
        raise ConfigError([f"{config_dir}: configuration directory does not exist"])
    backends: dict[str, Backend] = {}
    for name, (source, data, is_preset) in sorted(raw.items()):
        if data is None:
            continue
        backend = _build_backend(name, source, data, presets, is_preset=is_preset, problems=problems)
        if backend is not None:
            backends[name] = backend
    if proxy.default_backend is not None:
        backend_name = proxy.default_backend.split(":", 1)[0]
        if backend_name not in backends:
            problems.append(
                f"{config_dir / 'proxy.yaml' if config_dir else 'proxy.yaml'}: default_backend: "
                f"unknown backend {backend_name!r}{_hint(backend_name, backends)}"
            )
    if problems:
        raise ConfigError(problems)
    return Config(backends=backends, proxy=proxy, config_dir=config_dir)


def _discover(config_dir: Path, problems: list[str]) -> Iterable[tuple[str, Path]]:
    root = config_dir / "backends"
    if not root.exists():
        return []
    found = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            problems.append(f"{entry}: expected a directory {root}/<name>/ holding backend.yaml")
            continue
        if not BACKEND_NAME.fullmatch(entry.name):
            problems.append(f"{entry}: backend directory names use letters, digits, '.', '_' and '-'")
            continue
        path = entry / "backend.yaml"
        if not path.is_file():
            problems.append(f"{entry}: missing backend.yaml (each backend directory holds one)")
            continue
        found.append((entry.name, path))
    return found


def _read(path: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot be read: {exc}")
        return None
    return _parse(str(path), text, problems)


def _parse(source: str, text: str, problems: list[str]) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problems.append(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}")
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(f"{source}: expected a mapping of keys at the top level, got {type(data).__name__}")
        return None
    return data


def _load_proxy(path: Path, problems: list[str]) -> ProxyConfig:
    if not path.exists():
        return ProxyConfig()
    data = _read(path, problems)
    if data is None:
        return ProxyConfig()
    try:
        return ProxyConfig.model_validate(data)
    except ValidationError as exc:
        problems.extend(_describe(str(path), exc, ProxyConfig))
        return ProxyConfig()


def _build_backend(
    name: str,
    source: str,
    data: dict[str, Any],
    presets: Mapping[str, dict[str, Any] | None],
    *,
    is_preset: bool,
    problems: list[str],
) -> Backend | None:
    declared = data.get("name")
    if declared is not None and declared != name:
        problems.append(
            f"{source}: name: {declared!r} differs from its directory {name!r} "
            "(the directory name is the backend name; drop `name:` or make them equal)"
        )
        return None
    merged, root_type = _merge_preset(name, source, data, presets, problems)
    if merged is None:
        return None
    if merged.get("passthrough_models") is None:
        merged["passthrough_models"] = False
    _resolve_tokenizer_files(source, merged, problems, is_preset=is_preset)
    try:
        config = BackendConfig.model_validate(merged)
    except ValidationError as exc:
        problems.extend(_describe(source, exc, BackendConfig))
        return None
    return Backend(name=name, config=config, source=source, root_type=root_type, preset=is_preset)


def _merge_preset(
    name: str,
    source: str,
    data: dict[str, Any],
    presets: Mapping[str, dict[str, Any] | None],
    problems: list[str],
) -> tuple[dict[str, Any] | None, str]:
    """Follow ``backend_type`` through presets; the file's own keys win over the preset's."""
    backend_type = data.get("backend_type")
    if not isinstance(backend_type, str):
        kinds = ", ".join(sorted(ROOT_TYPES | set(presets)))
        problems.append(f"{source}: backend_type: required; expected one of: {kinds}")
        return None, ""
    merged = dict(data)
    seen: set[str] = set()
    current = backend_type
    while current not in ROOT_TYPES:
        preset = presets.get(current)
        if current in seen or preset is None:
            known = sorted(ROOT_TYPES | set(presets))
            problems.append(
                f"{source}: backend_type: unknown type {current!r}{_hint(current, known)}; "
                f"expected one of: {', '.join(known)}"
            )
            return None, ""
        seen.add(current)
        merged = _deep_merge(preset, merged)
        current = preset.get("backend_type", "custom")
    merged["backend_type"] = backend_type
    return merged, current


def _resolve_tokenizer_files(source: str, data: dict[str, Any], problems: list[str], *, is_preset: bool) -> None:
    """A model's ``tokenizer: path/tokenizer.json`` becomes an absolute path (relative ones are under the
    backend.yaml's directory); a file that is not there is a problem of this file and key."""
    models = data.get("models")
    if not isinstance(models, dict):
        return
    base = Path.cwd() if is_preset else Path(source).parent
    models = data["models"] = dict(models)  # a copy: the file's own mapping stays as it was read
    for name, model in models.items():
        value = model.get("tokenizer") if isinstance(model, dict) else None
        if not isinstance(value, str) or not value.endswith(".json"):
            continue
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base / path
        where = f"{source}: {_key_path(('models', str(name), 'tokenizer'))}"
        if not path.is_file():
            problems.append(f"{where}: tokenizer file {value!r} not found (looked at {path}); expected the "
                            "path of a Hugging Face tokenizer.json, absolute or relative to this file's directory")
            continue
        models[name] = {**model, "tokenizer": str(path.resolve())}


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in over.items():
        old = result.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            result[key] = _deep_merge(old, value)
        else:
            result[key] = value
    return result


# ---- describing validation errors -------------------------------------------------------------


def _describe(source: str, exc: ValidationError, root: type[BaseModel]) -> list[str]:
    out = []
    for err in exc.errors():
        loc = tuple(seg for seg in err["loc"] if not _is_union_tag(seg))
        path = _key_path(loc) or "(top level)"
        kind = err["type"]
        if kind == "extra_forbidden":
            allowed = _fields_at(root, loc[:-1])
            key = str(loc[-1])
            hint = _hint(key, allowed)
            choices = f"; allowed keys here: {', '.join(allowed)}" if not hint else ""
            out.append(f"{source}: {path}: unknown key{hint}{choices}")
            continue
        message = err["msg"].removeprefix("Value error, ")
        if kind == "missing":
            message = "required key is missing"
        shown = "" if SECRET_KEYS & {str(s) for s in loc} or kind == "missing" else _shown(err.get("input"))
        out.append(f"{source}: {path}: {message}{shown}")
    return out


def _is_union_tag(seg: int | str) -> bool:
    return isinstance(seg, str) and (seg in {"str", "int", "float", "bool"} or "[" in seg)


def _shown(value: Any) -> str:
    if isinstance(value, dict | list) or value is None:
        return ""
    text = repr(value)
    return f" (got {text if len(text) <= 60 else text[:57] + '...'})"


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for seg in loc:
        if isinstance(seg, int):
            parts.append(f"[{seg}]")
        elif re.fullmatch(r"[A-Za-z0-9_-]+", seg):
            parts.append(("." if parts else "") + seg)
        else:
            parts.append(f"[{seg!r}]")
    return "".join(parts)


def _fields_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The allowed keys of the mapping at ``loc`` (walking models and dict values)."""
    current: Any = root
    for seg in loc:
        current = _model_of(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(seg))
            if info is None:
                return []
            current = info.annotation
        else:  # dict[str, X]: the segment is a key, X the next type
            args = typing.get_args(current)
            current = args[-1] if args else None
    current = _model_of(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_of(annotation: Any) -> Any:
    """Unwrap ``X | None`` to X."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                return arg
    return annotation


def _hint(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def expand_env(value: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace ``${NAME}`` from ``environ``; also returns the names that are unset or empty."""
    missing: list[str] = []

    def sub(match: re.Match[str]) -> str:
        found = environ.get(match.group(1), "")
        if not found:
            missing.append(match.group(1))
        return found

    return ENV_REF.sub(sub, value), missing
