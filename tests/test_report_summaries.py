"""Report summaries (adapters/store/summaries.py): the same figures as the raw calls.

A seeded call log, changed after the fact in every way the daemon and people change it
(completion, late attribution, a repeat-caller link, tags, a moved or deleted call),
then every report (every dimension, zones whole, 30 and 45 minutes off UTC, DST days,
periods ending now or at odd minutes, every filter) is run from the summary and from
``calls`` alone and must be equal, metric by metric; and the summary the triggers kept
must be the one a rebuild from ``calls`` gives.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctm_pbx.adapters.call_attribution import attribute_call
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import migrate, open_db, summaries
from ctm_pbx.adapters.store.call_search import annotate_call
from ctm_pbx.adapters.store.demo import seed_demo
from ctm_pbx.adapters.store.reports import group_totals, period_totals, run_report
from ctm_pbx.adapters.store.schema import migrations
from ctm_pbx.core.call.actions import FinishCall, Outcome, StartCall
from ctm_pbx.core.demo import demo_calls
from ctm_pbx.core.reports import Dimension, Filters, QualifiedCall, parse_period
from ctm_pbx.edges.cli import main
from tests.helpers import BASE, config

NOW = datetime(2026, 12, 3, 21, 37, 12, 345000, tzinfo=UTC)
ZONES = ("America/Chicago", "Asia/Kolkata", "Asia/Kathmandu", "UTC", "Australia/Eucla")
QUALIFIED = QualifiedCall()
CFG = config(
    """
reports: {time_zone: America/Chicago}
"""
)


# every column a report reads, each changed alone in the seeded log
CHANGED_ALONE = (
    "caller_number", "outcome", "ring_seconds", "talk_seconds", "queue_wait_seconds",
    "attribution_confidence", "source", "utm_campaign", "utm_term", "utm_content",
    "utm_medium", "pool", "route", "answered_by", "caller_region", "caller_area_code",
    "landing_url", "referrer",
)  # fmt: skip
URLS = (None, "", "https://www.example.com/", "https://example.com/pricing?gclid=1",
        "https://WWW.Google.com/search?q=x", "http://[bad", "/contact#form", "x")  # fmt: skip


def _snapshot(db) -> set[tuple]:
    """The summary's rows that hold calls (rows emptied by updates stay at zero)."""
    return set(db.execute("SELECT * FROM call_summary WHERE calls != 0").fetchall())


def _assert_kept(db) -> None:
    kept = _snapshot(db)
    summaries.rebuild(db)
    assert _snapshot(db) == kept


def _assert_same_reports(db, zones=ZONES, periods=("30d", "365d")) -> None:
    for name in zones:
        tz = ZoneInfo(name)
        for since in periods:
            period = parse_period(since, None, now=NOW, tz=tz)
            for dim in Dimension:
                fast = run_report(db, dim, period, tz, Filters(), QUALIFIED)
                slow = run_report(db, dim, period, tz, Filters(), QUALIFIED, summary=False)
                assert fast == slow, (name, since, dim)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """~3,000 demo calls over 13 months, then changed after the fact."""
    db = open_db(tmp_path_factory.mktemp("summaries") / "ctm.db")
    migrate(db)
    seed_demo(db, demo_calls(CFG, now=NOW, days=396, calls=3000, seed=11))
    rng = random.Random(5)
    ids = [r[0] for r in db.execute("SELECT id FROM calls ORDER BY id")]
    with db.conn:
        for call_id in rng.sample(ids, 400):  # referrers (the demo has none), other landings
            db.execute("UPDATE calls SET referrer = ?, landing_url = coalesce(?, landing_url)"
                       " WHERE id = ?", [rng.choice(URLS), rng.choice(URLS), call_id])  # fmt: skip
        for call_id in rng.sample(ids, 300):  # late attribution: another source, campaign
            db.execute(
                "UPDATE calls SET source = ?, utm_campaign = ?, attribution_confidence = ?,"
                " pool = ? WHERE id = ?",
                [rng.choice(["google-ads", "billboard", None]), rng.choice(["x", None]),
                 rng.choice([0.31, 0.9, None]), rng.choice(["gads", None]), call_id],
            )  # fmt: skip
        for column in CHANGED_ALONE:
            for call_id in rng.sample(ids, 15):
                value = rng.choice([None, 0.5, 42.0]) if column.endswith(
                    ("seconds", "confidence")) else rng.choice([None, "x"])  # fmt: skip
                if column == "outcome":
                    value = rng.choice([None, "busy", "answered"])
                if column in ("landing_url", "referrer"):
                    value = rng.choice(URLS)
                db.execute(f"UPDATE calls SET {column} = ? WHERE id = ?", [value, call_id])
        for call_id in rng.sample(ids, 200):  # tags and comments change no metric
            annotate_call(db, call_id, ["lead"], "called back")
        for call_id in rng.sample(ids, 100):  # a call back in progress, then finished
            db.execute(
                "UPDATE calls SET status = 'in_progress', outcome = NULL, talk_seconds = NULL"
                " WHERE id = ?",
                [call_id],
            )
        for call_id in rng.sample(ids, 50):
            db.execute(
                "UPDATE calls SET status = 'completed', outcome = 'answered', talk_seconds = ?,"
                " queue_wait_seconds = ? WHERE id = ?",
                [rng.choice([29.9995, 30.0, 1234.5678]), 7.25, call_id],
            )
        for call_id in rng.sample(ids, 30):  # moved by a correction, another UTC hour
            db.execute(
                "UPDATE calls SET started_at = strftime('%Y-%m-%dT%H:%M:%fZ', started_at,"
                " '+45 minutes') WHERE id = ?",
                [call_id],
            )
        for call_id in rng.sample(ids, 20):
            db.execute("UPDATE calls SET previous_call_id = NULL WHERE id = ?", [call_id])
        for call_id in rng.sample(ids, 25):
            db.execute("DELETE FROM calls WHERE id = ?", [call_id])
    yield db
    db.conn.close()


def test_the_triggers_keep_what_a_rebuild_gives(seeded):
    _assert_kept(seeded)


def test_every_report_is_the_same_from_the_summary_and_from_calls(seeded):
    _assert_same_reports(seeded)


@pytest.mark.parametrize("zone", ["America/Chicago", "Asia/Kathmandu"])
@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("2026-03-07", "2026-03-09"),  # spring forward in Chicago: a 23-hour day
        ("2026-10-31", "2026-11-02"),  # fall back: 25 hours
        ("this-month", None),
        ("last-week", None),
        ("24h", None),  # starts at an odd minute
        ("2026-06-01T09:07", "2026-06-20T17:53:30"),
        ("this-year", None),
    ],
)
def test_periods_that_start_or_end_inside_a_bucket(seeded, zone, since, until):
    tz = ZoneInfo(zone)
    period = parse_period(since, until, now=NOW, tz=tz)
    for dim in Dimension:
        fast = run_report(seeded, dim, period, tz, Filters(), QUALIFIED)
        assert fast == run_report(seeded, dim, period, tz, Filters(), QUALIFIED, summary=False)


@pytest.mark.parametrize(
    "filters",
    [
        Filters(source="google-ads"),
        Filters(source="no-such-source"),
        Filters(pool="gads"),
        Filters(number="+13125550155"),
        Filters(route="sales"),
        Filters(outcome="answered"),
        Filters(first_time=True),
        Filters(caller="312555"),
        Filters(tag="lead"),
        Filters(source="google-ads", route="sales"),
    ],
)
def test_filters_give_the_same_figures(seeded, filters):
    tz = ZoneInfo("America/Chicago")
    period = parse_period("365d", None, now=NOW, tz=tz)
    for dim in (Dimension.SOURCE, Dimension.CAMPAIGN, Dimension.DAY, Dimension.HOUR):
        fast = run_report(seeded, dim, period, tz, filters, QUALIFIED)
        assert fast == run_report(seeded, dim, period, tz, filters, QUALIFIED, summary=False)


def test_the_tag_filter_counts_only_tagged_calls(seeded):
    tagged = seeded.execute("SELECT COUNT(*) FROM calls WHERE tags LIKE '%,lead,%'").fetchone()[0]
    start, end = NOW - timedelta(days=800), NOW
    assert period_totals(seeded, start, end, Filters(tag="lead"), QUALIFIED).calls == tagged > 0


def test_a_replaced_row_leaves_the_summary(tmp_path):
    """INSERT OR REPLACE deletes the old row: its contribution goes with it."""
    db = open_db(tmp_path / "ctm.db")
    migrate(db)
    seed_demo(db, demo_calls(CFG, now=NOW, days=5, calls=20, seed=2))
    with db.conn:
        db.execute(
            "INSERT OR REPLACE INTO calls (id, status, started_at, tracking_number, outcome)"
            " VALUES (3, 'completed', '2026-12-01T10:00:00.000Z', '+13125550100', 'busy')"
        )
    _assert_kept(db)


def test_another_qualified_rule_is_counted_from_calls_until_synced(tmp_path):
    db = open_db(tmp_path / "ctm.db")
    migrate(db)
    seed_demo(db, demo_calls(CFG, now=NOW, days=30, calls=200, seed=3))
    start, end = NOW - timedelta(days=31), NOW
    strict = QualifiedCall(min_talk_seconds=120)
    assert not summaries.usable(db, strict)  # the summary counted >= 30 s: raw
    raw = period_totals(db, start, end, Filters(), strict)
    assert raw == period_totals(db, start, end, Filters(), strict, summary=False)
    with db.conn:
        assert summaries.sync_rule(db, 120) is True
        assert summaries.sync_rule(db, 120) is False  # nothing to do the second time
    assert summaries.usable(db, strict) and not summaries.usable(db, QUALIFIED)
    assert period_totals(db, start, end, Filters(), strict) == raw
    assert raw.qualified < period_totals(db, start, end, Filters(), QUALIFIED).qualified
    _assert_kept(db)


def test_the_call_flow_and_late_attribution_keep_the_summary(tmp_path):
    """Through the store's own writes: a call's row, its end, its attribution (which
    links the repeat caller: no longer first-time), a person's tags."""
    db = open_db(tmp_path / "ctm.db")
    migrate(db)
    cfg = config()
    source = next(iter(cfg.sources))
    for n, at in enumerate((NOW - timedelta(hours=3), NOW - timedelta(minutes=20))):
        start = StartCall(
            started_at=at.isoformat().replace("+00:00", "Z"),
            tracking_number="+13125550100",
            caller_number="+13125559999",
            caller_name=None,
            source=source,
            pool=None,
            route=None,
        )
        call_id = call_store.insert_call(db, start, channel_id=f"ch-{n}", linkedid=None)
        _assert_kept(db)
        call_store.finish_call(
            db,
            call_id,
            FinishCall(
                ended_at=(at + timedelta(seconds=95)).isoformat(),
                answered_at=None,
                outcome=Outcome.ANSWERED,
                hangup_cause=16,
                ring_seconds=4.2,
                talk_seconds=90.123,
                answered_by="desk-1",
                answered_number=None,
                failsafe=False,
                path=(),
                notes="",
            ),
        )
        attribute_call(db, cfg, call_id, start, at)
        annotate_call(db, call_id, ["booked"], "")
        _assert_kept(db)
    total = period_totals(db, NOW - timedelta(days=1), NOW, Filters(), QUALIFIED)
    assert (total.calls, total.first_time, total.answered, total.qualified) == (2, 1, 2, 2)
    assert total.talk_total == 180.246 and total.unique_callers == 1
    by_agent = group_totals(db, Dimension.AGENT, NOW - timedelta(days=2), NOW, Filters(),
                            QUALIFIED)  # fmt: skip
    assert by_agent["desk-1"].calls == 2


def test_reads_of_an_older_schema_count_from_calls(tmp_path):
    """A reader facing a database without the summary (not migrated yet) still answers."""
    db = open_db(tmp_path / "ctm.db")
    migrate(db)
    seed_demo(db, demo_calls(CFG, now=NOW, days=10, calls=50, seed=1))
    for name in summaries.TRIGGERS:
        db.execute(f"DROP TRIGGER {name}")
    db.execute("DROP TABLE call_summary_rule")
    assert not summaries.usable(db, QUALIFIED)
    assert period_totals(db, NOW - timedelta(days=11), NOW, Filters(), QUALIFIED).calls == 50


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _assert_covers(part: summaries.Split, start: datetime, end: datetime, grains) -> None:
    """Each instant counts once in [start, end) and not outside, by the parts' signs; the
    summary's parts are whole buckets of ``grains``, counted at most once (the open calls
    are read over them)."""
    for g, lo, hi, _sign in part.summary:
        assert g in grains and summaries._floor(lo, g) == lo and summaries._floor(hi, g) == hi
    cuts = {start, end}
    cuts |= {t for _g, lo, hi, _s in part.summary for t in (lo, hi)}
    cuts |= {t for lo, hi, _s in part.raw for t in (lo, hi)}
    ordered = sorted(cuts)
    for lo, hi in zip(ordered, ordered[1:], strict=False):
        s = sum(sign for _g, a, b, sign in part.summary if a <= lo and hi <= b)
        r = sum(sign for a, b, sign in part.raw if a <= lo and hi <= b)
        assert s in (0, 1) and s + r == (1 if start <= lo and hi <= end else 0), (lo, hi)


def test_split_covers_the_range_exactly():
    start, end = _at("2026-01-30T05:30:00"), _at("2026-03-02T01:07:00")
    part = summaries.split(start, end, ("h", "d", "m"))
    assert part.summary == [  # Jan 30 less its first 5 h 30: not 18 h 30 of hours and raw
        ("h", _at("2026-01-30T00:00"), _at("2026-01-30T05:00"), -1),
        ("d", _at("2026-01-30T00:00"), _at("2026-02-01T00:00"), 1),
        ("m", _at("2026-02-01T00:00"), _at("2026-03-01T00:00"), 1),
        ("d", _at("2026-03-01T00:00"), _at("2026-03-02T00:00"), 1),
        ("h", _at("2026-03-02T00:00"), _at("2026-03-02T01:00"), 1),
    ]
    assert part.raw == [
        (_at("2026-01-30T05:00"), _at("2026-01-30T05:30"), -1),
        (_at("2026-03-02T01:00"), _at("2026-03-02T01:07"), 1),
    ]
    _assert_covers(part, start, end, ("h", "d", "m"))
    # 30 days from a Chicago midnight: November less 3 days and 6 hours, not 26 days
    start, end = _at("2026-11-04T06:00"), _at("2026-12-04T03:10")
    part = summaries.split(start, end, ("d", "m"))
    assert part.summary == [
        ("d", _at("2026-11-01T00:00"), _at("2026-11-04T00:00"), -1),
        ("m", _at("2026-11-01T00:00"), _at("2026-12-01T00:00"), 1),
        ("d", _at("2026-12-01T00:00"), _at("2026-12-04T00:00"), 1),
    ]
    assert part.raw == [
        (_at("2026-11-04T00:00"), _at("2026-11-04T06:00"), -1),
        (_at("2026-12-04T00:00"), _at("2026-12-04T03:10"), 1),
    ]
    _assert_covers(part, start, end, ("d", "m"))
    quarter = summaries.split(_at("2026-01-01T18:15:00"), _at("2026-01-01T20:45:00"), ("h", "q"))
    assert quarter.raw == [] and [g for g, _, _, _ in quarter.summary] == ["q", "h", "q"]
    assert summaries.bucket_key(_at("2026-01-01T18:59:59.999"), "q") == "2026-01-01T18:45"
    disjoint = summaries.split(start, end, ("d", "m"), complement=False)
    assert all(sign == 1 for *_p, sign in disjoint.summary + disjoint.raw)
    _assert_covers(disjoint, start, end, ("d", "m"))


def test_a_value_only_in_the_part_taken_off_is_not_a_row(tmp_path):
    """A month read whole less its days before the period: a campaign whose calls are all
    in those days sums to nothing and is no row; one in the period is, once; a call in
    progress inside the month is counted once, in its place."""
    db = open_db(tmp_path / "ctm.db")
    migrate(db)
    for at, campaign, status in (
        ("2026-11-02T15:00:00.000Z", "before", "completed"),  # in November, before the 4th
        ("2026-11-04T03:00:00.000Z", "before", "completed"),  # the 4th, before 06:00 UTC
        ("2026-11-04T07:00:00.000Z", "inside", "completed"),
        ("2026-11-20T12:00:00.000Z", "inside", "in_progress"),
        ("2026-11-03T12:00:00.000Z", "open-before", "in_progress"),
    ):
        db["calls"].insert({"status": status, "started_at": at, "outcome": "answered",
                            "tracking_number": "+13125550100", "utm_campaign": campaign,
                            "talk_seconds": 40})  # fmt: skip
    tz = ZoneInfo("America/Chicago")
    period = parse_period("2026-11-04", "2026-12-02", now=NOW, tz=tz)
    assert any(sign < 0 for *_p, sign in summaries.split(period.start, period.end,
                                                        ("d", "m")).summary)  # fmt: skip
    fast = run_report(db, Dimension.CAMPAIGN, period, tz, Filters(), QUALIFIED)
    assert fast == run_report(db, Dimension.CAMPAIGN, period, tz, Filters(), QUALIFIED,
                              summary=False)  # fmt: skip
    assert {r.key: r.metrics["calls"] for r in fast.rows} == {"inside": 2}


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(datetime(2025, 1, 1), datetime(2027, 1, 1)),
    st.timedeltas(timedelta(seconds=1), timedelta(days=500)),
    st.sampled_from([("h", "q"), ("h",), ("h", "d", "m"), ("d", "m"), ("d",)]),
    st.booleans(),
)
def test_any_range_is_covered_exactly(start, length, grains, complement):
    start = start.replace(tzinfo=UTC)
    part = summaries.split(start, start + length, grains, complement=complement)
    _assert_covers(part, start, start + length, grains)


CALL = st.fixed_dictionaries(
    {
        "minute": st.integers(0, 60 * 24 * 40),
        "source": st.sampled_from([None, "google-ads", "billboard", ""]),
        "outcome": st.sampled_from(
            [None, "answered", "no_answer", "busy", "voicemail", "abandoned", "failed"]
        ),  # fmt: skip
        "talk": st.one_of(st.none(), st.floats(0, 5000, allow_nan=False)),
        "ring": st.one_of(st.none(), st.floats(0, 90, allow_nan=False)),
        "conf": st.one_of(st.none(), st.floats(0, 1, allow_nan=False)),
        "caller": st.sampled_from([None, "+13125550001", "+13125550002"]),
        "first": st.booleans(),
        "landing": st.sampled_from(URLS),
        "referrer": st.sampled_from(URLS),
    }
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(calls=st.lists(CALL, max_size=25), changes=st.lists(st.tuples(st.integers(0, 30), CALL),
                                                           max_size=10))  # fmt: skip
def test_any_calls_and_changes_give_the_same_figures(tmp_path_factory, calls, changes):
    db = open_db(tmp_path_factory.mktemp("prop") / "ctm.db")
    migrate(db)
    base = NOW - timedelta(days=40)

    def row(c: dict) -> dict:
        return {
            "started_at": (base + timedelta(minutes=c["minute"], seconds=7)).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "tracking_number": "+13125550100", "source": c["source"], "outcome": c["outcome"],
            "talk_seconds": c["talk"], "ring_seconds": c["ring"],
            "attribution_confidence": c["conf"], "caller_number": c["caller"],
            "previous_call_id": None if c["first"] else 1,
            "landing_url": c["landing"], "referrer": c["referrer"],
        }  # fmt: skip

    for c in calls:
        db["calls"].insert(row(c))
    for index, c in changes:
        if index < len(calls):
            db["calls"].update(index + 1, row(c))
    _assert_kept(db)
    _assert_same_reports(db, zones=("Asia/Kathmandu", "America/Chicago"), periods=("30d",))
    db.conn.close()


def test_db_migrate_counts_the_configured_qualified_calls(tmp_path):
    """``db migrate`` (and ``run``) sync the summary's rule with the config's."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "database: {path: ctm.db}\nreports: {qualified_min_talk_seconds: 45}\n" + BASE,
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["--config", str(path), "db", "migrate"])
    assert result.exit_code == 0, result.output
    assert "report summaries rebuilt: qualified calls now talk >= 45 s" in result.output
    db = open_db(tmp_path / "ctm.db")
    assert summaries.rule(db) == 45 and summaries.usable(db, QualifiedCall(min_talk_seconds=45))
    again = CliRunner().invoke(main, ["--config", str(path), "db", "migrate"])
    assert "report summaries rebuilt" not in again.output


def test_landing_pages_and_referrers_are_summed_by_path_and_host(tmp_path):
    """The URL dimensions' rows (m019) hold the path and the host, by value."""
    db = open_db(tmp_path / "ctm.db")
    migrate(db)
    day = "2026-12-01T15:00:00.000Z"
    for landing, referrer, talk in (
        ("https://www.example.com/pricing?gclid=1", "https://www.google.com/search?q=a", 40),
        ("https://example.com/pricing#plans", "https://google.com/", 10),
        ("https://example.com/", None, 0),
        (None, "https://m.facebook.com/x", 5),
    ):
        db["calls"].insert({"status": "completed", "started_at": day, "outcome": "answered",
                            "tracking_number": "+13125550100", "landing_url": landing,
                            "referrer": referrer, "talk_seconds": talk})  # fmt: skip
    rows = db.execute(
        "SELECT grain, bucket, dim, value, calls, qualified, talk_ms FROM call_summary"
        " WHERE dim IN ('landing_path', 'referrer_host') ORDER BY dim, grain, value"
    ).fetchall()
    assert rows == [
        ("d", "2026-12-01", "landing_path", "", 1, 0, 5000),
        ("d", "2026-12-01", "landing_path", "=/", 1, 0, 0),
        ("d", "2026-12-01", "landing_path", "=/pricing", 2, 1, 50000),
        ("d", "2026-12-01", "referrer_host", "", 1, 0, 0),
        ("d", "2026-12-01", "referrer_host", "=google.com", 2, 1, 50000),
        ("d", "2026-12-01", "referrer_host", "=m.facebook.com", 1, 0, 5000),
    ]
    with db.conn:  # a late referrer: the call moves from no host to its host
        db.execute("UPDATE calls SET referrer = 'https://Bing.com/x' WHERE landing_url ="
                   " 'https://example.com/'")  # fmt: skip
    day = dict(db.execute("SELECT value, calls FROM call_summary WHERE grain = 'd'"
                          " AND dim = 'referrer_host'").fetchall())  # fmt: skip
    assert day == {"": 0, "=bing.com": 1, "=google.com": 2, "=m.facebook.com": 1}
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC)
    by_page = group_totals(db, Dimension.LANDING_PAGE, start, end, Filters(), QUALIFIED)
    assert {k: (t.calls, t.qualified) for k, t in by_page.items()} == {
        None: (1, 0), "/": (1, 0), "/pricing": (2, 1)}  # fmt: skip
    _assert_kept(db)


def test_m019_adds_the_url_dimensions_to_a_summary_kept_without_them(tmp_path):
    """A database whose summary m017's triggers kept (no URL dimension): until m019 the
    URL reports count from calls; m019 fills their rows and keeps them from then on."""
    db = open_db(tmp_path / "ctm.db")
    migrations.apply(db, stop_before="m019_url_summaries")
    summaries.create_triggers(db, without=summaries.URL_DIMS)  # as m017 made them
    with db.conn:
        db.execute("DELETE FROM call_summary WHERE dim IN ('landing_path', 'referrer_host')")
    seed_demo(db, demo_calls(CFG, now=NOW, days=60, calls=300, seed=4))
    assert db.execute("SELECT COUNT(*) FROM call_summary WHERE dim = 'landing_path'"
                      ).fetchone()[0] == 0  # fmt: skip
    assert not summaries.kept(db, "landing_path") and summaries.kept(db, "source")
    tz = ZoneInfo("America/Chicago")
    period = parse_period("365d", None, now=NOW, tz=tz)
    before = run_report(db, Dimension.LANDING_PAGE, period, tz, Filters(), QUALIFIED)
    assert before == run_report(db, Dimension.LANDING_PAGE, period, tz, Filters(), QUALIFIED,
                                summary=False)  # fmt: skip
    assert sum(r.metrics["calls"] for r in before.rows) == 300
    assert migrate(db)[0] == "m019_url_summaries"  # and any later ones
    assert summaries.kept(db, "landing_path") and summaries.kept(db, "referrer_host")
    paths = db.execute("SELECT COUNT(*) FROM call_summary WHERE dim = 'landing_path'"
                       " AND grain = 'd' AND value != ''").fetchone()[0]  # fmt: skip
    assert paths > 0
    seed_demo(db, demo_calls(CFG, now=NOW, days=10, calls=50, seed=5))
    _assert_kept(db)
    after = run_report(db, Dimension.LANDING_PAGE, period, tz, Filters(), QUALIFIED)
    assert after == run_report(db, Dimension.LANDING_PAGE, period, tz, Filters(), QUALIFIED,
                               summary=False)  # fmt: skip
    assert sum(r.metrics["calls"] for r in after.rows) == 350
