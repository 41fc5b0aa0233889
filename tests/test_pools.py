"""Pool assignment, table-driven with injected time (minutes after T0)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctm_pbx.core.model import Pool
from ctm_pbx.core.pools import (
    Assignment,
    Lease,
    NumberState,
    PoolView,
    advise,
    assign,
    free_at,
    in_line_until,
    number_status,
    poisson_size,
    pool_metrics,
    renew,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
N1, N2, N3 = "+13125550201", "+13125550202", "+13125550203"
OVERFLOW = "+13125550299"
POOL = Pool("web", "google-ads", lease_minutes=30, cooldown_minutes=30)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def lease(visitor: str, leased: float, active: float | None = None, pool: Pool = POOL) -> Lease:
    last = leased if active is None else active
    return Lease(visitor, at(leased), at(last), at(last + pool.lease_minutes))


class FakePool:
    """What the store does around ``assign``: keep every lease, build views."""

    def __init__(self, pool: Pool, numbers: tuple[str, ...]) -> None:
        self.pool = pool
        self.numbers = numbers
        self.leases: dict[str, list[Lease]] = {n: [] for n in numbers}

    def view(self, now: datetime) -> PoolView:
        states = []
        for n in self.numbers:
            history = self.leases[n]
            last = max((h.last_active_at for h in history), default=None)
            states.append(NumberState(n, last, tuple(h for h in history if h.active(now))))
        return PoolView(self.pool, tuple(states))

    def visit(self, visitor: str, now: datetime) -> Assignment:
        got = assign(self.view(now), visitor, now)
        if got.renewed:
            history = self.leases[got.number]
            i = next(i for i, h in enumerate(history) if h.id == got.lease_id)
            history[i] = renew(history[i], now, self.pool)
            assert history[i].expires_at == got.expires_at
        elif got.new_lease:
            ids = sum(len(v) for v in self.leases.values())
            self.leases[got.number].append(
                Lease(visitor, now, now, got.expires_at, shared=got.shared, id=ids + 1)
            )
        return got


# (minute, visitor, expected number, shared, renewed)
SCENARIOS = {
    "lease then renew while active": [
        (0, "v1", N1, False, False),
        (10, "v1", N1, False, True),
        (39, "v1", N1, False, True),  # 29 minutes after the last activity: still held
    ],
    "expiry after lease_minutes of inactivity": [
        (0, "v1", N1, False, False),
        (10, "v1", N1, False, True),  # now expires at 40
        (40, "v1", N2, False, False),  # expired; N1 rests until 70, N2 never used
    ],
    "cooldown before reuse": [
        (0, "v1", N1, False, False),
        (1, "v2", N2, False, False),
        (2, "v3", N3, False, False),
        (59, "v4", N1, False, False),  # none free: N1 rested longest, cooldown cut short
        (61, "v5", N2, False, False),  # N2 free at 61 (1 + 30 + 30)
        (62, "v6", N3, False, False),
    ],
    "exhausted pool shares the least recently active number": [
        (0, "v1", N1, False, False),
        (1, "v2", N2, False, False),
        (2, "v3", N3, False, False),
        (3, "v1", N1, False, True),  # N1 now active at 3, N2 at 1, N3 at 2
        (4, "v4", N2, True, False),
        (5, "v4", N2, True, True),  # the sharer renews, still shared
        (6, "v5", N3, True, False),
    ],
}


@pytest.mark.parametrize("steps", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_assignment_scenarios(steps) -> None:
    fake = FakePool(POOL, (N1, N2, N3))
    for minute, visitor, number, shared, renewed in steps:
        got = fake.visit(visitor, at(minute))
        assert (got.number, got.shared, got.renewed) == (number, shared, renewed), (
            minute,
            visitor,
            got.reason,
        )
        assert got.expires_at == at(minute + POOL.lease_minutes)


def test_least_recently_active_not_least_recently_assigned() -> None:
    view = PoolView(
        POOL,
        (
            NumberState(N1, at(-70), ()),  # assigned first (-200) but its holder stayed late
            NumberState(N2, at(-130), ()),  # assigned later (-140), idle longest
        ),
    )
    got = assign(view, "v9", at(0))
    assert got.number == N2 and "least recently active (130 min ago)" in got.reason
    fresh = replace(view, numbers=(*view.numbers, NumberState(N3)))
    got = assign(fresh, "v9", at(0))
    assert got.number == N3 and got.reason == "free number, never used"


def test_exhausted_pool_with_overflow_number() -> None:
    pool = replace(POOL, overflow_number=OVERFLOW)
    fake = FakePool(pool, (N1,))
    assert fake.visit("v1", at(0)).number == N1
    got = fake.visit("v2", at(1))
    assert got == Assignment(
        OVERFLOW, reason="pool exhausted: overflow number (no number free)", overflow=True
    )
    assert not got.new_lease and fake.leases[N1] == [fake.leases[N1][0]]
    assert fake.visit("v1", at(2)).renewed, "the holder keeps its number"
    assert fake.visit("v3", at(29)).overflow, "resting numbers are not handed out either"
    assert fake.visit("v3", at(62)).number == N1


def test_shared_reason_and_flag_without_overflow() -> None:
    fake = FakePool(POOL, (N1,))
    fake.visit("v1", at(0))
    got = fake.visit("v2", at(5))
    assert got.shared and got.new_lease
    assert got.reason == "pool exhausted: shared with 1 holder (least recently active, 5 min ago)"
    assert fake.leases[N1][1].shared
    again = fake.visit("v1", at(6))
    assert again.renewed and again.shared and "shared with 1 other" in again.reason


def test_empty_pool_gives_no_number() -> None:
    got = assign(PoolView(POOL, ()), "v1", at(0))
    assert got.number is None and not got.new_lease and got.expires_at is None
    assert "target's own number" in got.reason


@pytest.mark.parametrize(
    ("state", "minute", "status"),
    [
        (NumberState(N1), 0, "free"),
        (NumberState(N1, at(0), (lease("v1", 0),)), 29, "held"),
        (NumberState(N1, at(0), (lease("v1", 0),)), 30, "resting"),  # expires at 30
        (NumberState(N1, at(0), ()), 59, "resting"),
        (NumberState(N1, at(0), ()), 60, "free"),
        (NumberState(N1, at(0), (lease("v1", 0, active=20),)), 79, "resting"),
    ],
    ids=["never used", "held", "just expired", "resting", "rested", "holder active later"],
)
def test_number_status(state, minute, status) -> None:
    assert number_status(state, POOL, at(minute)) == status


def test_free_at_counts_from_the_last_activity() -> None:
    assert free_at(NumberState(N1), POOL) is None
    assert free_at(NumberState(N1, at(0), (lease("v1", 0, active=20),)), POOL) == at(80)


UNCONFIRMED = Lease("v1", at(0), at(0), at(1))  # a new lease: 60 s until its first heartbeat


@pytest.mark.parametrize(
    ("held", "minute", "place"),
    [
        (UNCONFIRMED, 0, 60),  # live, unconfirmed: as a holder active at its start
        (UNCONFIRMED, 0.99, 60),
        (UNCONFIRMED, 1, 1),  # expired unconfirmed (a bounce): free at its end, no rest
        (replace(UNCONFIRMED, closed_at=at(0.5)), 0.5, 1),  # the page closed: a bounce too
        (lease("v1", 0, active=20), 25, 80),  # confirmed: its tail, then the cooldown
        (replace(lease("v1", 0, active=20), closed_at=at(22)), 25, 52),  # closed: rests from it
    ],
    ids=["new", "new, 59 s", "bounced", "closed unconfirmed", "confirmed", "closed"],
)
def test_in_line_until(held, minute, place) -> None:
    assert in_line_until(held, POOL, at(minute)) == at(place)


def test_renew_moves_expiry_from_the_last_renewal() -> None:
    held = lease("v1", 0)
    renewed = renew(held, at(25), POOL)
    assert renewed.last_active_at == at(25) and renewed.expires_at == at(55)
    assert renewed.leased_at == at(0)
    assert renew(renewed, at(20), POOL).last_active_at == at(25), "activity never goes back"


def test_pool_metrics() -> None:
    view = PoolView(
        POOL,
        (
            NumberState(N1, at(0), (lease("v1", 0), lease("v2", 1))),
            NumberState(N2, at(-20), ()),  # resting until 40
            NumberState(N3),
        ),
    )
    stats = pool_metrics(view, at(5), shares_count=7, peak=1)
    assert (stats.size, stats.held, stats.resting, stats.free) == (3, 1, 1, 1)
    assert (stats.active_leases, stats.shared_leases, stats.shares_total) == (2, 1, 7)
    assert stats.utilisation == pytest.approx(1 / 3)
    assert stats.peak_concurrent == 2, "never below what is active now"
    assert pool_metrics(PoolView(POOL), at(0)).utilisation == 0.0


@pytest.mark.parametrize(
    ("peak", "daily", "p", "by_peak", "ctm", "findings", "recommended"),
    [
        (10, 200, 0.01, 18, 10, 40, 40),
        (10, 200, 0.001, 21, 10, 40, 40),
        (0, 0, 0.01, 1, 1, 1, 1),
        (1, 10, 0.05, 3, 1, 2, 3),
        (60, 100, 0.01, 79, 5, 20, 79),  # long visits: peak sizing dominates
    ],
)
def test_advise(peak, daily, p, by_peak, ctm, findings, recommended) -> None:
    advice = advise(peak, daily, p)
    got = (advice.by_peak, advice.ctm_rule, advice.findings_rule, advice.recommended)
    assert got == (by_peak, ctm, findings, recommended)
    assert f"Recommended: {recommended}" in advice.explanation
    assert "1 number per 20 daily" in advice.explanation


def test_poisson_size_is_sane_at_high_volume() -> None:
    n = poisson_size(5000, 0.01)
    assert 5000 + 2.2 * 5000**0.5 < n < 5000 + 2.5 * 5000**0.5  # normal approx: z = 2.33
    assert poisson_size(5000, 0.001) > n


@pytest.mark.parametrize("p", [0, 1, -0.5, 2])
def test_advise_rejects_impossible_targets(p) -> None:
    with pytest.raises(ValueError):
        advise(10, 200, p)


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(1, 4),
    visits=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 8)), min_size=1, max_size=40),
    overflow=st.booleans(),
)
def test_assign_never_fails_and_shares_only_when_nothing_is_free(size, visits, overflow) -> None:
    pool = replace(POOL, overflow_number=OVERFLOW if overflow else None)
    numbers = (N1, N2, N3, "+13125550204")[:size]
    fake = FakePool(pool, numbers)
    minute = 0.0
    for visitor, gap in visits:
        minute += gap * 4
        now = at(minute)
        view = fake.view(now)
        free = [s for s in view.numbers if number_status(s, pool, now) == "free"]
        got = fake.visit(f"v{visitor}", now)
        assert got.number is not None
        if got.renewed:
            continue
        if free:
            assert got.number in numbers and not got.shared and not got.overflow
        elif overflow:
            assert got.number == OVERFLOW and got.overflow
        else:
            holders = {n.number: n.active_holders(now) for n in view.numbers}
            assert got.shared == bool(holders[got.number])
