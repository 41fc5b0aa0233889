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


def test_a_refunded_token_can_be_taken_again() -> None:
    limiter = RateLimiter(rate=1, burst=2)
    assert limiter.allow("a", 0)[0] and limiter.allow("a", 0)[0]
    assert not limiter.allow("a", 0)[0]
    limiter.refund("a")
    assert limiter.allow("a", 0)[0] and not limiter.allow("a", 0)[0]
    limiter.refund("a")
    limiter.refund("a")
    limiter.refund("a")  # never more than the burst
    assert [limiter.allow("a", 0)[0] for _ in range(3)] == [True, True, False]
    limiter.refund("unknown")  # nothing to give back to
