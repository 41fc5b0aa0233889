"""Token buckets per client, with injected time."""

from __future__ import annotations

import pytest

from ctm_pbx.core.ratelimit import RateLimiter


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([0, 0, 0], [True, True, False]),  # burst of 2
        ([0, 0, 0.5], [True, True, True]),  # refilled at 2/s
        ([0, 0, 0.2, 0.5], [True, True, False, True]),
    ],
)
def test_bursts_then_rate(times, expected) -> None:
    limiter = RateLimiter(rate=2, burst=2)
    assert [limiter.allow("ip", t)[0] for t in times] == expected


def test_clients_are_independent_and_retry_after_is_given() -> None:
    limiter = RateLimiter(rate=1, burst=1)
    assert limiter.allow("a", 0)[0] and limiter.allow("b", 0)[0]
    allowed, retry = limiter.allow("a", 0.25)
    assert not allowed and retry == pytest.approx(0.75)


def test_memory_is_bounded() -> None:
    limiter = RateLimiter(rate=1, burst=1, max_clients=10)
    for i in range(100):
        limiter.allow(f"ip{i}", float(i) / 1000)
    assert len(limiter._buckets) <= 10


def test_check_answers_like_allow_without_taking_a_token() -> None:
    limiter = RateLimiter(rate=1, burst=2)
    assert limiter.check("a", 0) == (True, 0.0)
    assert limiter.check("a", 0) == (True, 0.0), "a check takes nothing"
    limiter.allow("a", 0)
    limiter.allow("a", 0)
    allowed, retry = limiter.check("a", 0.5)
    assert not allowed and retry == pytest.approx(0.5)
    assert limiter.check("a", 1.0) == (True, 0.0)
