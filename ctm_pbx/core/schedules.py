"""Business hours: is a schedule open at a given moment?

Pure: the moment is passed in (UTC or aware); the schedule's own time zone
decides the local day and time (``zoneinfo``, daylight saving included).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Interval:
    """Open from ``start`` to ``end``; an ``end`` at or before ``start`` runs past midnight."""

    start: time
    end: time

    @property
    def overnight(self) -> bool:
        return self.end <= self.start


@dataclass(frozen=True)
class Schedule:
    name: str
    time_zone: str  # IANA name, e.g. America/Chicago
    week: tuple[tuple[Interval, ...], ...]  # seven entries, Monday first
    holidays: tuple[date, ...] = ()  # closed all day (local dates)
    label: str = ""


def is_open(schedule: Schedule, now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(schedule.time_zone))
    today, t = local.date(), local.time().replace(tzinfo=None)
    yesterday = today - timedelta(days=1)
    if today not in schedule.holidays:
        for iv in schedule.week[today.weekday()]:
            if iv.start <= t and (iv.overnight or t < iv.end):
                return True
    if yesterday not in schedule.holidays:
        for iv in schedule.week[yesterday.weekday()]:
            if iv.overnight and t < iv.end:  # the tail of last night's shift
                return True
    return False


def parse_days(text: str) -> list[int]:
    """``mon-fri``, ``sat``, ``mon,wed,fri``, ``daily`` -> weekday numbers (Monday 0)."""
    text = text.strip().lower()
    if text in ("daily", "every day", "all"):
        return list(range(7))
    days: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"unknown day '{part.strip()}' (use mon..sun, ranges like mon-fri)")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days += [d % 7 for d in range(a, b + 1 if b >= a else b + 8)]
    return days


def parse_intervals(text: str) -> list[Interval]:
    """``09:00-17:00``, ``09:00-12:00, 13:00-17:00``, ``22:00-06:00``, ``closed``."""
    text = text.strip().lower()
    if text == "closed":
        return []
    out = []
    for part in text.split(","):
        start, sep, end = part.strip().partition("-")
        if not sep:
            raise ValueError(f"expected HH:MM-HH:MM, got '{part.strip()}'")
        out.append(Interval(_time(start), _time(end)))
    return out


def _time(text: str) -> time:
    text = text.strip()
    if text == "24:00":
        return time(0, 0)
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"expected a time like 09:30, got '{text}'") from None
