"""Reports: which advertising brings calls, as (dimension, metrics, filters, period, zone).

The rules of a report live here, pure: what a period such as ``7d`` or ``this-month``
means in the business's time zone, which local day/week/month/hour a call falls in
(as UTC bounds, so daylight-saving days are 23 or 25 hours long), what each metric is
made of and what a qualified call is. The store sums a group's calls into ``Totals``;
``metrics`` derives the rates and averages from them, so every report, the CLI and
the dashboard agree on one definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum


class ReportError(ValueError):
    """A report request that cannot be answered (a bad period, dimension or filter)."""


class Dimension(StrEnum):
    """What a report groups calls by."""

    SOURCE = "source"
    CAMPAIGN = "campaign"  # utm_campaign
    KEYWORD = "keyword"  # utm_term
    CONTENT = "content"  # utm_content (the ad)
    MEDIUM = "medium"  # utm_medium
    LANDING_PAGE = "landing-page"  # path of the landing URL
    REFERRER = "referrer"  # host of the referrer
    NUMBER = "number"  # tracking number dialled
    POOL = "pool"
    ROUTE = "route"
    AGENT = "agent"  # the receiving number that answered
    REGION = "region"  # caller's state/province
    AREA_CODE = "area-code"
    DAY = "day"
    WEEK = "week"  # weeks start on Monday
    MONTH = "month"
    HOUR = "hour"  # hour of day x day of week (a heat map)

    @property
    def is_time(self) -> bool:
        return self in (Dimension.DAY, Dimension.WEEK, Dimension.MONTH, Dimension.HOUR)


# the call-log column each non-time dimension reads (landing page and referrer: the path
# and the host of that URL, as the store's adapters/store/url_parts.py reads them, in SQL:
# the summary's triggers need the rule where any writer of a call runs it)
DIMENSION_COLUMNS: dict[Dimension, str] = {
    Dimension.SOURCE: "source",
    Dimension.CAMPAIGN: "utm_campaign",
    Dimension.KEYWORD: "utm_term",
    Dimension.CONTENT: "utm_content",
    Dimension.MEDIUM: "utm_medium",
    Dimension.LANDING_PAGE: "landing_url",
    Dimension.REFERRER: "referrer",
    Dimension.NUMBER: "tracking_number",
    Dimension.POOL: "pool",
    Dimension.ROUTE: "route",
    Dimension.AGENT: "answered_by",
    Dimension.REGION: "caller_region",
    Dimension.AREA_CODE: "caller_area_code",
}

MISSED_OUTCOMES = ("no_answer", "busy", "abandoned")
CONFIDENT = 0.9  # attribution confidence counted as "confident"


@dataclass(frozen=True)
class QualifiedCall:
    """What counts as a qualified call (a lead; the conversion sent to ad platforms)."""

    min_talk_seconds: float = 30.0
    outcomes: tuple[str, ...] = ("answered",)

    def __call__(self, outcome: str | None, talk_seconds: float | None) -> bool:
        return outcome in self.outcomes and (talk_seconds or 0) >= self.min_talk_seconds


@dataclass(frozen=True)
class Filters:
    """Which calls a report (or the call log) counts; None means any."""

    source: str | None = None
    pool: str | None = None
    number: str | None = None  # E.164
    route: str | None = None
    outcome: str | None = None
    first_time: bool | None = None  # True: first-time callers only; False: repeat only
    caller: str | None = None  # a caller number (E.164) or digits it contains
    tag: str | None = None


# -- periods ---------------------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d{1,4})([hdw])$")
_NAMED = ("today", "yesterday", "this-week", "last-week", "this-month", "last-month",
          "this-year", "last-year")  # fmt: skip


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC, with how it was asked for (its label) and its previous period."""

    start: datetime
    end: datetime
    label: str
    previous_start: datetime
    previous_end: datetime

    def previous(self) -> Period:
        span = self.previous_end - self.previous_start
        return Period(
            self.previous_start,
            self.previous_end,
            f"previous {self.label}",
            self.previous_start - span,
            self.previous_start,
        )


def _midnight(day: date, tz: tzinfo) -> datetime:
    """Local midnight of ``day`` as a UTC instant (exact across DST changes)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _month_start(day: date, months_back: int = 0) -> date:
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def _unit_range(word: str, today: date) -> tuple[date, date]:
    """Local [first day, day after last) of a named calendar period."""
    if word in ("today", "yesterday"):
        day = today - timedelta(days=0 if word == "today" else 1)
        return day, day + timedelta(days=1)
    if word.endswith("week"):
        monday = today - timedelta(days=today.weekday())
        if word == "last-week":
            monday -= timedelta(days=7)
        return monday, monday + timedelta(days=7)
    if word.endswith("month"):
        first = _month_start(today, 1 if word == "last-month" else 0)
        return first, _month_start(first, -1)
    year = today.year - (1 if word == "last-year" else 0)
    return date(year, 1, 1), date(year + 1, 1, 1)


def _instant(text: str, tz: tzinfo, *, end: bool) -> datetime:
    """A date (local midnight; as an end, the next midnight) or an ISO date-time."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return _midnight(day + timedelta(days=1) if end else day, tz)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReportError(
            f"'{text}' is not a date (2026-11-30), a date-time (2026-11-30T14:00), "
            f"a span (24h, 7d, 4w) or one of {', '.join(_NAMED)}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def parse_period(
    since: str | None, until: str | None, *, now: datetime, tz: tzinfo, default: str = "30d"
) -> Period:
    """The period ``since``..``until`` in zone ``tz``; ``now`` is an aware datetime.

    ``since`` is a date, a date-time, a span ending now (``24h``; ``7d`` is today and
    the 6 days before it, from local midnight; ``4w`` likewise) or a calendar period
    (``today``, ``last-month``…). ``until`` is a date (inclusive) or a date-time.
    The previous period is the same span right before; for a calendar period that is
    not over, the same part of the previous one (this month so far: last month's first
    days, as many as this month has had).
    """
    now = now.astimezone(UTC)
    today = now.astimezone(tz).date()
    given = (since or default).strip()
    text = given.lower()
    rel = _RELATIVE.match(text)
    if rel:
        count, unit = int(rel[1]), rel[2]
        if count < 1:
            raise ReportError(f"'{text}': the span must be at least 1")
        if unit == "h":
            start = now - timedelta(hours=count)
            prev = (start - timedelta(hours=count), start)
        else:
            days = count * (7 if unit == "w" else 1)
            first = today - timedelta(days=days - 1)
            start = _midnight(first, tz)
            prev = (_midnight(first - timedelta(days=days), tz), start)
        label = f"last {count}{unit}"
        end = now
    elif text in _NAMED:
        first, after = _unit_range(text, today)
        start, end = _midnight(first, tz), min(_midnight(after, tz), now)
        # the previous unit: the one that holds the day before ``first``
        same = "today" if text in ("today", "yesterday") else "this-" + text.split("-")[1]
        prev_first, prev_after = _unit_range(same, first - timedelta(days=1))
        prev_start = _midnight(prev_first, tz)
        prev_end = _midnight(prev_after, tz)
        if end < _midnight(after, tz):  # not over yet: the same part of the previous one
            prev_end = min(prev_end, prev_start + (end - start))
        prev = (prev_start, prev_end)
        label = text
    else:
        start = _instant(given, tz, end=False)
        end = min(_instant(until.strip(), tz, end=True), now) if until else now
        prev = (start - (end - start), start)
        label = f"{since} .. {until or 'now'}"
    if until and (rel or text in _NAMED):
        end = min(_instant(until.strip(), tz, end=True), now)
        label = f"{label} until {until}"
    if end <= start:
        raise ReportError(f"the period {label} is empty (it ends before it starts)")
    return Period(start, end, label, prev[0], prev[1])


# -- time buckets ----------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    """One local day/week/month/hour: its label and UTC bounds [start, end)."""

    label: str
    start: datetime
    end: datetime


def time_buckets(period: Period, grain: Dimension, tz: tzinfo) -> list[Bucket]:
    """The local calendar buckets that cover ``period``, clipped to it.

    Bounds are local midnights (or hours) converted to UTC one by one, so a bucket
    is as long as that local day really was. ``HOUR`` buckets are labelled
    ``"<weekday> <hour>"`` (``"Mon 09"``) for the hour-by-weekday heat map.
    """
    if not grain.is_time:
        raise ReportError(f"{grain} is not a time dimension")
    local_first = period.start.astimezone(tz)
    buckets: list[Bucket] = []
    if grain is Dimension.HOUR:
        # walk UTC hours (and the quarter hours of zones with odd offsets) by local hour
        cursor = local_first.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        hour = timedelta(hours=1)
        local = cursor.astimezone(tz)
        while cursor < period.end:
            nxt_utc = cursor + hour
            after = nxt_utc.astimezone(tz)
            if after.minute or after.second or after.hour == local.hour:  # the offset changed:
                # by part of an hour, or the hour repeats (DST ends): exact, from local time
                nxt = local.replace(minute=0, second=0, microsecond=0) + hour
                nxt_utc = datetime.combine(nxt.date(), time(nxt.hour), tzinfo=tz).astimezone(UTC)
                if nxt_utc <= cursor:  # a local hour that repeats (DST ends)
                    nxt_utc = cursor + hour
                after = nxt_utc.astimezone(tz)
            label = f"{WEEKDAYS[local.weekday()]} {local.hour:02d}"
            buckets.append(Bucket(label, max(cursor, period.start), min(nxt_utc, period.end)))
            cursor, local = nxt_utc, after
        return buckets
    day = local_first.date()
    if grain is Dimension.WEEK:
        day -= timedelta(days=day.weekday())
    elif grain is Dimension.MONTH:
        day = day.replace(day=1)
    while True:
        start = _midnight(day, tz)
        if start >= period.end:
            break
        if grain is Dimension.DAY:
            next_day, label = day + timedelta(days=1), day.isoformat()
        elif grain is Dimension.WEEK:
            next_day, label = day + timedelta(days=7), f"week of {day.isoformat()}"
        else:
            next_day, label = _month_start(day, -1), day.strftime("%Y-%m")
        end = _midnight(next_day, tz)
        if end > period.start:
            buckets.append(Bucket(label, max(start, period.start), min(end, period.end)))
        day = next_day
    return buckets


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def heat_map(rows: dict[str, Totals]) -> list[list[int]]:
    """Calls per [weekday][hour] (Monday first) from ``HOUR`` buckets' totals."""
    grid = [[0] * 24 for _ in WEEKDAYS]
    for label, totals in rows.items():
        name, hour = label.split()
        grid[WEEKDAYS.index(name)][int(hour)] += totals.calls
    return grid


# -- metrics ---------------------------------------------------------------------------


@dataclass
class Totals:
    """What the store sums for a group of calls; every metric derives from these."""

    calls: int = 0
    unique_callers: int | None = 0  # None: not counted (no sum gives it: see the store)
    first_time: int = 0
    answered: int = 0
    missed: int = 0
    voicemails: int = 0
    qualified: int = 0
    ring_count: int = 0  # calls with a ring time
    ring_total: float = 0.0
    talk_total: float = 0.0  # over answered calls
    queue_count: int = 0  # calls that waited in a queue
    queue_total: float = 0.0
    scored: int = 0  # calls with an attribution confidence
    confidence_total: float = 0.0
    confident: int = 0  # of which >= CONFIDENT

    def add(self, other: Totals) -> None:
        """Sum ``other`` into this (unique callers add up only across disjoint groups)."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            setattr(self, f.name, None if mine is None or theirs is None else mine + theirs)


METRICS = (
    "calls", "unique_callers", "first_time", "answered", "missed", "answer_rate",
    "voicemails", "qualified", "avg_ring_seconds", "total_ring_seconds",
    "avg_talk_seconds", "total_talk_seconds", "avg_queue_wait_seconds",
    "total_queue_wait_seconds", "avg_confidence", "confident_share",
)  # fmt: skip


def _ratio(part: float, whole: float) -> float | None:
    return None if not whole else part / whole


def metrics(t: Totals) -> dict[str, float | int | None]:
    """Every metric of a group (None where it has no value, e.g. no answered call)."""
    return {
        "calls": t.calls,
        "unique_callers": t.unique_callers,
        "first_time": t.first_time,
        "answered": t.answered,
        "missed": t.missed,
        "answer_rate": _ratio(t.answered, t.calls),
        "voicemails": t.voicemails,
        "qualified": t.qualified,
        "avg_ring_seconds": _ratio(t.ring_total, t.ring_count),
        "total_ring_seconds": t.ring_total,
        "avg_talk_seconds": _ratio(t.talk_total, t.answered),
        "total_talk_seconds": t.talk_total,
        "avg_queue_wait_seconds": _ratio(t.queue_total, t.queue_count),
        "total_queue_wait_seconds": t.queue_total,
        "avg_confidence": _ratio(t.confidence_total, t.scored),
        "confident_share": _ratio(t.confident, t.scored),
    }


def change(current: float | None, previous: float | None) -> float | None:
    """Relative change against the previous period (0.12 = +12 %); None if unknown."""
    if current is None or previous is None or previous == 0:
        return None
    return (current - previous) / previous


@dataclass(frozen=True)
class ReportRow:
    key: str | None  # the dimension's value (None: not known, e.g. a direct visit)
    metrics: dict[str, float | int | None]
    previous: dict[str, float | int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    dimension: Dimension
    period: Period
    time_zone: str
    rows: list[ReportRow]
    total: ReportRow


def build_report(
    dimension: Dimension,
    period: Period,
    time_zone: str,
    groups: dict[str | None, Totals],
    total: Totals,
    previous_groups: dict[str | None, Totals] | None = None,
    previous_total: Totals | None = None,
    order: list[str] | None = None,
) -> Report:
    """Rows out of the store's totals: time buckets in time order (``order``), other
    dimensions by calls, most first (ties by name)."""
    prev = previous_groups or {}
    if order is not None:
        keys: list[str | None] = [k for k in order if k in groups]
    else:
        keys = sorted(groups, key=lambda k: (-groups[k].calls, k is None, k or ""))
    rows = [ReportRow(k, metrics(groups[k]), metrics(prev[k]) if k in prev else {}) for k in keys]
    total_row = ReportRow(
        None, metrics(total), metrics(previous_total) if previous_total is not None else {}
    )
    return Report(dimension, period, time_zone, rows, total_row)
