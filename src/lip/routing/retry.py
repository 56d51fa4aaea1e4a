"""When to try an upstream call again, and how long to wait first."""

from __future__ import annotations

from collections.abc import Callable

from lip.core.errors import ProxyError

MAX_BACKOFF = 30.0  # seconds; no computed delay is longer
MAX_RETRY_AFTER = 60.0  # an upstream asking for a longer wait is not waited for


def delay_before_retry(
    error: ProxyError, attempt: int, base: float, random: Callable[[], float], cap: float = MAX_RETRY_AFTER
) -> float | None:
    """Seconds to wait before retry number ``attempt`` (1 = first retry), or None: don't retry.

    The upstream's ``Retry-After`` wins when present (up to ``cap``: longer is not waited for); otherwise
    exponential backoff with "equal jitter": half of ``base * 2**(attempt-1)`` fixed, half random.
    """
    if not error.retryable:
        return None
    if error.retry_after is not None:
        return error.retry_after if error.retry_after <= cap else None
    ceiling = min(MAX_BACKOFF, base * 2.0 ** (attempt - 1))
    return ceiling / 2 + random() * ceiling / 2
