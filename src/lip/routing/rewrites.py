"""Model name rewrites: ordered, anchored regular expressions turning a client's model into a selector.

Rules are validated by the config schema (``RewriteRule``) before they get here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rewrite:
    pattern: re.Pattern[str]
    replacement: str


class Rewrites:
    """First matching rule wins; ``\\1`` in the replacement refers to the pattern's groups."""

    def __init__(self, rules: list[tuple[str, str]]) -> None:
        self._rules = [Rewrite(re.compile(p), r) for p, r in rules]

    def apply(self, model: str) -> str:
        for rule in self._rules:
            match = rule.pattern.fullmatch(model)
            if match is not None:
                return match.expand(rule.replacement)
        return model

    def __bool__(self) -> bool:
        return bool(self._rules)
