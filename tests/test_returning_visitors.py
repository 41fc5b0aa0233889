"""When a returning visitor's request can be answered from memory, and what it answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.core.returning_visitors import (
    REFRESH_AFTER,
    VISIT_IDLE,
    HeldNumber,
    KnownVisitor,
    RememberedVisitors,
    answer_known_visitor,
)
from ctm_pbx.core.sources import SourceDecision, Touch

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CONFIG = parse_config(
    """\
sources:
  google-ads: {preset: google_ads}
  bing-ads: {preset: bing_ads, last_touch: true}
  direct: {preset: direct}
targets:
  sales: "+1 312 555 0100"
pools:
  gads: {source: google-ads, lease_minutes: 30}
""",
    env={},
)
SOURCES, POOLS = CONFIG.sources, CONFIG.pools
LEASED = HeldNumber("+13125550100", "+13125550150", "gads", False, 7, T0 + timedelta(minutes=30))
STATIC = HeldNumber("+13125550110", "+13125550160")
OVERFLOW = HeldNumber("+13125550100", "+13125550199", "gads", False, None, None)
GADS = Touch("google-ads", "click id gclid", T0 - timedelta(days=2))
INTERNAL = SourceDecision(None, "no source matched", "none")
DIRECT = SourceDecision("direct", "no referrer", "direct")
BING_CLICK = SourceDecision("bing-ads", "click id msclkid", "landing")


def known(**changes) -> KnownVisitor:
    fields = {
        "visitor_id": "visitor-1",
        "touch": GADS,
        "visit_id": "visit-1",
        "page_visit": "visit-2",
        "last_active_at": T0,
        "numbers": (LEASED, STATIC),
        "loaded_at": T0,
    }
    return KnownVisitor(**(fields | changes))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("case", "visitor", "decision", "now"),
    [
        ("next page, same site", known(), INTERNAL, at(2)),
        ("next page without a referrer: direct never replaces a source", known(), DIRECT, at(2)),
        ("heartbeat", known(), None, at(4)),
        ("static numbers only", known(numbers=(STATIC,)), INTERNAL, at(1)),
        (
            "no numbers (off-site or direct visitor)",
            known(numbers=(), touch=Touch("direct", "no referrer", T0)),
            INTERNAL,
            at(1),
        ),
    ],
)
def test_answered_from_memory(case, visitor, decision, now) -> None:
    got = answer_known_visitor(visitor, decision, SOURCES, POOLS, 30, now)
    assert got is not None, case
    assert got.visitor.last_active_at == now and got.page_view is (decision is not None)
    leases = [h for h in got.visitor.numbers if h.pool]
    assert got.renewed == tuple(leases)
    assert all(h.expires_at == now + timedelta(minutes=30) for h in leases)
    assert [h.number for h in got.visitor.numbers] == [h.number for h in visitor.numbers]
    assert got.expires_at == (now + timedelta(minutes=30) if leases else None)


@pytest.mark.parametrize(
    ("case", "visitor", "decision", "now"),
    [
        ("a click from an ad: a new visit", known(), BING_CLICK, at(1)),
        ("idle past the visit's end: a new visit", known(), INTERNAL, T0 + VISIT_IDLE),
        ("the lease ran out", known(), None, at(30)),
        ("the number was the overflow number", known(numbers=(OVERFLOW,)), INTERNAL, at(1)),
        ("memory older than the refresh period", known(), INTERNAL, T0 + REFRESH_AFTER),
        ("the clock went back", known(), INTERNAL, at(-1)),
        (
            "first touch past its window",
            known(touch=Touch("google-ads", "x", at(-31 * 1440))),
            INTERNAL,
            at(1),
        ),
        (
            "a pool no longer configured",
            known(numbers=(HeldNumber("+1", "+2", "gone", False, 1, at(30)),)),
            INTERNAL,
            at(1),
        ),
    ],
)
def test_left_to_the_store(case, visitor, decision, now) -> None:
    assert answer_known_visitor(visitor, decision, SOURCES, POOLS, 30, now) is None, case


def test_only_leases_and_static_numbers_are_remembered() -> None:
    assert known().can_be_remembered()
    assert not known(numbers=(LEASED, OVERFLOW)).can_be_remembered()


def visitor_at(n: int, minutes: float) -> KnownVisitor:
    return known(visitor_id=f"v{n}", last_active_at=at(minutes), loaded_at=at(minutes))


def test_a_full_memory_of_live_visitors_forgets_the_least_recently_answered() -> None:
    memory = RememberedVisitors(capacity=3)
    for n in range(3):
        memory.remember(visitor_at(n, n / 10), at(n / 10))
    memory.remember(visitor_at(0, 0.3), at(0.3))  # v0 came first, but was answered again
    memory.remember(visitor_at(3, 0.4), at(0.4))
    assert [v for v in ("v0", "v1", "v2", "v3") if v in memory] == ["v0", "v2", "v3"]
    assert memory.get("v0") == visitor_at(0, 0.3)


def test_stale_visitors_are_forgotten_before_the_memory_is_full() -> None:
    memory = RememberedVisitors(capacity=1000)
    for n in range(100):
        memory.remember(visitor_at(n, 0), at(0))
    later = T0 + REFRESH_AFTER
    for n in range(100, 160):
        memory.remember(visitor_at(n, 5), later)
    assert len(memory) == 60 and all(f"v{n}" in memory for n in range(100, 160))


def test_remembering_at_the_cap_forgets_a_bounded_number_of_visitors() -> None:
    """No request pays for the whole memory: a few stale visitors go, not all of them."""
    memory = RememberedVisitors(capacity=1000)
    for n in range(1000):
        memory.remember(visitor_at(n, 0), at(0))
    memory.remember(visitor_at(1000, 10), at(10))  # every other one is stale now
    assert len(memory) >= 1000 - 3 and "v1000" in memory


@pytest.mark.parametrize(
    ("case", "visitor", "now", "stale"),
    [
        ("fresh", known(), at(4), False),
        ("store answer too old", known(), T0 + REFRESH_AFTER, True),
        ("visit ended", known(numbers=(STATIC,), loaded_at=at(28)), T0 + VISIT_IDLE, True),
        ("a lease ran out", known(loaded_at=at(29), last_active_at=at(29)), at(30), True),
        ("static numbers never run out", known(numbers=(STATIC,)), at(4), False),
    ],
)
def test_stale_memory(case, visitor, now, stale) -> None:
    assert visitor.stale(now) is stale, case


def test_a_memory_of_no_visitors_remembers_none() -> None:
    memory = RememberedVisitors(capacity=0)
    memory.remember(visitor_at(0, 0), at(0))
    assert len(memory) == 0 and memory.get("v0") is None


@pytest.mark.parametrize(
    "visitor",
    [
        known(),
        known(touch=None, visit_id=None, numbers=()),
        known(numbers=(LEASED, STATIC, HeldNumber("+13125550120", "+13125550170", "b", True, 9))),
    ],
    ids=["leased-and-static", "no-touch", "shared"],
)
def test_a_remembered_visitor_is_given_back_as_it_was_answered(visitor: KnownVisitor) -> None:
    memory = RememberedVisitors(capacity=10)
    memory.remember(visitor, T0)
    assert memory.get(visitor.visitor_id) == visitor
    assert memory.get("someone-else") is None


def test_a_full_memory_leaves_the_cycle_collector_nothing_to_walk() -> None:
    """A full collection walks every object it tracks, with the event loop waiting: the
    remembered visitors must not be among them, however many there are."""
    import gc

    memory = RememberedVisitors(capacity=5_000)
    for n in range(5_000):
        memory.remember(visitor_at(n, 0), at(0))
    gc.collect()  # the collector stops tracking tuples of plain values when it meets them
    tracked = {id(o) for o in gc.get_objects()}
    kept = list(memory._known.values())
    assert len(kept) == 5_000
    assert not [entry for entry in kept if id(entry) in tracked]
