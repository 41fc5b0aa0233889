"""Scoring a call against the lease history of the number called."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from ctm_pbx.core.attribution import (
    MAX_CANDIDATES,
    NOBODY,
    Attribution,
    attribute,
    call_likelihood,
    link_repeat_caller,
)
from ctm_pbx.core.pools import Lease

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NUMBER = "+13125550201"
DAY = 24 * 60


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def lease(visitor: str, leased: float, active: float, lease_minutes: int = 30, **kw) -> Lease:
    return Lease(
        visitor,
        at(leased),
        at(active),
        at(active + lease_minutes),
        visit_id=f"{visitor}-visit",
        number=NUMBER,
        **kw,
    )


def score(*leases: Lease, now: float = 0, window: int = DAY) -> Attribution:
    return attribute(NUMBER, at(now), leases, window)


def test_exclusive_active_lease_is_confident() -> None:
    got = score(lease("v1", -5, -1))
    assert (got.visitor_id, got.visit_id, got.reason) == (
        "v1",
        "v1-visit",
        "exclusive active lease",
    )
    assert got.confidence == pytest.approx(1.0)
    with_past_holders = score(
        lease("old", -300, -240), lease("older", -900, -880), lease("v1", -5, -1)
    )
    assert with_past_holders.visitor_id == "v1" and with_past_holders.confidence >= 0.9
    assert with_past_holders.reason == "exclusive active lease"
    assert [c.visitor_id for c in with_past_holders.candidates] == ["v1", "old", "older"]


def test_shared_lease_between_equally_active_visitors_is_a_coin_toss() -> None:
    got = score(lease("v1", -10, -2, shared=False), lease("v2", -8, -2, shared=True))
    assert got.reason == "shared lease (2 holders)"
    assert got.confidence == pytest.approx(0.5)
    assert {c.visitor_id for c in got.candidates} == {"v1", "v2"}
    assert all(c.weight == pytest.approx(0.5) and c.active for c in got.candidates)


def test_shared_lease_favours_the_more_recently_active_holder() -> None:
    got = score(lease("v1", -20, -15), lease("v2", -8, -1))
    assert got.visitor_id == "v2" and got.reason == "shared lease (2 holders)"
    assert 0.5 < got.confidence < 1


def test_active_lease_beats_a_lease_that_expired_ten_minutes_ago() -> None:
    expired = lease("gone", -60, -40)  # expired at -10, idle 40 minutes
    active = lease("here", -5, -2)
    got = score(expired, active)
    assert got.visitor_id == "here" and got.reason == "exclusive active lease"
    assert got.confidence >= 0.9
    assert [c.active for c in got.candidates] == [True, False]
    assert got.candidates[1].idle_minutes == pytest.approx(40)


def test_expired_lease_alone_is_attributed_with_its_delay() -> None:
    got = score(lease("gone", -60, -40))
    assert got.visitor_id == "gone" and got.confidence == pytest.approx(1.0)
    assert got.reason == "lease expired 10 minutes before the call"
    assert score(lease("gone", -60, -31)).reason == "lease expired 1 minute before the call"


@pytest.mark.parametrize(
    "leases",
    [
        (),
        (lease("old", -3 * DAY, -2 * DAY),),  # expired before the window
        (lease("later", 5, 6),),  # leased after the call
        (Lease("other", at(-5), at(-1), at(29), number="+13125550999"),),  # another number
    ],
    ids=["no history", "before the window", "after the call", "another number"],
)
def test_nobody_in_the_window(leases) -> None:
    assert score(*leases) == Attribution(None, None, 0.0, NOBODY)


def test_window_counts_a_lease_that_was_still_running_when_it_opened() -> None:
    # last active 24h05 ago, expired 23h35 ago: held the number within 24 hours
    assert score(lease("v1", -DAY - 10, -DAY - 5)).visitor_id == "v1"
    assert score(lease("v1", -DAY - 10, -DAY - 5), window=DAY - 40).visitor_id is None


def test_a_visitor_with_several_leases_counts_once_by_the_latest_activity() -> None:
    got = score(lease("v1", -300, -280), lease("v2", -200, -100), lease("v1", -50, -3))
    assert [c.visitor_id for c in got.candidates] == ["v1", "v2"]
    assert got.candidates[0].idle_minutes == pytest.approx(3)
    assert sum(c.weight for c in got.candidates) == pytest.approx(1)


def test_scoring_an_old_call_ignores_activity_after_it() -> None:
    got = score(lease("v1", -10, 30), lease("v2", -20, -15))
    assert got.visitor_id == "v1" and got.candidates[0].idle_minutes == 0
    assert got.reason == "shared lease (2 holders)"


@pytest.mark.parametrize(
    ("idle", "low", "high"),
    [
        (0, 0.25, 0.26),  # 0.70/3 + 0.25*ln2/10 + floor
        (10, 0.016, 0.018),  # the two exponentials about equal
        (30, 0.002, 0.003),
        (240, 1.0e-5, 1.3e-5),  # only the "days later" floor is left
    ],
)
def test_call_likelihood_values(idle, low, high) -> None:
    assert low < call_likelihood(idle) < high


def test_call_likelihood_is_a_decreasing_density() -> None:
    grid = [i / 10 for i in range(0, 3 * DAY * 10)]
    values = [call_likelihood(d) for d in grid]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert all(a > b for a, b in zip(values[:2400], values[1:2400], strict=False))
    mass = (sum(values) - (values[0] + values[-1]) / 2) * 0.1  # trapezoid rule
    assert mass == pytest.approx(1.0, abs=0.01), "a probability density over three days"
    assert call_likelihood(-5) == call_likelihood(0)
    assert math.isfinite(call_likelihood(10 * DAY))


PREVIOUS = [
    (1, "v1", "2026-11-20T10:00:00.000Z"),
    (2, None, "2026-11-25T10:00:00.000Z"),  # not attributed to a visitor
    (3, "v2", at(-DAY)),
    (4, "v3", at(60)),  # after "now"
]


@pytest.mark.parametrize(
    ("calls", "expect"),
    [
        (PREVIOUS, (3, "v2")),
        (PREVIOUS[:2], (1, "v1")),
        (PREVIOUS[1:2], None),
        ([], None),
        (PREVIOUS[3:], None),
    ],
    ids=["latest attributed", "skips unattributed", "none attributed", "no calls", "only later"],
)
def test_link_repeat_caller(calls, expect) -> None:
    got = link_repeat_caller(calls, at(0))
    assert (None if got is None else (got.call_id, got.visitor_id)) == expect
    if got is not None:
        assert got.started_at.tzinfo is not None


def test_a_busy_number_keeps_the_likeliest_candidates_and_counts_them_all() -> None:
    holders = [lease(f"v{i:03d}", -10 * i - 5, -10 * i - 1, 5) for i in range(MAX_CANDIDATES + 40)]
    got = score(*reversed(holders))
    assert got.candidate_count == MAX_CANDIDATES + 40
    assert [c.visitor_id for c in got.candidates] == [f"v{i:03d}" for i in range(MAX_CANDIDATES)]
    everyone = sum(call_likelihood(10 * i + 1) for i in range(MAX_CANDIDATES + 40))
    assert got.confidence == pytest.approx(call_likelihood(1) / everyone)
    assert got.reason == "exclusive active lease"
