"""Business hours, table-driven: local day and time in the schedule's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest

from ctm_pbx.core.schedules import Interval, Schedule, is_open, parse_days, parse_intervals

NINE_TO_FIVE = (Interval(time(9), time(17)),)
NIGHT_SHIFT = (Interval(time(22), time(6)),)
OFFICE = Schedule(
    "office",
    "America/Chicago",
    (NINE_TO_FIVE,) * 5 + ((Interval(time(10), time(14)),), ()),
    holidays=(date(2026, 12, 25),),
)
NIGHTS = Schedule("nights", "America/Chicago", (NIGHT_SHIFT,) * 5 + ((), ()))
CHICAGO_WINTER = timezone(timedelta(hours=-6))
CHICAGO_SUMMER = timezone(timedelta(hours=-5))


def local(y, mo, d, h, mi=0, tz=CHICAGO_WINTER) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=tz).astimezone(UTC)


@pytest.mark.parametrize(
    ("schedule", "when", "expected"),
    [
        (OFFICE, local(2026, 11, 30, 9, 0), True),  # Monday, opening minute
        (OFFICE, local(2026, 11, 30, 8, 59), False),
        (OFFICE, local(2026, 11, 30, 16, 59), True),
        (OFFICE, local(2026, 11, 30, 17, 0), False),  # closing time is closed
        (OFFICE, local(2026, 12, 5, 11), True),  # Saturday short hours
        (OFFICE, local(2026, 12, 5, 15), False),
        (OFFICE, local(2026, 12, 6, 11), False),  # Sunday closed
        (OFFICE, local(2026, 12, 25, 11), False),  # a holiday (a Friday)
        (OFFICE, local(2026, 7, 6, 9, 30, CHICAGO_SUMMER), True),  # daylight saving time
        (OFFICE, local(2026, 7, 6, 8, 30, CHICAGO_SUMMER), False),
        (NIGHTS, local(2026, 11, 30, 23), True),  # Monday night
        (NIGHTS, local(2026, 12, 1, 5, 59), True),  # Tuesday early: Monday's shift
        (NIGHTS, local(2026, 12, 1, 6), False),
        (NIGHTS, local(2026, 11, 30, 3), False),  # Monday early: Sunday had no shift
        (NIGHTS, local(2026, 12, 5, 2), True),  # Saturday early: Friday's shift
    ],
)
def test_is_open(schedule, when, expected) -> None:
    assert is_open(schedule, when) is expected


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon-fri", [0, 1, 2, 3, 4]),
        ("sat", [5]),
        ("mon,wed, fri", [0, 2, 4]),
        ("fri-mon", [4, 5, 6, 0]),
        ("daily", [0, 1, 2, 3, 4, 5, 6]),
    ],
)
def test_parse_days(text, days) -> None:
    assert parse_days(text) == days


@pytest.mark.parametrize("bad", ["monday", "mon-fry", "", "x-y"])
def test_parse_days_refuses(bad) -> None:
    with pytest.raises(ValueError, match="unknown day"):
        parse_days(bad)


def test_parse_intervals() -> None:
    assert parse_intervals("09:00-12:00, 13:00-17:30") == [
        Interval(time(9), time(12)),
        Interval(time(13), time(17, 30)),
    ]
    assert parse_intervals("closed") == []
    assert parse_intervals("00:00-24:00") == [Interval(time(0), time(0))]  # all day
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        parse_intervals("9 to 5")
    with pytest.raises(ValueError, match="a time like"):
        parse_intervals("9am-5pm")
