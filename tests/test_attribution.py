"""Scoring a call against the lease history of the number called."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctm_pbx.core.attribution import (
    DIAL_MINUTES,
    LATE_LINKED_SHARE,
    LATE_SHARE,
    MAX_CANDIDATES,
    NOBODY,
    TAP_SHARE,
    UNKNOWN_SHARE,
    VISIT_MINUTES,
    Attribution,
    Evidence,
    after_leave_density,
    attribute,
    call_likelihood,
    evidence_of,
    link_repeat_caller,
    outside_likelihood,
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


def test_exclusive_open_page_is_confident_and_explained() -> None:
    got = score(lease("v1", -5, -0.5))
    assert (got.visitor_id, got.visit_id) == ("v1", "v1-visit")
    assert got.confidence > 0.99 and got.someone_else == pytest.approx(1 - got.confidence)
    assert got.reason == (
        "the only visitor who had this number; the caller's visitor had the page open;"
        " under 1 % chance it is someone else"
    )
    with_past_holders = score(
        lease("old", -300, -240), lease("older", -900, -880), lease("v1", -5, -1)
    )
    assert with_past_holders.visitor_id == "v1" and with_past_holders.confidence >= 0.9
    assert [c.visitor_id for c in with_past_holders.candidates] == ["v1", "old", "older"]
    assert with_past_holders.reason.startswith("shared with 2 other visitors;")


def test_equally_active_open_pages_are_a_coin_toss() -> None:
    got = score(lease("v1", -10, -0.5), lease("v2", -8, -0.5, shared=True))
    assert got.confidence == pytest.approx((1 - got.someone_else) / 2)
    assert all(c.active and c.open_page for c in got.candidates)
    assert got.reason.startswith("shared with 1 other visitor (1 with the page open);")


def test_a_lone_holder_who_left_is_not_certain() -> None:
    """Someone outside the window (days-later callers, a copied number) keeps a weight."""
    got = score(lease("gone", -60, -40))
    assert got.visitor_id == "gone" and 0.5 < got.confidence < 0.999
    assert got.someone_else == pytest.approx(1 - got.confidence)
    assert "left 40 min before the call" in got.reason
    long_gone = score(lease("gone", -20 * 60, -18 * 60))
    assert long_gone.confidence < 0.5, "a visitor gone 18 h is less likely than anyone else"


def test_a_visitor_who_left_25_minutes_ago_is_not_swamped_by_one_idle_for_5() -> None:
    """The after-leave delay is heavy-tailed: people call back half an hour later."""
    got = score(lease("recent", -20, -5), lease("earlier", -60, -25))
    assert got.visitor_id == "recent" and got.confidence < 0.9
    assert got.candidates[1].weight > 0.1


def test_the_in_visit_weight_ends_when_the_page_stops_renewing() -> None:
    assert call_likelihood(1) > 5 * call_likelihood(4)
    got = score(lease("open", -10, -0.5), lease("stopped", -10, -3))
    assert got.visitor_id == "open" and got.confidence > 0.8
    assert [c.open_page for c in got.candidates] == [True, False]


def test_a_page_that_said_it_closed_is_after_leaving_at_once() -> None:
    """Once the dial minute after the close is over (tapping a tel: link hides the page
    too): without the beacon a page idle 1.2 min still counts as open."""
    assert score(lease("v1", -10, -1.2)).candidates[0].open_page
    closed = lease("v1", -10, -1.2, closed_at=at(-1.2))
    assert not score(closed).candidates[0].open_page
    assert score(closed).confidence < score(lease("v1", -10, -1.2)).confidence
    both = score(closed, lease("v2", -10, -0.5))
    assert both.visitor_id == "v2" and both.confidence > 0.75
    assert score(lease("v1", -10, -0.5, closed_at=at(1))).candidates[0].open_page
    # closed 24 s before the call: maybe the tap that dialled; still of the visit
    assert score(lease("v1", -10, -0.5, closed_at=at(-0.4))).candidates[0].open_page
    shown_again = lease("v1", -10, -0.2, closed_at=at(-0.4))  # renewed after it closed
    assert score(shown_again).candidates[0].open_page


TAPPED = TAP_SHARE / DIAL_MINUTES / ((1 - TAP_SHARE) / VISIT_MINUTES)  # 6.5


@pytest.mark.parametrize(
    ("caller", "other", "low", "high"),
    [
        # the caller tapped the number: their page closed 5 s before the call; the other
        # page is open (renewed 40 s ago). A page closes at one every VISIT_MINUTES, a
        # tap's close comes within DIAL_MINUTES of the call (the after-leave term of
        # both, of a few seconds and 40 s, keeps the ratio under TAPPED)
        (lease("v1", -5, -0.2, closed_at=at(-5 / 60)), lease("v2", -5, -40 / 60), 4, TAPPED),
        # the close came 2 minutes before: they left, the open page is the caller's
        (lease("v1", -5, -2, closed_at=at(-2)), lease("v2", -5, -40 / 60), 0, 0.5),
        # both pages open: a coin toss
        (lease("v1", -5, -0.2), lease("v2", -5, -0.2), 1, 1),
    ],
)
def test_a_page_that_closed_as_the_call_came_is_the_tapping_callers(
    caller, other, low, high
) -> None:
    got = attribute(NUMBER, at(0), [other, caller], DAY)
    weights = {c.visitor_id: c.weight for c in got.candidates}
    assert low <= weights["v1"] / weights["v2"] <= high


def test_a_repeat_caller_is_linked_inside_and_outside_the_window() -> None:
    evidence = Evidence("v1", "v1-visit", 0.95, 7)
    inside = attribute(NUMBER, at(0), [lease("v1", -90, -60), lease("v2", -5, -0.5)], DAY, evidence)
    assert inside.visitor_id == "v1" and inside.confidence > 0.75
    assert inside.candidates[0].repeat and "repeat caller" in inside.reason
    outside = attribute(NUMBER, at(0), [lease("v2", -90, -60)], DAY, evidence)
    assert outside.visitor_id == "v1" and outside.visit_id == "v1-visit"
    assert "linked to their earlier call's visitor" in outside.reason
    alone = attribute(NUMBER, at(0), [], DAY, evidence)
    assert alone.visitor_id == "v1" and alone.confidence > 0.9
    unsure = attribute(NUMBER, at(0), [lease("v2", -90, -60)], DAY, Evidence("v1", None, 0.0))
    assert unsure.visitor_id == "v2", "an unsure earlier call is no evidence"


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
    assert score(*leases) == Attribution(None, None, 0.0, NOBODY, someone_else=1.0)


def test_window_counts_a_lease_that_was_still_running_when_it_opened() -> None:
    # last active 24h05 ago, expired 23h35 ago: held the number within 24 hours
    assert score(lease("v1", -DAY - 10, -DAY - 5)).candidate_count == 1
    assert score(lease("v1", -DAY - 10, -DAY - 5), window=DAY - 40).visitor_id is None


def test_a_visitor_with_several_leases_counts_once_by_the_latest_activity() -> None:
    got = score(lease("v1", -300, -280), lease("v2", -200, -100), lease("v1", -50, -3))
    assert [c.visitor_id for c in got.candidates] == ["v1", "v2"]
    assert got.candidates[0].idle_minutes == pytest.approx(3)
    assert sum(c.weight for c in got.candidates) + got.someone_else == pytest.approx(1)


def test_scoring_an_old_call_ignores_activity_after_it() -> None:
    got = score(lease("v1", -10, 30), lease("v2", -20, -15))
    assert got.visitor_id == "v1" and got.candidates[0].idle_minutes == 0
    assert got.candidates[0].open_page


def test_after_leave_delay_is_a_heavy_tailed_density() -> None:
    grid = [i / 10 for i in range(1, 3 * DAY * 10)]
    values = [after_leave_density(d) for d in grid]
    mass = sum(values) * 0.1
    assert 0.95 < mass < 1.0, "a density: what is missing is the tail beyond three days"
    within = lambda limit: sum(v for d, v in zip(grid, values, strict=True) if d <= limit) * 0.1  # noqa: E731
    assert within(10) == pytest.approx(0.5, abs=0.01), "median 10 minutes"
    assert 1 - within(60) == pytest.approx(0.12, abs=0.01), "12 % after an hour"
    assert after_leave_density(0) == 0 and after_leave_density(-1) == 0


def test_outside_weight_grows_with_the_numbers_traffic_and_shrinks_with_the_window() -> None:
    assert outside_likelihood(40, DAY) == pytest.approx(2 * outside_likelihood(20, DAY))
    assert outside_likelihood(20, 3 * DAY) < outside_likelihood(20, DAY) / 2
    assert outside_likelihood(0, DAY) > 0


@pytest.mark.parametrize(
    ("caller", "someone_else"),
    [
        # a caller id with no earlier call: not one of the days-later callers who called before
        ("+12125550123", LATE_SHARE * (1 - LATE_LINKED_SHARE) + UNKNOWN_SHARE),
        (None, LATE_SHARE + UNKNOWN_SHARE),  # withheld: could be any of them
        ("anonymous", LATE_SHARE + UNKNOWN_SHARE),
    ],
)
def test_a_caller_id_no_earlier_call_links_is_less_likely_a_days_later_caller(
    caller, someone_else
) -> None:
    holder = lease("v1", -40, -30)
    got = attribute(NUMBER, at(0), [holder], DAY, evidence_of(None, caller))
    outside = someone_else / DAY  # one holder in a day's window
    mine = call_likelihood(30)
    assert got.someone_else == pytest.approx(outside / (outside + mine))
    assert got.confidence == pytest.approx(mine / (outside + mine))


PREVIOUS = [
    (1, "v1", "2026-11-20T10:00:00.000Z", 0.5, "visit-1"),
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
        assert (got.confidence, got.visit_id) == (
            (0.5, "visit-1") if got.call_id == 1 else (1, None)
        )


def test_a_busy_number_keeps_the_likeliest_candidates_and_counts_them_all() -> None:
    holders = [lease(f"v{i:03d}", -10 * i - 5, -10 * i - 1, 5) for i in range(MAX_CANDIDATES + 40)]
    got = score(*reversed(holders))
    assert got.candidate_count == MAX_CANDIDATES + 40
    assert [c.visitor_id for c in got.candidates] == [f"v{i:03d}" for i in range(MAX_CANDIDATES)]
    everyone = sum(call_likelihood(10 * i + 1) for i in range(MAX_CANDIDATES + 40))
    everyone += outside_likelihood(MAX_CANDIDATES + 40, DAY)
    assert got.confidence == pytest.approx(call_likelihood(1) / everyone)


@pytest.mark.parametrize(
    ("kind", "pool", "decided"),
    [
        (None, None, (None, "not a tracking number of a known source")),
        ("offsite", None, (1.0, "off-site source: its own fixed number")),
        ("onsite", None, (1.0, "source-level number (no pool): the source is certain")),
        ("onsite", "ads-pool", None),  # the pool's visitors decide
    ],
)
def test_what_the_source_decides_without_a_visitor(kind, pool, decided) -> None:
    from ctm_pbx.core.attribution import by_source
    from ctm_pbx.core.model import Source, SourceKind

    source = None if kind is None else Source("s", SourceKind(kind), priority=10)
    assert by_source(source, pool) == decided
