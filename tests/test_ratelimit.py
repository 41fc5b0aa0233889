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


def test_idle_clients_are_forgotten_before_the_cap() -> None:
    limiter = RateLimiter(rate=1, burst=1, max_clients=1000)
    for i in range(100):
        limiter.allow(f"old{i}", 0)
    for i in range(60):  # a second later, every old bucket is full again
        limiter.allow(f"new{i}", 1 + i / 1000)
    assert set(limiter._buckets) == {f"new{i}" for i in range(60)}


def test_a_new_client_at_the_cap_forgets_a_bounded_number_of_clients() -> None:
    """No request pays for the whole table: a few idle clients go, not all of them."""
    limiter = RateLimiter(rate=1, burst=1, max_clients=1000)
    for i in range(1000):
        limiter.allow(f"old{i}", 0)
    limiter.allow("new", 10)  # every old bucket is full again
    assert len(limiter) >= 1000 - 3 and "new" in limiter._buckets


def test_a_forgotten_idle_client_gets_what_it_would_have_got() -> None:
    kept = RateLimiter(rate=1, burst=3)
    swept = RateLimiter(rate=1, burst=3)
    for limiter in (kept, swept):
        limiter.allow("a", 0)
        limiter.allow("a", 0)
    swept.allow("b", 5)  # forgets a, whose bucket is full again
    assert "a" not in swept._buckets and "a" in kept._buckets
    assert [kept.allow("a", 5 + i / 100)[0] for i in range(4)] == [
        swept.allow("a", 5 + i / 100)[0] for i in range(4)
    ]


def test_a_full_limiter_leaves_the_cycle_collector_nothing_to_walk() -> None:
    """A full collection stops the event loop for every object it tracks: the clients'
    buckets must not be among them, however many clients there are."""
    import gc

    limiter = RateLimiter(rate=1, burst=20, max_clients=5_000)
    for n in range(5_000):
        limiter.allow(f"10.0.{n >> 8}.{n & 255}", n * 0.001)
    limiter.refund("10.0.0.1")
    gc.collect()
    tracked = {id(o) for o in gc.get_objects()}
    assert len(limiter) == 5_000
    assert not [b for b in limiter._buckets.values() if id(b) in tracked]
