"""Cells that fail today because of the proxy (issue 15, being fixed in src/lip/wire and src/lip/frontends).

{(test, upstream protocol): what fails}. Each is marked xfail (not strict: the fix may land any moment), still
runs, and shows as XPASS once fixed; then its entry is deleted here. An entry is a known bug, never a way
to hide a new one: a cell not listed must pass.
"""

from __future__ import annotations

ISSUE = "issue 15"
KNOWN: dict[tuple[str, str], str] = {
    **{("codex:default", up): "400 input[0].type 'additional_tools' (Codex's default model declares its tools there)"
       for up in ("anthropic", "openai", "gemini", "openai-responses")},
}

# Replayed fixtures: {(fixture id, upstream protocol): what fails} (test_replay_fixtures.py).
_ADDITIONAL_TOOLS = "400 input[0].type 'additional_tools' (Codex's default model declares its tools there)"
_THINKING_BUDGET = "google-genai's thinkingConfig.thinking_budget (snake_case) neither mapped nor named dropped"
KNOWN_REPLAY: dict[tuple[str, str], str] = {
    **{(f"codex-0.171.0/default-model-gpt-6.2-sol/{n}-v1_responses", up): _ADDITIONAL_TOOLS
       for n in ("001", "002") for up in ("anthropic", "openai", "gemini", "openai-responses")},
    ("google-genai-3.6.1/001-v1_models_gemini-3-pro_generateContent", "anthropic"): _THINKING_BUDGET,
    ("google-genai-3.6.1/001-v1_models_gemini-3-pro_generateContent", "openai"): _THINKING_BUDGET,
    ("google-genai-3.6.1/001-v1_models_gemini-3-pro_generateContent", "openai-responses"): _THINKING_BUDGET,
    **{(f"claude-code-2.1.332/nonessential-traffic-on/{n}-v1_messages", "openai-responses"):
       "thinking {type: enabled, budget_tokens} neither mapped to reasoning nor named dropped" for n in ("001", "002")},
}
