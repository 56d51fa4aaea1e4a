"""Recorded client requests (tests/clients/fixtures/) replayed through the proxy, and what "nothing lost" means.

A fixture is one request exactly as a real client sent it (``method``, ``path``, ``query``, ``headers``,
``body``; secrets and hop-by-hop headers removed). :func:`surface` says which of the proxy's surfaces it is
for (by path). :func:`features` lists what the client asked for, one entry per top-level key (and per
sub-key of a settings object such as ``generationConfig``); :data:`RULES` says, per upstream protocol, where
that feature lands on the upstream's wire (any of the dotted paths), or that the proxy honours it itself
(routing, streaming, storing). A feature that is neither carried there nor named in the ``x-lip-dropped``
response header was lost silently: the test fails naming it. On an upstream of the client's own protocol
every key must arrive unchanged. Besides the keys, every text the client sent (messages, system prompt,
tool results, call arguments) must appear in the upstream request, and every tool it offered (by name;
a namespace's inner functions, a custom tool) must appear there or be named dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# <client>-<version>/[<variant>/]NNN-<path>.json: the shared captures (also read by tests/unit/wire and
# tests/integration/test_captured_replay.py); a capture only these tests can replay yet may wait in
# tests/clients/fixtures/ (same layout).
FIXTURE_ROOTS = (Path(__file__).resolve().parents[1] / "fixtures" / "captures",
                 Path(__file__).resolve().parent / "fixtures")
# Not sent on: hop-by-hop, set by the HTTP client, or a secret the capture redacted.
UNSENT_HEADERS = frozenset({"host", "content-length", "connection", "accept-encoding", "authorization", "x-api-key",
                            "x-goog-api-key", "cookie"})
HONOURED = "honoured"  # the proxy acts on it itself: nothing to carry
DROPPED_HEADER = "x-lip-dropped"

# Nested settings objects whose keys are features of their own.
CONTAINERS = frozenset({"generationConfig", "reasoning", "text", "output_config", "thinking"})

# (surface, feature) -> {upstream protocol: candidate dotted paths on the upstream body | HONOURED}.
# A feature missing for a protocol must be named in x-lip-dropped (unless the upstream is of its own protocol).
_EFFORT = {"openai": ["reasoning_effort"], "anthropic": ["thinking", "output_config"],
           "gemini": ["generationConfig.thinkingConfig"], "openai-responses": ["reasoning"]}
_MAX = {"openai": ["max_tokens", "max_completion_tokens"], "anthropic": ["max_tokens"],
        "gemini": ["generationConfig.maxOutputTokens"], "openai-responses": ["max_output_tokens"]}
_EVERYWHERE_HONOURED = {p: HONOURED for p in ("openai", "anthropic", "gemini", "openai-responses")}
_TOOL_CHOICE = {"openai": ["tool_choice"], "anthropic": ["tool_choice"], "gemini": ["toolConfig"],
                "openai-responses": ["tool_choice"]}
_TEMPERATURE = {"openai": ["temperature"], "anthropic": ["temperature"], "gemini": ["generationConfig.temperature"],
                "openai-responses": ["temperature"]}
RULES: dict[tuple[str, str], dict[str, Any]] = {
    # every surface
    **{(s, "model"): _EVERYWHERE_HONOURED for s in ("anthropic", "chat", "responses", "gemini")},
    **{(s, "stream"): _EVERYWHERE_HONOURED for s in ("anthropic", "chat", "responses")},
    # Anthropic Messages
    ("anthropic", "max_tokens"): _MAX,
    ("anthropic", "thinking.type"): _EFFORT,
    ("anthropic", "thinking.display"): _EFFORT,
    ("anthropic", "thinking.budget_tokens"): _EFFORT,
    ("anthropic", "output_config.effort"): _EFFORT,
    ("anthropic", "temperature"): _TEMPERATURE,
    ("anthropic", "tool_choice"): _TOOL_CHOICE,
    ("anthropic", "metadata"): {"openai": ["user", "metadata"], "openai-responses": ["user", "metadata"]},
    # OpenAI Chat Completions
    ("chat", "max_completion_tokens"): _MAX,
    ("chat", "max_tokens"): _MAX,
    ("chat", "reasoning_effort"): _EFFORT,
    ("chat", "temperature"): _TEMPERATURE,
    ("chat", "tool_choice"): _TOOL_CHOICE,
    ("chat", "stream_options"): _EVERYWHERE_HONOURED,  # usage on the last chunk: the proxy's own
    ("chat", "parallel_tool_calls"): {"openai": ["parallel_tool_calls"], "anthropic": ["tool_choice"],
                                      "openai-responses": ["parallel_tool_calls"]},
    # OpenAI Responses
    ("responses", "max_output_tokens"): _MAX,
    ("responses", "reasoning.effort"): _EFFORT,
    ("responses", "temperature"): _TEMPERATURE,
    ("responses", "tool_choice"): _TOOL_CHOICE,
    ("responses", "store"): _EVERYWHERE_HONOURED,  # the proxy's response store
    ("responses", "previous_response_id"): _EVERYWHERE_HONOURED,
    ("responses", "parallel_tool_calls"): {"openai": ["parallel_tool_calls"], "anthropic": ["tool_choice"],
                                           "openai-responses": ["parallel_tool_calls"]},
    ("responses", "prompt_cache_key"): {"openai": ["prompt_cache_key"], "openai-responses": ["prompt_cache_key"]},
    ("responses", "text.verbosity"): {"openai": ["verbosity"], "openai-responses": ["text"]},
    # Gemini generateContent
    ("gemini", "generationConfig.temperature"): _TEMPERATURE,
    ("gemini", "generationConfig.maxOutputTokens"): _MAX,
    ("gemini", "generationConfig.thinkingConfig"): _EFFORT,
}
# Keys that are content, checked by texts and tools rather than by rule.
CONTENT = {"anthropic": {"messages", "system", "tools"}, "chat": {"messages", "tools"},
           "responses": {"input", "instructions", "tools"}, "gemini": {"contents", "systemInstruction", "tools"}}
# A parameter at its protocol's default asks for nothing: it need not travel.
DEFAULTS: dict[tuple[str, str], Any] = {("responses", "tool_choice"): "auto", ("chat", "tool_choice"): "auto",
                                        ("responses", "parallel_tool_calls"): True,
                                        ("chat", "parallel_tool_calls"): True}


@dataclass(frozen=True)
class Fixture:
    file: Path
    client: str  # the top directory: <client>-<version>
    name: str  # the path below it
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any

    @property
    def id(self) -> str:
        return f"{self.client}/{self.name.removesuffix('.json')}"


def load_fixtures() -> list[Fixture]:
    out = []
    files = sorted((root, file) for root in FIXTURE_ROOTS for file in root.glob("*/**/*.json"))
    for root, file in files:
        doc = json.loads(file.read_text())
        relative = file.relative_to(root)
        headers = {k: v for k, v in (doc.get("headers") or {}).items()
                   if k.lower() not in UNSENT_HEADERS and v != "<redacted>"}
        out.append(Fixture(file, relative.parts[0], "/".join(relative.parts[1:]), doc["method"], doc["path"],
                           doc.get("query") or {}, headers, doc.get("body")))
    return out


def surface(path: str) -> str:
    if path.endswith("/messages"):
        return "anthropic"
    if path.endswith("/messages/count_tokens"):
        return "anthropic-count"
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/responses"):
        return "responses"
    if path.endswith(":countTokens"):
        return "gemini-count"
    if ":generateContent" in path or ":streamGenerateContent" in path:
        return "gemini"
    raise ValueError(f"no surface for {path}")


def features(surf: str, body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(feature, value) for each key the client set, sub-keys of CONTAINERS one by one."""
    for key, value in body.items():
        if key in CONTENT.get(surf, ()):
            continue
        if key in CONTAINERS and isinstance(value, dict):
            for sub, inner in value.items():
                yield f"{key}.{sub}", inner
        else:
            yield key, value


def dig(body: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(body, dict) or part not in body:
            return None
        body = body[part]
    return body


def named_dropped(feature: str, header: str) -> bool:
    names = {n.strip() for n in header.split(",") if n.strip()}
    top = feature.split(".", 1)[0]
    return feature in names or top in names or feature.rsplit(".", 1)[-1] in names


LOST = "LOST"


def fates(surf: str, body: dict[str, Any], upstream: str, seen: dict[str, Any], header: str) -> dict[str, str]:
    """What became of each feature the client set on an upstream of ``upstream``'s protocol: ``unchanged``,
    ``as <path>`` (mapped), ``dropped`` (named in x-lip-dropped), ``honoured`` (the proxy's own), ``default``
    (asks for nothing) or ``LOST ...`` (none of these: silently lost)."""
    own = {"anthropic": "anthropic", "chat": "openai", "responses": "openai-responses", "gemini": "gemini"}[surf]
    out: dict[str, str] = {}
    for feature, value in features(surf, body):
        rule = RULES.get((surf, feature), {}).get(upstream)
        if rule == HONOURED:
            out[feature] = "honoured"
        elif DEFAULTS.get((surf, feature), object()) == value:
            out[feature] = "default"
        elif upstream == own:
            got = dig(seen, feature)
            out[feature] = "unchanged" if got == value else (
                f"{LOST} (sent {json.dumps(value)[:80]}, upstream got {json.dumps(got)[:80]})")
        elif rule is not None and (path := next((p for p in rule if dig(seen, p) is not None), None)):
            out[feature] = f"as {path}"
        elif named_dropped(feature, header):
            out[feature] = "dropped"
        else:
            out[feature] = LOST
    return out


def lost_features(surf: str, body: dict[str, Any], upstream: str, seen: dict[str, Any], header: str) -> list[str]:
    """The client's features the upstream request ``seen`` lacks and the proxy did not say it dropped."""
    return [f if fate == LOST else f"{f} {fate.removeprefix(LOST).strip()}"
            for f, fate in fates(surf, body, upstream, seen, header).items() if fate.startswith(LOST)]


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def _arguments(text: Any) -> Iterator[str]:
    try:
        yield from strings(json.loads(text))
    except (TypeError, ValueError):
        if isinstance(text, str):
            yield text


def client_texts(surf: str, body: dict[str, Any]) -> list[str]:
    """Every text the client sent as content (call arguments as their string values)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("text", "output", "content", "instructions", "system") and isinstance(value, str):
                    out.append(value)
                elif key in ("arguments",):
                    out.extend(_arguments(value))
                elif key in ("input", "args") and isinstance(value, dict) and node.get("type") != "message":
                    out.extend(strings(value))
                elif key not in ("cache_control", "id", "call_id", "tool_use_id", "type", "role", "status",
                                 "signature", "thoughtSignature", "name"):
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            out.append(node)

    for key in CONTENT[surf] - {"tools"}:
        if key in body:
            walk(body[key])
    return [t for t in out if t.strip()]


def keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from keys(v)


_SCHEMA_KEYS = ("input_schema", "parameters", "parametersJsonSchema", "parameters_json_schema")


def _schema(tool: dict[str, Any]) -> Any:
    return next((tool[k] for k in _SCHEMA_KEYS if k in tool), None)


def client_tools(surf: str, body: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(name, family, schema) of each tool offered: functions (namespaces' inner ones too), custom and hosted."""
    out: list[tuple[str, str, Any]] = []
    offered = list(body.get("tools") or [])
    if surf == "responses":  # Codex's default model declares its tools in `additional_tools` input items
        for item in body.get("input") or []:
            if isinstance(item, dict) and item.get("type") == "additional_tools":
                offered += item.get("tools") or []
    for tool in offered:
        if surf == "gemini":
            out.extend((d["name"], "function", _schema(d)) for d in tool.get("functionDeclarations") or [])
            out.extend((k, k, None) for k in tool if k != "functionDeclarations")
        elif surf == "chat":
            out.append((tool["function"]["name"], "function", _schema(tool["function"])))
        elif tool.get("type") == "namespace":
            out.extend((inner["name"], "function", _schema(inner)) for inner in tool.get("tools") or [])
        elif "name" in tool and tool.get("type") in (None, "function", "custom"):
            out.append((tool["name"], "function", _schema(tool)))
        else:
            kind = str(tool.get("type"))
            out.append((tool.get("name") or kind, kind, None))
    return out


# A hosted tool's family -> the strings or keys that stand for it on another protocol's wire.
HOSTED_AS = {"web_search": ("web_search", "googleSearch", "google_search")}


def lost_content(surf: str, body: dict[str, Any], seen: dict[str, Any], header: str) -> list[str]:
    leaves = list(strings(seen))
    # call arguments travel as JSON text on some protocols: their values count too
    leaves += [t for leaf in leaves if leaf.startswith("{") for t in _arguments(leaf)]
    upstream_strings = "\x00".join(leaves)
    upstream_keys = set(keys(seen))
    lost = [f"text {t[:60]!r}" for t in client_texts(surf, body) if t not in upstream_strings]
    for name, family, schema in client_tools(surf, body):
        if name in upstream_strings:
            props = set(keys((schema or {}).get("properties") or {})) if isinstance(schema, dict) else set()
            if props - upstream_keys:
                lost.append(f"tool {name}: parameters {sorted(props - upstream_keys)}")
            continue
        if named_dropped(family, header) or named_dropped(name, header):
            continue
        if any(t in upstream_strings or t in upstream_keys for t in HOSTED_AS.get(family, ())):
            continue  # mapped to the upstream's own hosted tool
        lost.append(f"tool {name} ({family})")
    return lost
