"""``lip check``: the configuration as the proxy sees it, in a 100-column terminal (or narrower).

Three tables: backends (the ``backend_type`` a file declares, or for a built-in preset the type that
names it; protocol, key variables set or not, never their values; status; base URL), models (limits,
and the tokenizer, margin and output policy each model uses), and rate limits where a model has
them. Then what cannot serve, and the tokenizer data. Exit 0, or 2 when a backend of config/ cannot
serve (configuration errors exit 1 before this, in the CLI).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from lip.app import Runtime
from lip.config.schema import ModelConfig
from lip.limits.admission import percent
from lip.limits.tokens import UPSTREAM, TokenizerUnavailable, check_tokenizer_data, is_path, local_tokenizer
from lip.routing.resolve import BackendRuntime

WIDTH = 100  # when the output is not a terminal and COLUMNS does not say


def console_width(environ: Mapping[str, str], is_tty: bool) -> int:
    """COLUMNS when set, else the terminal's width, else WIDTH."""
    columns = environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return shutil.get_terminal_size((WIDTH, 24)).columns if is_tty else WIDTH


def check(runtime: Runtime) -> int:
    console = Console(width=console_width(os.environ, sys.stdout.isatty()), highlight=False)
    backends = sorted(runtime.router.runtimes.values(), key=lambda r: (r.backend.preset, r.name))
    console.print(_backends(backends, os.environ))
    console.print(_models(runtime, backends))
    rates = _rates(backends)
    if rates.row_count:
        console.print(rates)
    console.print(f"default route: {runtime.router.default}")
    problems = [f"{rt.name} ({rt.backend.source}):\n      {rt.unavailable}"
                for rt in backends if rt.unavailable is not None and not rt.backend.preset]
    presets = [rt for rt in backends if rt.unavailable is not None and rt.backend.preset]
    if presets:
        console.print("presets not ready (not an error; each says what it needs):")
        for rt in presets:
            console.print(f"  {rt.name}: {rt.unavailable}")
    try:
        console.print(check_tokenizer_data())
    except TokenizerUnavailable as error:
        problems.append(str(error))
    if problems:
        console.print("[bold red]Configured backends that cannot serve:[/]")
        for problem in problems:
            console.print(f"  - {problem}")
        return 2
    console.print("[green]configuration OK[/]")
    return 0


def _table(title: str) -> Table:
    return Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True,
                 title_justify="left")


def _backends(backends: list[BackendRuntime], environ: Mapping[str, str]) -> Table:
    table = _table("Backends (type: the backend_type to name in a backend.yaml; keys: set or not, never their "
                   "values)")
    table.add_column("backend", overflow="fold")
    table.add_column("type", overflow="fold")
    table.add_column("protocol", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("base URL / key variable", overflow="fold")
    for rt in backends:
        cfg = rt.backend.config
        keys = [f"{v} ({'set' if environ.get(v) else 'NOT set'})" for v in cfg.key_env_vars] or ["no key"]
        preset = rt.backend.preset
        declared = rt.name if preset else cfg.backend_type  # a preset is named by its own name
        table.add_row(rt.name + ("\n(preset)" if preset else ""), declared, rt.backend.protocol,
                      "ready" if rt.unavailable is None else "NOT ready", "\n".join([cfg.api_base_url or "-", *keys]))
    return table


def _models(runtime: Runtime, backends: list[BackendRuntime]) -> Table:
    defaults = runtime.config.proxy.limits
    table = _table("Models (limits in tokens; '-' = none; policy: what an output request over a limit gets)")
    table.add_column("backend:model", overflow="fold")
    for name in ("context", "input", "output"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("tokenizer", overflow="fold")
    table.add_column("margin", justify="right", no_wrap=True)
    table.add_column("policy", no_wrap=True)
    for rt in backends:
        for name, model in rt.backend.config.models.items():
            lim = model.limits
            upstream = model.upstream_model or name
            label = f"{rt.name}:{name}" + (f"\n-> {upstream}" if upstream != name else "")
            margin = lim.token_count_margin if lim.token_count_margin is not None else defaults.token_count_margin
            table.add_row(label, *(_number(v) for v in (lim.context_window, lim.max_input_tokens,
                                                         lim.max_output_tokens)),
                          _tokenizer(model, upstream), percent(margin) if margin else "none",
                          lim.output_policy or defaults.output_policy)
    return table


def _rates(backends: list[BackendRuntime]) -> Table:
    table = _table("Rate limits (per backend:model, per minute)")
    table.add_column("backend:model", overflow="fold")
    table.add_column("requests", justify="right", no_wrap=True)
    table.add_column("tokens", justify="right", no_wrap=True)
    for rt in backends:
        for name, model in rt.backend.config.models.items():
            lim = model.limits
            if lim.requests_per_minute is not None or lim.tokens_per_minute is not None:
                table.add_row(f"{rt.name}:{name}", _number(lim.requests_per_minute), _number(lim.tokens_per_minute))
    return table


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)


def _tokenizer(model: ModelConfig, upstream_model: str) -> str:
    """The tokenizer a model counts with; ``upstream`` with its local fallback; a file as a short path."""
    chosen = model.tokenizer
    if chosen == UPSTREAM:
        return f"upstream (else {local_tokenizer(upstream_model)})"
    if chosen is not None and is_path(chosen):
        path = Path(chosen)
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return chosen
    return local_tokenizer(upstream_model, chosen)
