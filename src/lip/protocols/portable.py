"""Which features of a client's protocol an upstream of another protocol gets, mapped or dropped.

The one table behind the rules in docs/protocols-*.md ("Features across protocols"): an upstream of
the client's own protocol gets every feature as the client sent it; an upstream of another protocol
gets the equivalent where there is one; what has none is left out, and ``dropped`` names it, for the
``x-lip-dropped`` response header and the usage record. The codecs render from the same functions,
so what the header says and what the upstream got cannot disagree.

Protocol names are those of ``backend.yaml``'s ``protocol`` (``openai``, ``openai-responses``,
``anthropic``, ``gemini``), which are also the keys of ``ChatRequest.extensions``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from lip.core.model import EMPTY, ChatRequest, FilePart, ProviderPart, Tool

ANTHROPIC = "anthropic"
RESPONSES = "openai-responses"
OPENAI = "openai"
GEMINI = "gemini"
# Message.extensions key of a tool message holding its Anthropic tool_result block's other keys (``is_error``,
# ...), for an Anthropic upstream; other protocols name them in x-lip-dropped.
TOOL_RESULT = "anthropic.tool_result"

# Hosted-tool families each protocol has an equivalent for (web search everywhere but Chat Completions).
HOSTED = {ANTHROPIC: frozenset({"web_search"}), RESPONSES: frozenset({"web_search"}),
          GEMINI: frozenset({"web_search"}), OPENAI: frozenset()}
# Responses body keys the proxy honours itself, or maps onto canonical fields, whatever the upstream.
RESPONSES_HONOURED = frozenset({"instructions", "previous_response_id", "store", "parallel_tool_calls",
                                "metadata", "user", "truncation", "stream_options"})
# Responses objects of which one key has an equivalent everywhere (the others are named when dropped).
MAPPED_PARTS = {"reasoning": "effort", "text": "format"}
# Anthropic ``output_config.effort`` → OpenAI's reasoning effort (OpenAI has no "max").
EFFORT_TO_OPENAI = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh",
                    "max": "xhigh"}
GEMINI_LEVELS = frozenset({"minimal", "low", "medium", "high"})  # thinkingConfig.thinkingLevel


def needs_max_completion_tokens(model: str) -> bool:
    """OpenAI's reasoning models reject ``max_tokens`` and take ``max_completion_tokens`` (and a
    ``reasoning_effort``, which other Chat Completions models reject)."""
    name = model.rsplit("/", 1)[-1].lower()
    return name.startswith(("o1", "o3", "o4", "gpt-5"))


def family(tool: Tool) -> str:
    """A hosted tool's family (``web_search_20250305`` and Responses' ``web_search_preview`` →
    ``web_search``)."""
    named = tool.extensions.get("family")
    return named if isinstance(named, str) else tool.name


def hosted_for(tool: Tool, protocol: str) -> bool:
    """Whether an upstream of ``protocol`` gets this hosted tool (as it came, or mapped)."""
    return tool.protocol == protocol or family(tool) in HOSTED.get(protocol, frozenset())


def effort(request: ChatRequest) -> str | None:
    """The reasoning effort the client asked for: OpenAI's ``reasoning_effort`` (or Responses'
    ``reasoning.effort``), else Anthropic's ``output_config.effort``."""
    value = request.parameters.get("reasoning_effort")
    if isinstance(value, str):
        return value
    config = request.extensions.get(ANTHROPIC, EMPTY).get("output_config")
    chosen = config.get("effort") if isinstance(config, Mapping) else None
    if isinstance(chosen, str):
        return chosen
    budget = thinking_budget(request)  # thinking: {type: enabled, budget_tokens} without an effort
    if budget is not None:
        return _budget_effort(budget)
    return gemini_effort(request)


def _budget_effort(budget: int) -> str:
    return "minimal" if budget == 0 else "low" if budget <= 1024 else "medium" if budget <= 8192 else "high"


def gemini_effort(request: ChatRequest) -> str | None:
    """A Gemini client's ``thinkingConfig`` (either spelling) as an effort: its ``thinkingLevel``, or its
    ``thinkingBudget`` (0 minimal, up to 1024 low, up to 8192 medium, more high; -1, dynamic, none)."""
    generation = request.extensions.get(GEMINI, EMPTY).get("generationConfig")
    thinking = generation.get("thinkingConfig") if isinstance(generation, Mapping) else None
    if not isinstance(thinking, Mapping):
        return None
    level = thinking.get("thinkingLevel", thinking.get("thinking_level"))
    if isinstance(level, str) and level.lower() in GEMINI_LEVELS:
        return level.lower()
    budget = thinking.get("thinkingBudget", thinking.get("thinking_budget"))
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
        return None
    return _budget_effort(budget)


def thinking_budget(request: ChatRequest) -> int | None:
    """Anthropic's ``thinking: {type: "enabled", budget_tokens}``: the budget, when the client set one."""
    thinking = request.extensions.get(ANTHROPIC, EMPTY).get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, Mapping) else None
    return budget if isinstance(budget, int) and not isinstance(budget, bool) else None


def effort_for_openai(request: ChatRequest, reasoning_model: bool) -> str | None:
    """An Anthropic client's effort as ``reasoning_effort`` for a Chat Completions upstream: only for
    reasoning models (others reject the parameter) and only when the client did not set it itself."""
    if not reasoning_model or "reasoning_effort" in request.parameters:
        return None
    asked = effort(request)
    return EFFORT_TO_OPENAI.get(asked) if asked is not None else None


def dropped(request: ChatRequest, protocol: str, upstream_model: str = "") -> tuple[str, ...]:
    """The features of ``request`` an upstream of ``protocol`` serving ``upstream_model`` does not get
    (sorted, no repeats)."""
    if protocol == "mock" or not (request.extensions or request.tools or _has_foreign_parts(request)):
        return ()  # the common case (a plain chat request), answered without building anything
    names = set(_dropped_tools(request, protocol))
    if protocol == GEMINI and request.parameters.get("parallel_tool_calls") is False:
        names.add("parallel_tool_calls")  # Gemini has no switch for one call at a time
    names.update(_dropped_parts(request, protocol))
    anthropic = request.extensions.get(ANTHROPIC)
    if anthropic and protocol != ANTHROPIC:
        mapped = _anthropic_mapped(request, protocol, upstream_model)
        names.update(key for key in anthropic if key not in mapped)
    responses = request.extensions.get(RESPONSES)
    if responses and protocol != RESPONSES:
        names.update(_dropped_responses_keys(responses))
    gemini = request.extensions.get(GEMINI)
    if gemini and protocol != GEMINI:
        names.update(_dropped_gemini_keys(gemini, protocol, upstream_model))
    return tuple(sorted(names))


def _anthropic_mapped(request: ChatRequest, protocol: str, upstream_model: str) -> frozenset[str]:
    """The Anthropic keys an upstream of ``protocol`` gets the equivalent of: ``output_config`` and
    ``thinking`` as a reasoning effort (Responses, Gemini, OpenAI reasoning models), ``thinking``'s
    budget as Gemini's thinkingBudget. Without an effort to give, they are dropped."""
    takes_effort = protocol in (RESPONSES, GEMINI) or (
        protocol == OPENAI and needs_max_completion_tokens(upstream_model) and "reasoning_effort" not in
        request.parameters)
    if takes_effort and effort(request) is not None:
        return frozenset({"output_config", "thinking"})
    if protocol == GEMINI and thinking_budget(request) is not None:
        return frozenset({"thinking"})
    return frozenset()


def _dropped_gemini_keys(carried: Mapping[str, Any], protocol: str, upstream_model: str) -> Iterator[str]:
    """A Gemini client's keys without a canonical meaning; thinkingConfig is mapped where effort is."""
    effort_taken = protocol in (RESPONSES, ANTHROPIC) or (protocol == OPENAI and needs_max_completion_tokens(
        upstream_model))
    for key, value in carried.items():
        if key == "generationConfig" and isinstance(value, Mapping):
            for part in value:
                if not (part == "thinkingConfig" and effort_taken):
                    yield f"generationConfig.{part}"
        elif key == "tools" and isinstance(value, list):
            for tool in value:
                yield from (f"tools.{name}" for name in (tool if isinstance(tool, Mapping) else ()))
        else:
            yield key


def _has_foreign_parts(request: ChatRequest) -> bool:
    for message in request.messages:
        if message.extensions or (message.content.__class__ is tuple and any(
                isinstance(p, ProviderPart | FilePart) for p in message.content)):
            return True
    return False


def _dropped_tools(request: ChatRequest, protocol: str) -> Iterator[str]:
    for tool in request.tools:
        if not tool.callable and not hosted_for(tool, protocol):
            yield family(tool)


def _dropped_parts(request: ChatRequest, protocol: str) -> Iterator[str]:
    for message in request.messages:
        for owner in (ANTHROPIC, RESPONSES):
            if owner != protocol and message.extensions and owner in message.extensions:
                yield from (f"messages.{key}" for key in message.extensions[owner])
        if protocol != ANTHROPIC and message.extensions and TOOL_RESULT in message.extensions:
            yield from (f"tool_result.{key}" for key in message.extensions[TOOL_RESULT])
        if isinstance(message.content, tuple):
            for part in message.content:
                if isinstance(part, ProviderPart) and part.protocol != protocol:
                    kind = part.data.get("type")
                    yield kind if isinstance(kind, str) else "provider_block"
                elif isinstance(part, FilePart) and part.protocol is not None and part.protocol != protocol:
                    spec = part.spec or EMPTY
                    if spec.get("citations") is not None or spec.get("context") is not None:
                        yield "document.citations" if spec.get("citations") is not None else "document.context"


def _dropped_responses_keys(carried: Mapping[str, Any]) -> Iterator[str]:
    for key, value in carried.items():
        if key in RESPONSES_HONOURED or value is None:
            continue
        if key in MAPPED_PARTS and isinstance(value, Mapping):  # reasoning.effort and text.format are mapped
            yield from (f"{key}.{part}" for part, v in value.items() if part != MAPPED_PARTS[key] and v is not None)
        elif key == "include":
            if value:
                yield "include"
        else:
            yield key
