"""What a pool's lease history says: shares and peak as pages open; sizing by replay."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from ctm_pbx.core.model import Pool
from ctm_pbx.core.pool_sizing import Session, advise_size, replay
from ctm_pbx.core.pools import Lease, pool_traffic

T0 = datetime(2026, 11, 2, tzinfo=UTC)
POOL = Pool("gads", "google-ads")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def lease(visitor: str, number: str, start: float, last: float, **kw) -> Lease:
    return Lease(visitor, at(start), at(last), at(last + 30), number=number, **kw)


def test_a_lease_in_another_leases_tail_is_not_shared() -> None:
    """The first page closed at 5; the second opened at 20, inside the first's 30-minute tail."""
    got = pool_traffic([lease("a", "n1", 0, 5), lease("b", "n1", 20, 25)], T0, at(60))
    assert (got.leases, got.shared, got.peak_open) == (2, 0, 1)


def test_pages_open_at_once_on_one_number_are_shared() -> None:
    leases = [lease("a", "n1", 0, 10), lease("b", "n1", 5, 8), lease("c", "n2", 6, 7)]
    got = pool_traffic(leases, T0, at(60))
    assert got.shared == 2 and got.shared_share == pytest.approx(2 / 3)
    assert got.peak_open == 3 and got.peak_at == at(6)


def test_a_page_that_said_it_closed_is_closed_then() -> None:
    leases = [lease("a", "n1", 0, 5, closed_at=at(5)), lease("b", "n1", 5.5, 8)]
    assert pool_traffic(leases, T0, at(60)).shared == 0
    assert pool_traffic([lease("a", "n1", 0, 5), lease("b", "n1", 5.5, 8)], T0, at(60)).shared == 2


def test_the_period_counts_from_the_first_lease() -> None:
    got = pool_traffic([lease("a", "n1", 3 * 24 * 60, 3 * 24 * 60 + 5)], T0, at(7 * 24 * 60))
    assert got.days == pytest.approx(4)


def sessions(per_day: int, days: int, seed: int = 1) -> list[Session]:
    rng = random.Random(seed)
    out, t = [], 0.0
    while t < days * 86400:
        t += rng.expovariate(per_day / 86400)
        start = T0 + timedelta(seconds=t)
        length = timedelta(seconds=rng.lognormvariate(math.log(240), 0.8))
        out.append(Session(f"v{len(out)}", start, start + length))
    return out


DELAYS = [0.0] * 70 + [10 * math.exp(1.5 * (i / 12.5 - 1)) for i in range(25)] + [2000.0] * 5


def test_replay_is_more_accurate_on_a_bigger_pool() -> None:
    traffic = sessions(200, 3)
    small, big = (replay(traffic, DELAYS, POOL, n, 24 * 60) for n in (3, 20))
    assert small.calls == big.calls == len(traffic)
    assert small.accuracy < big.accuracy and small.same_day < big.same_day
    assert big.same_day > big.accuracy, "days-later calls are missed at any size"


def test_advise_size_finds_the_smallest_size_reaching_the_target() -> None:
    traffic = sessions(200, 3)
    got = advise_size(traffic, DELAYS, POOL, "same_day", 0.95, 24 * 60)
    assert got.size is not None and got.reached >= 0.95
    below = replay(traffic, DELAYS, POOL, max(1, got.size - max(1, got.size // 10)), 24 * 60)
    assert below.same_day < 0.95 or got.size <= 2
    assert "based on 100 calls" in got.explanation
    assert "little data" not in got.explanation
    few = advise_size(traffic, DELAYS[::5], POOL, "same_day", 0.95, 24 * 60)
    assert "little data" in few.explanation and few.margin > got.margin
    unreachable = advise_size(traffic, DELAYS, POOL, "accuracy", 0.99, 24 * 60, max_size=64)
    assert unreachable.size is None and "not reached" in unreachable.explanation
    with pytest.raises(ValueError, match="between 0 and 1"):
        advise_size(traffic, DELAYS, POOL, "accuracy", 1.5, 24 * 60)
