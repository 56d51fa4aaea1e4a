"""lip.routing.retry.delay_before_retry: which failures are retried and how long to wait."""

from __future__ import annotations

import pytest

from lip.core.errors import (
    BackendUnavailable,
    InvalidRequest,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from lip.routing.retry import MAX_BACKOFF, MAX_RETRY_AFTER, delay_before_retry


def zero() -> float:
    return 0.0


def one() -> float:
    return 1.0


@pytest.mark.parametrize(
    "error",
    [
        InvalidRequest("bad"),
        BackendUnavailable("no key"),
        UpstreamStatus("bad request", status=400),
        UpstreamStatus("unauthorized", status=401),
        UpstreamStatus("not found", status=404),
    ],
)
def test_not_retryable_gives_none(error: Exception) -> None:
    assert delay_before_retry(error, 1, 1.0, zero) is None  # type: ignore[arg-type]


def test_not_retryable_ignores_retry_after() -> None:
    error = UpstreamStatus("bad", status=400, retry_after=1.0)
    assert delay_before_retry(error, 1, 1.0, zero) is None


@pytest.mark.parametrize(
    "error",
    [
        UpstreamTimeout("slow"),
        UpstreamUnreachable("refused"),
        UpstreamStatus("timeout", status=408),
        UpstreamStatus("conflict", status=409),
        UpstreamStatus("slow down", status=429),
        UpstreamStatus("oops", status=500),
        UpstreamStatus("overloaded", status=529),
    ],
)
def test_retryable_errors_get_a_delay(error: Exception) -> None:
    assert delay_before_retry(error, 1, 1.0, one) == 1.0  # type: ignore[arg-type]


@pytest.mark.parametrize("retry_after", [0.0, 0.25, 7.0, MAX_RETRY_AFTER])
def test_retry_after_wins(retry_after: float) -> None:
    error = UpstreamStatus("slow down", status=429, retry_after=retry_after)
    for attempt in (1, 3):
        for rng in (zero, one):
            assert delay_before_retry(error, attempt, 1.0, rng) == retry_after


def test_retry_after_above_the_cap_is_not_waited_for() -> None:
    error = UpstreamStatus("come back tomorrow", status=429, retry_after=MAX_RETRY_AFTER + 1)
    assert delay_before_retry(error, 1, 1.0, zero) is None


@pytest.mark.parametrize("base", [1.0, 0.5])
@pytest.mark.parametrize("attempt", [1, 2, 3, 4])
def test_backoff_bounds_equal_jitter(attempt: int, base: float) -> None:
    error = UpstreamTimeout("slow")
    full = base * 2 ** (attempt - 1)
    low = delay_before_retry(error, attempt, base, zero)
    high = delay_before_retry(error, attempt, base, one)
    assert low == pytest.approx(full / 2)
    assert high == pytest.approx(full)
    middle = delay_before_retry(error, attempt, base, lambda: 0.5)
    assert middle == pytest.approx(full * 0.75)


def test_backoff_values_for_base_one() -> None:
    error = UpstreamUnreachable("refused")
    assert [delay_before_retry(error, n, 1.0, zero) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert [delay_before_retry(error, n, 1.0, one) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]


def test_backoff_is_capped() -> None:
    error = UpstreamTimeout("slow")
    assert delay_before_retry(error, 20, 1.0, one) == MAX_BACKOFF
    assert delay_before_retry(error, 20, 1.0, zero) == MAX_BACKOFF / 2


def test_zero_base_means_no_wait() -> None:
    assert delay_before_retry(UpstreamTimeout("slow"), 3, 0.0, one) == 0.0
