"""Report queries against a seeded call log: every metric by value, every dimension."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from ctm_pbx.adapters.store import migrate, open_db, url_parts
from ctm_pbx.adapters.store.reports import run_report
from ctm_pbx.core.reports import (
    Dimension,
    Filters,
    QualifiedCall,
    Totals,
    heat_map,
    parse_period,
)

CHICAGO = ZoneInfo("America/Chicago")
NOW = datetime(2026, 12, 3, 21, 30, tzinfo=UTC)
QUALIFIED = QualifiedCall(min_talk_seconds=30)

# (started_at UTC, fields); Chicago is UTC-6 in December
CALLS = [
    ("2026-12-01T15:00:00.000Z", dict(
        source="google-ads", utm_campaign="winter", utm_term="plumber", utm_medium="cpc",
        utm_content="ad-1", caller_number="+13125550001", outcome="answered", ring_seconds=5,
        talk_seconds=120, answered_by="desk-1", attribution_confidence=0.95,
        landing_url="https://ex.com/pricing?gclid=1", referrer="https://www.google.com/search",
        route="sales", tracking_number="+13125550150", pool="gads", caller_region="IL",
        caller_area_code="312")),
    ("2026-12-01T16:00:00.000Z", dict(
        source="google-ads", utm_campaign="winter", utm_term="drain", utm_medium="cpc",
        caller_number="+13125550002", outcome="no_answer", ring_seconds=20,
        attribution_confidence=0.5, landing_url="https://ex.com/", route="sales",
        tracking_number="+13125550151", pool="gads", caller_region="IL", caller_area_code="312")),
    # 23:30 on 1 December in Chicago, already the 2nd in UTC
    ("2026-12-02T05:30:00.000Z", dict(
        source="billboard", caller_number="+13125550001", previous_call_id=1,
        outcome="answered", ring_seconds=3, talk_seconds=20, answered_by="desk-2",
        attribution_confidence=1.0, queue_wait_seconds=4, route="support",
        tracking_number="+13125550111", caller_region="IL", caller_area_code="312")),
    ("2026-12-02T06:30:00.000Z", dict(
        source="billboard", outcome="busy", ring_seconds=2, route="support",
        tracking_number="+13125550111")),
    ("2026-12-02T18:00:00.000Z", dict(
        source="facebook", caller_number="+14155550003", outcome="voicemail", ring_seconds=15,
        attribution_confidence=0.92, route="sales", tracking_number="+13125550160",
        caller_region="CA", caller_area_code="415", referrer="https://m.facebook.com/")),
    # the previous seven days
    ("2026-11-25T15:00:00.000Z", dict(
        source="google-ads", caller_number="+13125550009", outcome="answered", talk_seconds=40,
        ring_seconds=4, route="sales", tracking_number="+13125550150")),
]  # fmt: skip


@pytest.fixture
def db(tmp_path):
    database = open_db(tmp_path / "ctm.db")
    migrate(database)
    for started, fields in CALLS:
        row = {"status": "completed", "started_at": started, **fields}
        row.setdefault("tracking_number", "+13125550100")
        database["calls"].insert(row)
    yield database
    database.conn.close()


def report(db, dimension, since="2026-12-01", until="2026-12-02", filters=None, **kw):
    filters = filters or Filters()
    period = parse_period(since, until, now=NOW, tz=CHICAGO)
    return run_report(db, dimension, period, CHICAGO, filters, QUALIFIED, **kw)


def test_every_metric_of_the_total(db):
    total = report(db, Dimension.SOURCE).total.metrics
    assert total == {
        "calls": 5, "unique_callers": 3, "first_time": 3, "answered": 2, "missed": 2,
        "answer_rate": 0.4, "voicemails": 1, "qualified": 1, "avg_ring_seconds": 9.0,
        "total_ring_seconds": 45.0, "avg_talk_seconds": 70.0, "total_talk_seconds": 140.0,
        "avg_queue_wait_seconds": 4.0, "total_queue_wait_seconds": 4.0,
        "avg_confidence": pytest.approx(3.37 / 4), "confident_share": 0.75,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("dimension", "expected"),
    [
        (Dimension.SOURCE, {"billboard": 2, "google-ads": 2, "facebook": 1}),
        (Dimension.CAMPAIGN, {"winter": 2, None: 3}),
        (Dimension.KEYWORD, {None: 3, "drain": 1, "plumber": 1}),
        (Dimension.CONTENT, {None: 4, "ad-1": 1}),
        (Dimension.MEDIUM, {"cpc": 2, None: 3}),
        (Dimension.LANDING_PAGE, {None: 3, "/": 1, "/pricing": 1}),
        (Dimension.REFERRER, {None: 3, "google.com": 1, "m.facebook.com": 1}),
        (Dimension.NUMBER, {"+13125550111": 2, "+13125550150": 1, "+13125550151": 1,
                            "+13125550160": 1}),
        (Dimension.POOL, {None: 3, "gads": 2}),
        (Dimension.ROUTE, {"sales": 3, "support": 2}),
        (Dimension.AGENT, {None: 3, "desk-1": 1, "desk-2": 1}),
        (Dimension.REGION, {"IL": 3, "CA": 1, None: 1}),
        (Dimension.AREA_CODE, {"312": 3, "415": 1, None: 1}),
        # local days: the call at 05:30 UTC on the 2nd was on the 1st in Chicago
        (Dimension.DAY, {"2026-12-01": 3, "2026-12-02": 2}),
        (Dimension.WEEK, {"week of 2026-11-30": 5}),
        (Dimension.MONTH, {"2026-12": 5}),
    ],
)  # fmt: skip
def test_every_dimension(db, dimension, expected):
    rows = report(db, dimension).rows
    got = {row.key: row.metrics["calls"] for row in rows}
    assert got == expected
    if not dimension.is_time:  # most calls first
        counts = [row.metrics["calls"] for row in rows]
        assert counts == sorted(counts, reverse=True)


def test_hour_by_weekday_heat_map_is_in_local_time(db):
    rep = report(db, Dimension.HOUR)
    grid = heat_map({row.key: Totals(calls=row.metrics["calls"]) for row in rep.rows})
    # Tue 09:00, Tue 10:00, Tue 23:30, Wed 00:30, Wed 12:00 in Chicago
    assert grid[1][9] == grid[1][10] == grid[1][23] == grid[2][0] == grid[2][12] == 1
    assert sum(map(sum, grid)) == 5


def test_comparison_with_the_previous_period(db):
    rep = report(db, Dimension.SOURCE, since="7d", until=None)
    assert rep.total.metrics["calls"] == 5 and rep.total.previous["calls"] == 1
    by_source = {row.key: row for row in rep.rows}
    assert by_source["google-ads"].previous["calls"] == 1
    assert by_source["billboard"].previous == {}  # no calls before


@pytest.mark.parametrize(
    ("filters", "calls"),
    [
        (Filters(source="google-ads"), 2),
        (Filters(pool="gads"), 2),
        (Filters(number="+13125550111"), 2),
        (Filters(route="support"), 2),
        (Filters(outcome="voicemail"), 1),
        (Filters(first_time=True), 3),
        (Filters(first_time=False), 2),
        (Filters(caller="5550001"), 2),
        (Filters(caller="%"), 0),  # LIKE wildcards are plain characters
    ],
)
def test_filters(db, filters, calls):
    assert report(db, Dimension.SOURCE, filters=filters).total.metrics["calls"] == calls


def test_qualified_calls_follow_the_configured_talk_time(db):
    period = parse_period("2026-12-01", "2026-12-02", now=NOW, tz=CHICAGO)
    strict = run_report(db, Dimension.SOURCE, period, CHICAGO, Filters(),
                        QualifiedCall(min_talk_seconds=200))  # fmt: skip
    lenient = run_report(db, Dimension.SOURCE, period, CHICAGO, Filters(),
                         QualifiedCall(min_talk_seconds=10))  # fmt: skip
    assert strict.total.metrics["qualified"] == 0 and lenient.total.metrics["qualified"] == 2


def test_days_on_the_dst_change_count_their_25_hours(tmp_path):
    database = open_db(tmp_path / "dst.db")
    migrate(database)
    # 1 November 2026 in Chicago runs from 05:00 UTC to 06:00 UTC on the 2nd
    for started in ("2026-11-01T05:00:00.000Z", "2026-11-02T05:59:59.999Z",
                    "2026-11-02T06:00:00.000Z", "2026-11-01T04:59:59.999Z"):  # fmt: skip
        database["calls"].insert(
            {"status": "completed", "started_at": started, "tracking_number": "+1312555"}
        )
    period = parse_period("2026-10-31", "2026-11-02", now=NOW, tz=CHICAGO)
    rep = run_report(database, Dimension.DAY, period, CHICAGO, Filters(), QUALIFIED)
    assert {r.key: r.metrics["calls"] for r in rep.rows} == {
        "2026-10-31": 1, "2026-11-01": 2, "2026-11-02": 1,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("url", "path", "host"),
    [
        ("https://www.example.com/pricing?gclid=x#top", "/pricing", "example.com"),
        ("https://example.com", "/", "example.com"),
        ("HTTPS://WWW.Shop.Example:8443/a/b?c#d", "/a/b", "shop.example"),
        ("https://user@ex.com/", "/", "user@ex.com"),
        ("https://ex.com?next=/a", "/", "ex.com"),
        ("https://ex.com#/a", "/", "ex.com"),
        ("http://x.com/a@b", "/a@b", "x.com"),
        ("http://x.com:/", "/", "x.com"),
        ("//cdn.example.com/p?q", "/p", "cdn.example.com"),
        ("/pricing?utm_source=x", "/pricing", None),
        ("/a//b", "/a//b", None),
        ("example.com/x", "example.com/x", None),
        ("mailto:someone@example.com", "mailto:someone@example.com", None),
        ("a/b://c", "a/b://c", None),
        ("1a://c/d", "1a://c/d", None),
        ("https://www./", "/", None),
        ("?only=query", "/", None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_landing_paths_and_referrer_hosts(url, path, host):
    """The URL dimensions' rule (adapters/store/url_parts.py), as SQLite runs it."""
    conn = sqlite3.connect(":memory:")
    sql = f"SELECT {url_parts.path_sql('x')}, {url_parts.host_sql('x')} FROM (SELECT ? AS x)"
    assert conn.execute(sql, [url]).fetchone() == (path, host)


def test_the_url_rule_reads_urls_as_urlsplit_does():
    """For URL-like text the SQL reads what ``urllib.parse.urlsplit`` reads, but where
    the rule says otherwise (a scheme without ``//``, user info, text it refuses)."""
    conn = sqlite3.connect(":memory:")
    sql = f"SELECT {url_parts.path_sql('x')}, {url_parts.host_sql('x')} FROM (SELECT ? AS x)"
    rng = random.Random(7)
    compared = 0
    for _ in range(5000):
        text = "".join(rng.choice("ab:/?#@.w1-W") for _ in range(rng.randint(1, 14)))
        try:
            parts = urlsplit(text)
        except ValueError:
            continue
        if (parts.scheme and not parts.netloc) or "@" in parts.netloc:
            continue
        want = (parts.path or "/", (parts.hostname or "").removeprefix("www.") or None)
        assert conn.execute(sql, [text]).fetchone() == want, text
        compared += 1
    assert compared > 3000
