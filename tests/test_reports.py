"""Report rules (core.reports): periods in the business's zone, local buckets, metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ctm_pbx.core.reports import (
    Bucket,
    Dimension,
    QualifiedCall,
    ReportError,
    Totals,
    change,
    heat_map,
    metrics,
    parse_period,
    time_buckets,
)

CHICAGO = ZoneInfo("America/Chicago")
KOLKATA = ZoneInfo("Asia/Kolkata")
# Thursday 3 December 2026, 15:30 in Chicago (21:30 UTC)
NOW = datetime(2026, 12, 3, 21, 30, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("since", "until", "start", "end", "prev_start", "prev_end"),
    [
        # today and the 6 days before it, from Chicago's midnight (UTC-6)
        ("7d", None, utc(2026, 11, 27, 6), NOW, utc(2026, 11, 20, 6), utc(2026, 11, 27, 6)),
        ("24h", None, utc(2026, 12, 2, 21, 30), NOW, utc(2026, 12, 1, 21, 30),
         utc(2026, 12, 2, 21, 30)),
        ("2w", None, utc(2026, 11, 20, 6), NOW, utc(2026, 11, 6, 6), utc(2026, 11, 20, 6)),
        ("today", None, utc(2026, 12, 3, 6), NOW, utc(2026, 12, 2, 6), utc(2026, 12, 2, 21, 30)),
        ("yesterday", None, utc(2026, 12, 2, 6), utc(2026, 12, 3, 6), utc(2026, 12, 1, 6),
         utc(2026, 12, 2, 6)),
        # this month so far (2 days 15.5 h): the same part of November
        ("this-month", None, utc(2026, 12, 1, 6), NOW, utc(2026, 11, 1, 5),
         utc(2026, 11, 1, 5) + (NOW - utc(2026, 12, 1, 6))),
        # November: CDT until the 1st at 2:00, so it starts at 05:00 UTC
        ("last-month", None, utc(2026, 11, 1, 5), utc(2026, 12, 1, 6), utc(2026, 10, 1, 5),
         utc(2026, 11, 1, 5)),
        ("this-week", None, utc(2026, 11, 30, 6), NOW, utc(2026, 11, 23, 6),
         utc(2026, 11, 23, 6) + (NOW - utc(2026, 11, 30, 6))),
        ("last-year", None, utc(2025, 1, 1, 6), utc(2026, 1, 1, 6), utc(2024, 1, 1, 6),
         utc(2025, 1, 1, 6)),
        # dates are local days, the end day included
        ("2026-11-01", "2026-11-30", utc(2026, 11, 1, 5), utc(2026, 12, 1, 6),
         utc(2026, 10, 2, 4), utc(2026, 11, 1, 5)),
        ("2026-12-01T08:00", None, utc(2026, 12, 1, 14), NOW, utc(2026, 11, 29, 6, 30),
         utc(2026, 12, 1, 14)),
        ("2026-12-01T08:00Z", None, utc(2026, 12, 1, 8), NOW, utc(2026, 11, 28, 18, 30),
         utc(2026, 12, 1, 8)),
    ],
)  # fmt: skip
def test_periods_are_local_to_the_business(since, until, start, end, prev_start, prev_end):
    period = parse_period(since, until, now=NOW, tz=CHICAGO)
    assert (period.start, period.end) == (start, end)
    assert (period.previous_start, period.previous_end) == (prev_start, prev_end)
    assert (period.previous().start, period.previous().end) == (prev_start, prev_end)


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("next-week", None, "is not a date"),
        ("2026-13-01", None, "is not a date"),
        ("0d", None, "at least 1"),
        ("2026-12-05", None, "is empty"),
        ("2026-12-01", "2026-11-01", "is empty"),
    ],
)
def test_bad_periods_say_what_is_wrong(since, until, message):
    with pytest.raises(ReportError, match=message):
        parse_period(since, until, now=NOW, tz=CHICAGO)


def test_default_period_is_thirty_days():
    period = parse_period(None, None, now=NOW, tz=CHICAGO)
    assert period.start == utc(2026, 11, 4, 6) and period.label == "last 30d"


def _lengths(buckets: list[Bucket]) -> dict[str, float]:
    return {b.label: (b.end - b.start).total_seconds() / 3600 for b in buckets}


def test_days_follow_daylight_saving_time():
    """Chicago's 1 November 2026 has 25 hours, 8 March 2026 has 23."""
    fall = parse_period("2026-10-31", "2026-11-02", now=NOW, tz=CHICAGO)
    assert _lengths(time_buckets(fall, Dimension.DAY, CHICAGO)) == {
        "2026-10-31": 24, "2026-11-01": 25, "2026-11-02": 24,
    }  # fmt: skip
    spring = parse_period("2026-03-08", "2026-03-08", now=NOW, tz=CHICAGO)
    (day,) = time_buckets(spring, Dimension.DAY, CHICAGO)
    assert (day.start, day.end) == (utc(2026, 3, 8, 6), utc(2026, 3, 9, 5))


def test_weeks_start_on_monday_and_months_on_the_first_clipped_to_the_period():
    period = parse_period("2026-11-25", "2026-12-03", now=NOW, tz=CHICAGO)
    weeks = time_buckets(period, Dimension.WEEK, CHICAGO)
    assert [b.label for b in weeks] == ["week of 2026-11-23", "week of 2026-11-30"]
    assert weeks[0].start == utc(2026, 11, 25, 6)  # clipped to the period's start
    assert weeks[1].end == NOW  # and to its end (now)
    months = time_buckets(period, Dimension.MONTH, CHICAGO)
    assert [(b.label, b.start, b.end) for b in months] == [
        ("2026-11", utc(2026, 11, 25, 6), utc(2026, 12, 1, 6)),
        ("2026-12", utc(2026, 12, 1, 6), NOW),
    ]


def test_hour_buckets_are_local_hours_even_in_half_hour_zones():
    period = parse_period("2026-12-01", "2026-12-01", now=NOW, tz=KOLKATA)
    hours = time_buckets(period, Dimension.HOUR, KOLKATA)
    assert len(hours) == 24 and hours[0].label == "Tue 00"
    assert hours[0].start == utc(2026, 11, 30, 18, 30) and hours[9].label == "Tue 09"
    assert hours[9].start == utc(2026, 12, 1, 3, 30)


def test_the_hour_that_repeats_when_dst_ends_counts_as_that_hour():
    period = parse_period("2026-11-01", "2026-11-01", now=NOW, tz=CHICAGO)
    hours = time_buckets(period, Dimension.HOUR, CHICAGO)
    labels = [b.label for b in hours]
    assert labels == [f"Sun {h:02d}" for h in range(24)]
    assert _lengths(hours)["Sun 01"] == 2  # 01:00 CDT and 01:00 CST
    assert sum(_lengths(hours).values()) == 25


def test_heat_map_puts_calls_in_weekday_and_hour_cells():
    grid = heat_map({"Mon 09": Totals(calls=3), "Sun 23": Totals(calls=1)})
    assert grid[0][9] == 3 and grid[6][23] == 1 and sum(map(sum, grid)) == 4


def test_metrics_derive_from_totals():
    t = Totals(calls=10, unique_callers=8, first_time=6, answered=7, missed=2, voicemails=1,
               qualified=5, ring_count=10, ring_total=50.0, talk_total=700.0, queue_count=4,
               queue_total=20.0, scored=8, confidence_total=6.4, confident=6)  # fmt: skip
    m = metrics(t)
    assert m["answer_rate"] == 0.7 and m["avg_ring_seconds"] == 5.0
    assert m["avg_talk_seconds"] == 100.0 and m["avg_queue_wait_seconds"] == 5.0
    assert m["avg_confidence"] == pytest.approx(0.8) and m["confident_share"] == 0.75
    empty = metrics(Totals())
    assert empty["answer_rate"] is None and empty["avg_talk_seconds"] is None


@pytest.mark.parametrize(
    ("current", "previous", "expected"),
    [(112, 100, 0.12), (50, 100, -0.5), (5, 0, None), (None, 3, None), (0, 4, -1.0)],
)
def test_change_against_the_previous_period(current, previous, expected):
    assert change(current, previous) == (pytest.approx(expected) if expected else expected)


@pytest.mark.parametrize(
    ("outcome", "talk", "qualified"),
    [("answered", 30, True), ("answered", 29.9, False), ("voicemail", 90, False),
     ("answered", None, False)],
)  # fmt: skip
def test_a_qualified_call_is_answered_and_long_enough(outcome, talk, qualified):
    assert QualifiedCall(min_talk_seconds=30)(outcome, talk) is qualified
