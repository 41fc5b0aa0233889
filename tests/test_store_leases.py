"""The store side of pools: visitors, visits, leases, counters, and their indexes."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ctm_pbx.adapters.store import leases as store
from ctm_pbx.adapters.store import migrate, open_db, pool_stats
from ctm_pbx.adapters.store import numbers as number_store
from ctm_pbx.adapters.store import visitors as visitor_store
from ctm_pbx.core.attribution import attribute
from ctm_pbx.core.clock import iso
from ctm_pbx.core.inventory import NumberRecord
from ctm_pbx.core.model import Pool
from ctm_pbx.core.pools import assign

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
N1, N2 = "+13125550201", "+13125550202"
POOL = Pool("web", "google-ads", lease_minutes=30, cooldown_minutes=30)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def db(tmp_path):
    database = open_db(tmp_path / "ctm.db")
    migrate(database)
    yield database
    database.conn.close()


def visitor(db, vid: str, minute: float = 0) -> str:
    visitor_store.upsert_visitor(db, vid, now=at(minute))
    visitor_store.insert_visit(db, f"{vid}-1", vid, now=at(minute))
    return f"{vid}-1"


def plan(db, sql: str, args) -> str:
    return " ".join(str(r) for r in db.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall())


def test_visitor_upsert_keeps_first_seen_and_source_until_replaced(db) -> None:
    visitor_store.upsert_visitor(db, "v1", now=at(0), source="google-ads", visit_id=None)
    visitor_store.upsert_visitor(db, "v1", now=at(10))
    row = visitor_store.get_visitor(db, "v1")
    assert row["first_seen_at"] == iso(at(0)) and row["last_seen_at"] == iso(at(10))
    assert row["source"] == "google-ads"
    visitor_store.insert_visit(db, "v1-2", "v1", now=at(20), source="bing-ads")
    visitor_store.upsert_visitor(db, "v1", now=at(20), source="bing-ads", visit_id="v1-2")
    visitor_store.upsert_visitor(db, "v1", now=at(5))
    row = visitor_store.get_visitor(db, "v1")
    assert (row["source"], row["visit_id"], row["last_seen_at"]) == (
        "bing-ads",
        "v1-2",
        iso(at(20)),
    )
    assert visitor_store.get_visitor(db, "nobody") is None


def test_visit_round_trip_and_touch(db) -> None:
    visitor_store.upsert_visitor(db, "v1", now=at(0))
    visitor_store.insert_visit(
        db,
        "v1-1",
        "v1",
        now=at(0),
        source="google-ads",
        source_rule="click_ids: gclid",
        landing_url="https://example.com/?gclid=abc",
        utm={"utm_source": "google", "campaign": "winter"},
        click_ids={"gclid": "abc"},
        ip="203.0.113.7",
    )
    assert visitor_store.touch_visit(db, "v1-1", at(4))
    assert visitor_store.touch_visit(db, "v1-1", at(2)), "an out-of-order ping still counts a page"
    visit = visitor_store.get_visit(db, "v1-1")
    assert (visit["pages"], visit["started_at"], visit["last_active_at"]) == (
        3,
        iso(at(0)),
        iso(at(4)),
    )
    assert (visit["utm_source"], visit["utm_campaign"], visit["utm_medium"]) == (
        "google",
        "winter",
        None,
    )
    assert visit["click_ids"] == {"gclid": "abc"}
    assert visitor_store.get_visitor(db, "v1")["last_seen_at"] == iso(at(4))
    assert not visitor_store.touch_visit(db, "nope", at(5))
    assert visitor_store.get_visit(db, "nope") is None


def test_lease_round_trip_renew_and_expiry(db) -> None:
    visit = visitor(db, "v1")
    lease_id = store.insert_lease(
        db, number=N1, pool="web", visitor_id="v1", visit_id=visit, now=at(0), expires_at=at(30)
    )
    held = store.active_lease(db, "v1", "web", at(29))
    assert held == store.get_lease(db, lease_id)
    assert (held.number, held.pool, held.visit_id, held.shared) == (N1, "web", visit, False)
    assert (held.leased_at, held.last_active_at, held.expires_at) == (at(0), at(0), at(30))
    assert store.active_lease(db, "v1", "web", at(30)) is None, "expired"
    assert store.active_lease(db, "v1", "other-pool", at(1)) is None
    store.renew_lease(db, lease_id, at(20), at(50))
    renewed = store.active_lease(db, "v1", "web", at(45))
    assert (renewed.id, renewed.last_active_at, renewed.expires_at) == (lease_id, at(20), at(50))


def test_pool_view_reads_active_holders_and_last_activity(db) -> None:
    for vid in ("v1", "v2", "v3"):
        visitor(db, vid)
    records = [NumberRecord(n, "google-ads", "web", "main") for n in (N1, N2, "+13125550203")]
    number_store.add_numbers(db, records, now=iso(at(-100)))
    store.insert_lease(
        db, number=N1, pool="web", visitor_id="v1", visit_id=None, now=at(0), expires_at=at(30)
    )
    store.insert_lease(
        db,
        number=N1,
        pool="web",
        visitor_id="v2",
        visit_id=None,
        now=at(5),
        expires_at=at(35),
        shared=True,
    )
    old = store.insert_lease(
        db, number=N2, pool="web", visitor_id="v3", visit_id=None, now=at(-90), expires_at=at(-60)
    )
    store.renew_lease(db, old, at(-40), at(-10))
    view = store.pool_view(db, POOL, [N1, N2, "+13125550203", N1], at(10))
    assert [s.number for s in view.numbers] == [N1, N2, "+13125550203"]
    n1, n2, n3 = view.numbers
    assert [h.visitor_id for h in n1.holders] == ["v1", "v2"] and n1.holders[1].shared
    assert n1.last_active_at is None, "leases never renewed are not confirmed activity"
    assert n1.last_activity() == at(5), "while they hold the number"
    assert n2.holders == () and n2.last_active_at == at(-40)
    assert n3.holders == () and n3.last_active_at is None
    assert view.active_leases(at(10)) == 2
    assert store.pool_view(db, POOL, [], at(10)).numbers == ()


def test_pool_view_queries_use_indexes(db) -> None:
    active = plan(db, store._ACTIVE_LEASES, ['["+1"]', iso(T0)])
    assert "USING INDEX idx_leases_number_expires (number=? AND expires_at>?)" in active
    last = plan(db, store._LAST_ACTIVE, ['["+1"]'])
    assert "USING INDEX sqlite_autoindex_tracking_numbers_1 (number=?)" in last


def test_lease_history_uses_an_index_and_covers_the_window(db) -> None:
    query_plan = plan(db, store._LEASE_HISTORY, [N1, iso(at(-60)), iso(T0)])
    assert "SEARCH leases USING INDEX idx_leases_number_expires" in query_plan
    assert "SCAN leases" not in query_plan
    for vid in ("old", "edge", "recent", "later"):
        visitor(db, vid)
    for vid, start, end in (("old", -200, -120), ("edge", -100, -59), ("recent", -10, 20)):
        store.insert_lease(
            db,
            number=N1,
            pool="web",
            visitor_id=vid,
            visit_id=None,
            now=at(start),
            expires_at=at(end),
        )
    store.insert_lease(
        db, number=N1, pool="web", visitor_id="later", visit_id=None, now=at(5), expires_at=at(35)
    )
    store.insert_lease(
        db, number=N2, pool="web", visitor_id="recent", visit_id=None, now=at(-5), expires_at=at(25)
    )
    history = store.lease_history(db, N1, at(-60), T0)
    assert [h.visitor_id for h in history] == ["edge", "recent"]
    got = attribute(N1, T0, history, 60)
    assert got.visitor_id == "recent" and got.candidates[0].active


def test_assign_and_record_through_the_store(db) -> None:
    number_store.add_numbers(
        db,
        [NumberRecord(n, "google-ads", "web", "one", "", managed_by="cli") for n in (N1, N2)],
        now=iso(T0),
    )
    assert store.pool_numbers(db, "web") == [N1, N2]

    def visit(vid: str, minute: float, pool: Pool = POOL):
        now = at(minute)
        if visitor_store.get_visitor(db, vid) is None:
            visitor(db, vid, minute)
        view = store.pool_view(db, pool, store.pool_numbers(db, pool.name), now)
        got = assign(view, vid, now)
        lease_id = store.record_assignment(
            db, view, got, visitor_id=vid, visit_id=f"{vid}-1", now=now
        )
        return got, lease_id

    first, lease_id = visit("v1", 0)
    assert first.number == N1 and lease_id is not None
    again, same = visit("v1", 10)
    assert again.renewed and same == lease_id
    assert store.get_lease(db, lease_id).expires_at == at(40)
    assert visit("v2", 11)[0].number == N2
    shared, _ = visit("v3", 12)
    assert shared.shared and shared.number == N1, "N1 was active at 10, N2 at 11"
    overflow, none = visit("v4", 13, replace(POOL, overflow_number="+13125550299"))
    assert overflow.overflow and none is None
    counters = pool_stats.pool_counters(db, "web")
    assert (counters.leases, counters.shares, counters.overflows) == (3, 1, 1)
    assert (counters.peak_concurrent, counters.peak_at) == (3, iso(at(12)))
    assert counters.since == iso(at(0))
    assert store.lease_history(db, N1, at(0), at(12))[1].shared

    pool_stats.reset_pool_counters(db, "web", now=at(20))
    assert pool_stats.pool_counters(db, "web") == pool_stats.PoolCounters(
        "web", since=iso(at(20)), updated_at=iso(at(20))
    )
    assert pool_stats.pool_counters(db, "unknown") == pool_stats.PoolCounters("unknown")


def test_record_assignment_for_an_unknown_visitor_stores_nothing(db) -> None:
    view = store.pool_view(db, POOL, [N1], T0)
    got = assign(view, "ghost", T0)
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        store.record_assignment(db, view, got, visitor_id="ghost", visit_id=None, now=T0)
    assert db.execute("SELECT count(*) FROM leases").fetchone()[0] == 0
    assert pool_stats.pool_counters(db, "web").leases == 0
