"""The secrets the proxy holds (upstream keys, ``${ENV}`` values in backends' headers), found and masked in text."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MIN_SECRET_LENGTH = 8  # a shorter value is not treated as a secret: masking it would garble ordinary words


class Secrets:
    """Masks every occurrence of the secrets in a text; longer secrets first (one may contain another)."""

    __slots__ = ("_encoded", "_mask", "_values")

    def __init__(self, values: Iterable[str], mask: str = "***", min_length: int = MIN_SECRET_LENGTH) -> None:
        self._values = tuple(sorted({v for v in values if len(v) >= max(1, min_length)}, key=len, reverse=True))
        self._encoded = tuple(v.encode("utf-8", "surrogatepass") for v in self._values)
        self._mask = mask

    def __bool__(self) -> bool:
        return bool(self._values)

    def in_text(self, text: str) -> bool:
        return any(value in text for value in self._values)

    def in_bytes(self, raw: bytes) -> bool:
        return any(value in raw for value in self._encoded)

    def mask(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, self._mask)
        return text

    def mask_value(self, value: Any) -> Any:
        """``value`` (JSON-like: strings, mappings, lists) with every string, mapping keys included, masked."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, Mapping):
            return {self.mask(k) if isinstance(k, str) else k: self.mask_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask_value(v) for v in value]
        return value

    def value_dirty(self, value: Any) -> bool:
        """Whether a secret appears in any string of ``value`` (mapping keys included)."""
        if isinstance(value, str):
            return self.in_text(value)
        if isinstance(value, Mapping):
            return any((isinstance(k, str) and self.in_text(k)) or self.value_dirty(v) for k, v in value.items())
        if isinstance(value, list | tuple):
            return any(self.value_dirty(v) for v in value)
        return False
