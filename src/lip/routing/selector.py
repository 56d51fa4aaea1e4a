"""The model selector a client sends: ``backend:model`` or a bare ``model``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Selector:
    backend: str | None
    model: str | None  # None: the backend's default model

    def __str__(self) -> str:
        if self.backend is None:
            return self.model or ""
        return f"{self.backend}:{self.model}" if self.model else self.backend


def parse(text: str) -> Selector:
    """Split ``backend:model``; a ``:`` counts only when it comes before the first ``/``.

    ``meta-llama/llama-3:free`` is therefore a bare model name, while
    ``openrouter:meta-llama/llama-3:free`` names backend ``openrouter``. Whether a prefix
    really is a backend is the router's call (``llama3:8b`` may be a listed model name).
    """
    text = text.strip()
    colon = text.find(":")
    slash = text.find("/")
    if colon < 0 or (0 <= slash < colon):
        return Selector(None, text or None)
    backend, model = text[:colon], text[colon + 1 :]
    return Selector(backend or None, model or None)
