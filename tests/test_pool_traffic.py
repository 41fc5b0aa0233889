"""What a pool's lease history says: shares and peak as pages open; sizing by replay."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ctm_pbx.core.attribution import Evidence
from ctm_pbx.core.model import Pool
from ctm_pbx.core.pool_sizing import ReplayCall, Session, advise_size, replay, spread_call
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


def calls_of(traffic: list[Session], every: int = 3) -> list[ReplayCall]:
    """Every ``every``-th visitor calls: 70 % with the page open, 25 % minutes after
    leaving, 5 % two days later (deterministic)."""
    out = []
    for i, s in enumerate(traffic[::every]):
        k = i % 20
        if k < 14:
            out.append(ReplayCall(s.start + (s.end - s.start) / 2, s.visitor_id, 1.0))
        elif k < 19:
            delay = 10 * math.exp(1.5 * ((k - 14) / 2.5 - 1))
            out.append(ReplayCall(s.end + timedelta(minutes=delay), s.visitor_id, 1.0))
        else:
            out.append(ReplayCall(s.end + timedelta(days=2), s.visitor_id, 1.0, same_day=False))
    return out


def test_replay_is_more_accurate_on_a_bigger_pool() -> None:
    traffic = sessions(200, 3)
    calls = calls_of(traffic)
    small, big = (replay(traffic, calls, POOL, n, 24 * 60) for n in (3, 20))
    assert small.calls == big.calls == len(calls)
    assert small.accuracy < big.accuracy and small.same_day < big.same_day
    assert big.same_day > big.accuracy, "days-later calls are missed at any size"


NY, LA = "America/New_York", "America/Los_Angeles"
LINK = Evidence("r", None, 1.0, 7)  # the caller's earlier call was visitor r's


@pytest.mark.parametrize(
    ("case", "traffic", "call", "zones", "size"),
    [
        # a closes at 20.5: its number rests from the close, so b (45) takes it rather
        # than d's, and d, who left at 15, is alone on theirs when they call at 50
        (
            "a closed page's number rests from its close",
            [
                Session("a", at(0), at(20), closed_at=at(20.5)),
                Session("d", at(5), at(15)),
                Session("b", at(45), at(55)),
            ],
            ReplayCall(at(50), "d", 1.0),
            None,
            2,
        ),
        # b and a share the one number, both pages open: b's browser is in the zone of
        # the caller's number, a's three zones away
        (
            "the caller's time zone tells two open pages apart",
            [Session("a", at(0), at(10)), Session("b", at(2), at(10))],
            ReplayCall(at(5), "b", 1.0, evidence=Evidence(caller_zones=(NY,))),
            {"a": LA, "b": NY},
            1,
        ),
        # r visited two days before the call, x left an hour before it: the caller id
        # links the call to r, outside the window
        (
            "a repeat caller's earlier visitor, days later",
            [Session("r", at(0), at(10)), Session("x", at(2800), at(2810))],
            ReplayCall(at(2880), "r", 1.0, same_day=False, evidence=LINK),
            None,
            1,
        ),
    ],
)
def test_replay_scores_with_what_the_engine_uses(case, traffic, call, zones, size) -> None:
    """Closes, time zones and repeat callers, as the real scorer uses them: each case's
    call is right in the replay, and wrong without that signal."""
    got = replay(traffic, [call], POOL, size, 24 * 60, zones)
    assert got.accuracy == 1.0, case
    bare = [Session(s.visitor_id, s.start, s.end) for s in traffic]
    without = replay(bare, [replace(call, evidence=Evidence())], POOL, size, 24 * 60)
    assert without.accuracy == 0.0, case


def test_a_repeat_link_is_the_one_the_replay_made() -> None:
    """The caller's first call (stored call 7, visitor r's) linked their second, days
    later. On one number shared by r and x, the replay attributes the first call to x
    (the later page), so the second call's link is x's, as the engine would have linked
    it at that size: the stored link to r does not carry over."""
    traffic = [Session("r", at(0), at(10)), Session("x", at(5), at(10.5))]
    first = ReplayCall(at(11), "r", 1.0, call_id=7)
    second = ReplayCall(at(2880), "r", 1.0, same_day=False, evidence=LINK, call_id=8)
    got = replay(traffic, [first, second], POOL, 1, 24 * 60)
    assert got.accuracy == 0.0, "the first call goes to x here, and so does the link"
    alone = replay(traffic, [second], POOL, 1, 24 * 60)
    assert alone.accuracy == 1.0, "an earlier call not replayed keeps its stored link"


def test_a_stored_call_is_replayed_as_made_by_each_candidate() -> None:
    stored = [
        {"visitor_id": "a", "weight": 0.7, "idle_minutes": 0.0, "open_page": True},
        {"visitor_id": "b", "weight": 0.2, "idle_minutes": 25.0},
        {"visitor_id": "r", "weight": 0.05, "idle_minutes": -1.0, "repeat": True},
        {"visitor_id": None, "someone_else": True, "weight": 0.05},
        {"visitor_id": "c", "weight": 0.001, "idle_minutes": 300.0},  # too unlikely to replay
    ]
    got = spread_call(at(0), stored, LINK)
    assert [(c.visitor_id, c.weight, c.same_day) for c in got] == [
        ("a", 0.7, True),
        ("b", 0.2, True),
        ("r", 0.05, False),
        (None, 0.05, False),
    ]
    assert all(c.evidence == LINK for c in got)


def test_advise_size_finds_the_smallest_size_reaching_the_target() -> None:
    traffic = sessions(200, 3)
    calls = calls_of(traffic)
    got = advise_size(traffic, calls, POOL, "same_day", 0.95, 24 * 60)
    assert got.size is not None and got.reached >= 0.95
    below = replay(traffic, calls, POOL, max(1, got.size - max(1, got.size // 10)), 24 * 60)
    assert below.same_day < 0.95 or got.size <= 2
    assert f"based on {len(calls)} calls" in got.explanation
    assert "little data" not in got.explanation
    low, high = got.between
    assert low is not None and low <= got.size and (high is None or high >= got.size)
    few = advise_size(traffic, calls[::5], POOL, "same_day", 0.95, 24 * 60)
    assert "little data" in few.explanation and few.margin > got.margin
    unreachable = advise_size(traffic, calls, POOL, "accuracy", 0.99, 24 * 60, max_size=64)
    assert unreachable.size is None and "not reached" in unreachable.explanation
    with pytest.raises(ValueError, match="between 0 and 1"):
        advise_size(traffic, calls, POOL, "accuracy", 1.5, 24 * 60)
