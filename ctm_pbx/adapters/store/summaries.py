"""Report summaries: the call log's sums per UTC month, day, hour and quarter hour.

``call_summary`` holds, per (grain, bucket, dimension, value), the sums every report
metric derives from (``core.reports.Totals`` but unique callers, which no sum gives)
over the completed calls; calls in progress (a few: ``idx_calls_open``) are read from
``calls``, so a call costs the summary one set of upserts, as it completes, rather than
one per write of its row while it lasts (its start, attribution, menu, queue).
SQLite triggers on ``calls`` keep it: whatever writes a call (the call flow, late
attribution, the call spool, ``demo seed``, a person with sqlite3), the same
statement's transaction takes the call's old contribution out and puts the new one
in, so the summary cannot drift from ``calls`` (ctm-pbx's connections also fire them for
the rows an ``INSERT OR REPLACE`` deletes: sqlite-utils sets ``PRAGMA recursive_triggers``;
by hand, with sqlite3, set it too before a REPLACE into calls, or run ``rebuild``). ``rebuild``
recomputes it from ``calls`` (migration m017 does, and ``sync_rule`` when the
qualified-call rule changes).

Seconds are summed as integer milliseconds and confidence as integer millionths, in
the summary and in the raw queries alike (``contributions``): integer sums do not
depend on the order of addition, so a report gives exactly the same figures from
either, and adding then removing a call leaves no rounding residue.

Reading: a UTC range is split into the whole buckets of the grains a dimension is
kept at (``GRAINS``) and raw edges (``split``), which the caller sums from ``calls``:
a bound inside a bucket (a period ending now, a report by campaign starting at a
local midnight that is not a UTC one) costs a raw scan of the part next to it, or of
the part outside (with the sign turned) when the range covers most of that bucket.
The total keeps quarter hours, so local days and hours of zones 30 or 45 minutes off
UTC come from the summary too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import sqlite_utils

from ctm_pbx.adapters.store import url_parts
from ctm_pbx.core.reports import (
    CONFIDENT,
    DIMENSION_COLUMNS,
    MISSED_OUTCOMES,
    Dimension,
    QualifiedCall,
)

log = logging.getLogger(__name__)

# grains: a UTC month, day, hour or quarter of an hour, largest first; a bucket is
# named by its start as ``started_at`` text: 2026-11 | 2026-11-28 | 2026-11-28T14 |
# 2026-11-28T14:45
ORDER = ("m", "d", "h", "q")
PREFIX = {"h": 13, "d": 10, "m": 7}
TOTAL = ""  # the dimension of every call (totals and time buckets)
# dimension key -> (calls column, grains it is summed at). The total keeps hours and
# quarters (time buckets of any zone: some are 30 or 45 minutes off UTC), the source
# hours, days and months (time buckets filtered by source: the overview's timeline);
# dimensions of many values (numbers, campaigns, keywords, ads) days and months, those
# of a few days (a year of them is a few thousand rows). A report by them reads raw
# calls only at its edges (at most half a day each side). Landing page and referrer (m019)
# are the path and host of a URL column (``DERIVED``), by day only: each row is an upsert
# as a call completes, and each of theirs a URL read by SQL string functions, while a
# year of a site's pages by day is still a few thousand rows.
GRAINS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    TOTAL: (None, ("h", "q")),
    "source": ("source", ("h", "d", "m")),
    **{c: (c, ("d", "m")) for c in ("tracking_number", "utm_campaign", "utm_term", "utm_content")},
    **{
        c: (c, ("d",))
        for c in ("utm_medium", "pool", "route", "answered_by", "caller_region", "caller_area_code")
    },
    "landing_path": ("landing_url", ("d",)),
    "referrer_host": ("referrer", ("d",)),
}
# dimensions whose value derives from their column: key -> the value's SQL of the column
DERIVED = {"landing_path": url_parts.path_sql, "referrer_host": url_parts.host_sql}
URL_DIMS = tuple(DERIVED)  # what m019 added
_DIMENSION_KEYS = {Dimension.LANDING_PAGE: "landing_path", Dimension.REFERRER: "referrer_host"}
# filters a summary can answer: the filter's field -> its dimension key
FILTER_DIMS = {"source": "source", "pool": "pool", "number": "tracking_number", "route": "route"}
SUMS = (
    "calls", "first_time", "answered", "missed", "voicemails", "qualified", "ring_count",
    "ring_ms", "talk_ms", "queue_count", "queue_ms", "scored", "confidence_micro",
    "confident",
)  # fmt: skip
TRIGGERS = ("call_summary_insert", "call_summary_complete", "call_summary_update",
            "call_summary_delete")  # fmt: skip
# the columns whose change changes a call's contribution
WATCHED = sorted(
    {"status", "started_at", "caller_number", "previous_call_id", "outcome", "ring_seconds",
     "talk_seconds", "queue_wait_seconds", "attribution_confidence"}
    | {column for column, _ in GRAINS.values() if column}
)  # fmt: skip


def _ms(expr: str, scale: int = 1000) -> str:
    return f"coalesce(CAST(round({expr} * {scale}) AS INTEGER), 0)"


def contributions(row: str, qualified_sql: str) -> list[str]:
    """One call's contribution to each of ``SUMS``, as SQL over ``row`` (``c``, ``NEW``,
    ``OLD``); ``qualified_sql`` is the qualified-call condition. The raw queries sum
    the same expressions."""
    missed = ", ".join(f"'{o}'" for o in MISSED_OUTCOMES)
    return [
        "1",
        f"({row}.caller_number IS NOT NULL AND {row}.previous_call_id IS NULL)",
        f"({row}.outcome IS 'answered')",
        f"coalesce({row}.outcome IN ({missed}), 0)",
        f"({row}.outcome IS 'voicemail')",
        f"coalesce({qualified_sql}, 0)",
        f"({row}.ring_seconds IS NOT NULL)",
        _ms(f"{row}.ring_seconds"),
        f"CASE WHEN {row}.outcome IS 'answered' THEN {_ms(row + '.talk_seconds')} ELSE 0 END",
        f"({row}.queue_wait_seconds IS NOT NULL)",
        _ms(f"{row}.queue_wait_seconds"),
        f"({row}.attribution_confidence IS NOT NULL)",
        _ms(f"{row}.attribution_confidence", 1_000_000),
        f"coalesce({row}.attribution_confidence >= {CONFIDENT}, 0)",
    ]


def qualified_sql(row: str, outcomes: int = 1) -> str:
    """The qualified-call condition with ``outcomes`` placeholders and one for the
    minimum talk time (see ``core.reports.QualifiedCall``)."""
    marks = ", ".join("?" for _ in range(outcomes))
    return f"({row}.outcome IN ({marks}) AND coalesce({row}.talk_seconds, 0) >= ?)"


def value_sql(dim: str, row: str) -> str:
    """The value of the summary's dimension ``dim`` for ``row``, as SQL (not the total)."""
    column = GRAINS[dim][0]
    derive = DERIVED.get(dim)
    return derive(f"{row}.{column}") if derive else f"{row}.{column}"


def value_key(dim: str, row: str) -> str:
    """A dimension's value as the summary's key: NULL is '', a value '=' + value."""
    if GRAINS[dim][0] is None:
        return "''"
    return f"coalesce('=' || {value_sql(dim, row)}, '')"


def decode(key: str) -> str | None:
    return None if key == "" else key[1:]


def bucket_sql(grain: str, row: str) -> str:
    """The name of the ``grain`` bucket ``row`` started in, as SQL."""
    at = f"{row}.started_at"
    if grain != "q":
        return f"substr({at}, 1, {PREFIX[grain]})"
    minute = f"substr({at}, 15, 2)"
    return (
        f"substr({at}, 1, 14) || CASE WHEN {minute} < '15' THEN '00'"
        f" WHEN {minute} < '30' THEN '15' WHEN {minute} < '45' THEN '30' ELSE '45' END"
    )


def bucket_key(t: datetime, grain: str) -> str:
    """The name of the ``grain`` bucket that starts at ``t``, as ``iso(t)`` begins."""
    if t.tzinfo is not UTC:
        t = t.astimezone(UTC)
    if grain == "m":
        return f"{t.year:04d}-{t.month:02d}"
    day = f"{t.year:04d}-{t.month:02d}-{t.day:02d}"
    if grain == "d":
        return day
    if grain == "h":
        return f"{day}T{t.hour:02d}"
    return f"{day}T{t.hour:02d}:{t.minute // 15 * 15:02d}"


# -- the table and its triggers (migration m017) ---------------------------------------

_RULE = "(SELECT min_talk_seconds FROM call_summary_rule)"


def _combos(without: tuple[str, ...] = ()) -> list[tuple[str, str, str | None]]:
    return [
        (g, dim, column)
        for dim, (column, grains) in GRAINS.items()
        if dim not in without
        for g in grains
    ]


def _upsert(keys: str, values: list[str]) -> str:
    """Add ``values`` (``SUMS``' order) to the summary rows ``keys`` selects."""
    return (
        f"INSERT INTO call_summary (grain, bucket, dim, value, {', '.join(SUMS)})"
        f" SELECT k.*, {', '.join(values)} FROM ({keys}) AS k WHERE true"
        " ON CONFLICT (grain, dim, bucket, value) DO UPDATE SET "
        + ", ".join(f"{s} = {s} + excluded.{s}" for s in SUMS)
        + ";"
    )


def _sums_of(row: str) -> list[str]:
    """``row``'s contribution to the summary: its sums once it is completed, else 0."""
    cond = f"({row}.outcome IS 'answered' AND coalesce({row}.talk_seconds, 0) >= {_RULE})"
    return [f"({e}) * ({row}.status IS 'completed')" for e in contributions(row, cond)]


def _keys(row: str, without: tuple[str, ...] = ()) -> str:
    """The summary rows ``row`` counts in (one per grain and dimension)."""
    return " UNION ALL ".join(
        f"SELECT '{g}', {bucket_sql(g, row)}, '{dim}', {value_key(dim, row)}"
        for g, dim, _column in _combos(without)
    )


def _same_sql(g: str, column: str | None) -> str:
    """The call stays in the same row of (grain, dimension) through the update."""
    same = f"{bucket_sql(g, 'OLD')} = {bucket_sql(g, 'NEW')}"
    return same if column is None else f"{same} AND OLD.{column} IS NEW.{column}"


def _update_sql(without: tuple[str, ...] = ()) -> str:
    """An update's change: one upsert of the difference where the call stays in its row
    (the usual case: completion, attribution), else out of the old row, into the new."""
    stays = " UNION ALL ".join(
        f"SELECT '{g}', {bucket_sql(g, 'NEW')}, '{dim}', {value_key(dim, 'NEW')}"
        f" WHERE {_same_sql(g, column)}"
        for g, dim, column in _combos(without)
    )
    moved_old = " UNION ALL ".join(
        f"SELECT '{g}', {bucket_sql(g, 'OLD')}, '{dim}', {value_key(dim, 'OLD')}"
        f" WHERE OLD.status = 'completed' AND NOT ({_same_sql(g, column)})"
        for g, dim, column in _combos(without)
    )
    moved_new = " UNION ALL ".join(
        f"SELECT '{g}', {bucket_sql(g, 'NEW')}, '{dim}', {value_key(dim, 'NEW')}"
        f" WHERE NEW.status = 'completed' AND NOT ({_same_sql(g, column)})"
        for g, dim, column in _combos(without)
    )
    delta = [
        f"({new}) - ({old})" for new, old in zip(_sums_of("NEW"), _sums_of("OLD"), strict=True)
    ]
    return (
        _upsert(stays, delta)
        + " "
        + _upsert(moved_old, [f"-({v})" for v in _sums_of("OLD")])
        + " "
        + _upsert(moved_new, _sums_of("NEW"))
    )


def install(db: sqlite_utils.Database, min_talk_seconds: float = 30.0) -> None:
    """Create the summary, its triggers and its rule, and fill it from ``calls``."""
    sums = ",\n".join(f"            {s} INTEGER NOT NULL DEFAULT 0" for s in SUMS)
    db.execute(
        f"""
        CREATE TABLE call_summary (
            grain   TEXT NOT NULL,   -- m | d | h | q: a UTC month, day, hour, quarter hour
            bucket  TEXT NOT NULL,   -- its start as started_at text: 2026-11-28T14
            dim     TEXT NOT NULL,   -- the calls column ('': every call)
            value   TEXT NOT NULL,   -- '' NULL, else '=' and the value
{sums},
            PRIMARY KEY (grain, dim, bucket, value)
        ) WITHOUT ROWID
        """
    )
    # one value's hours (a timeline filtered by source); days and months are few enough to
    # scan by bucket
    db.execute(
        "CREATE INDEX idx_call_summary_value ON call_summary (dim, value, bucket) WHERE grain = 'h'"
    )
    db.execute(
        "CREATE TABLE call_summary_rule (id INTEGER PRIMARY KEY CHECK (id = 1),"
        " min_talk_seconds REAL NOT NULL)"
    )
    db.execute("INSERT INTO call_summary_rule (id, min_talk_seconds) VALUES (1, ?)",
               [min_talk_seconds])  # fmt: skip
    create_triggers(db)
    rebuild(db)


def create_triggers(db: sqlite_utils.Database, without: tuple[str, ...] = ()) -> None:
    """(Re)create the triggers that keep the summary, for every dimension of ``GRAINS``
    (m019: those of m017 knew no URL dimension). ``without``: not for those dimensions
    (m017's triggers, the yardstick of a test and of bench/reports.py)."""
    for name in TRIGGERS:
        db.execute(f"DROP TRIGGER IF EXISTS {name}")
    watched = ", ".join(WATCHED)
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in WATCHED)
    done = "{row}.status = 'completed'"
    db.execute(
        f"CREATE TRIGGER call_summary_insert AFTER INSERT ON calls WHEN {done.format(row='NEW')}"
        " BEGIN"
        f" {_upsert(_keys('NEW', without), _sums_of('NEW'))} END"
    )
    # a call completing (the usual update): it was in no row yet, it goes into its rows
    db.execute(
        "CREATE TRIGGER call_summary_complete AFTER UPDATE OF status ON calls"
        f" WHEN OLD.status IS NOT 'completed' AND {done.format(row='NEW')}"
        f" BEGIN {_upsert(_keys('NEW', without), _sums_of('NEW'))} END"
    )
    # a completed call changed (late attribution, a correction, back in progress)
    db.execute(
        f"CREATE TRIGGER call_summary_update AFTER UPDATE OF {watched} ON calls"
        f" WHEN {done.format(row='OLD')} AND ({changed}) BEGIN {_update_sql(without)} END"
    )
    db.execute(
        f"CREATE TRIGGER call_summary_delete AFTER DELETE ON calls WHEN {done.format(row='OLD')}"
        " BEGIN"
        f" {_upsert(_keys('OLD', without), [f'-({v})' for v in _sums_of('OLD')])} END"
    )


def rebuild(db: sqlite_utils.Database, dims: tuple[str, ...] | None = None) -> int:
    """Recompute the summary (of ``dims`` only, if given) from ``calls``, in the caller's
    transaction; the summary's rows."""
    sums = _sums_of("c")
    if dims is None:
        db.execute("DELETE FROM call_summary")
    else:
        db.execute(f"DELETE FROM call_summary WHERE dim IN ({', '.join('?' for _ in dims)})",
                   list(dims))  # fmt: skip
    for dim, (_column, grains) in GRAINS.items():
        if dims is not None and dim not in dims:
            continue
        for g in grains:
            db.execute(
                f"INSERT INTO call_summary (grain, bucket, dim, value, {', '.join(SUMS)})"
                f" SELECT '{g}', {bucket_sql(g, 'c')} AS b, '{dim}',"
                f" {value_key(dim, 'c')} AS v, {', '.join(f'SUM({s})' for s in sums)}"
                " FROM calls c WHERE c.status = 'completed' GROUP BY b, v"
            )
    return db.execute("SELECT COUNT(*) FROM call_summary").fetchone()[0]


def installed(db: sqlite_utils.Database) -> bool:
    return bool(
        db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'call_summary_rule'"
        ).fetchone()
    )


def rule(db: sqlite_utils.Database) -> float | None:
    """The minimum talk time the summary's qualified calls were counted with (None:
    no summary in this database)."""
    if not installed(db):
        return None
    return db.execute("SELECT min_talk_seconds FROM call_summary_rule").fetchone()[0]


def sync_rule(db: sqlite_utils.Database, min_talk_seconds: float) -> bool:
    """Count qualified calls with ``min_talk_seconds`` from now on (the writer's, at the
    daemon's start): rebuilds the summary if the rule changed; True if it did."""
    have = rule(db)
    if have is None or have == min_talk_seconds:
        return False
    db.execute("UPDATE call_summary_rule SET min_talk_seconds = ?", [min_talk_seconds])
    rows = rebuild(db)
    log.info("report summaries rebuilt for qualified calls >= %gs (%d rows)",
             min_talk_seconds, rows)  # fmt: skip
    return True


def kept(db: sqlite_utils.Database, dim: str) -> bool:
    """Whether this database's summary keeps ``dim`` (the URL dimensions came with m019: a
    reader may face a database not migrated yet)."""
    if dim not in DERIVED:
        return True
    row = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'call_summary_insert'"
    ).fetchone()
    return bool(row) and f"'{dim}'" in row[0]


def usable(db: sqlite_utils.Database, qualified: QualifiedCall) -> bool:
    """Whether the summary answers reports counting ``qualified`` calls."""
    return qualified.outcomes == ("answered",) and rule(db) == qualified.min_talk_seconds


# -- splitting a range -----------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """[start, end) as signed whole summary buckets (grain, first, end, sign) and signed
    raw ranges (first, end, sign): the range's sums are theirs, each times its sign."""

    summary: list[tuple[str, datetime, datetime, int]]
    raw: list[tuple[datetime, datetime, int]]


def _floor(t: datetime, grain: str) -> datetime:
    t = t.astimezone(UTC).replace(second=0, microsecond=0)
    t = t.replace(minute=t.minute // 15 * 15 if grain == "q" else 0)
    if grain in ("d", "m"):
        t = t.replace(hour=0)
    if grain == "m":
        t = t.replace(day=1)
    return t


def _next(t: datetime, grain: str) -> datetime:
    """The start of the bucket after the one ``t`` starts."""
    if grain == "q":
        return t + timedelta(minutes=15)
    if grain == "h":
        return t + timedelta(hours=1)
    if grain == "d":
        return t + timedelta(days=1)
    return (t.replace(day=28) + timedelta(days=4)).replace(day=1)


def _ceil(t: datetime, grain: str) -> datetime:
    down = _floor(t, grain)
    return down if down == t else _next(down, grain)


def split(
    start: datetime, end: datetime, grains: tuple[str, ...], *, complement: bool = True
) -> Split:
    """Cover [start, end) with the largest whole buckets of ``grains``, the rest raw.

    ``complement``: a bucket the range covers more than half of is read whole, less the
    part outside the range (itself covered so, with the sign turned): a 30-day range from
    the 4th at 06:00 reads that month less 3¼ days, not 26¾ days; a local midnight at
    06:00 UTC reads the day less 6 hours of raw calls, not 18. Without, the parts are
    disjoint and all positive (time buckets, which add them up by label)."""
    start, end = _utc(start), _utc(end)
    hours_only = "d" not in grains and "m" not in grains and "h" in grains
    if hours_only and whole_hour(start) and whole_hour(end) and start < end:
        return Split([("h", start, end, 1)], [])  # a time bucket of whole hours: the usual
    if "d" in grains or "m" in grains or start >= end:
        return _cover(start, end, grains, complement)
    # hours and quarters repeat every hour: a local hour of a zone 30 or 45 minutes off UTC
    # (8,760 a year) is one cached cover, moved to its hour
    base = start.replace(minute=0, second=0, microsecond=0)
    rel = _cover_in_hours(start - base, end - start, grains, complement)
    return Split(
        [(g, base + lo, base + hi, sign) for g, lo, hi, sign in rel[0]],
        [(base + lo, base + hi, sign) for lo, hi, sign in rel[1]],
    )


_HOUR_ZERO = datetime(2000, 1, 1, tzinfo=UTC)


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo is UTC else t.astimezone(UTC)


@lru_cache(maxsize=4096)
def _cover_in_hours(
    offset: timedelta, length: timedelta, grains: tuple[str, ...], complement: bool
) -> tuple[tuple, tuple]:
    """``split`` of [h + offset, h + offset + length) for any whole UTC hour h, as
    timedeltas from h (grains of an hour or less)."""
    part = _cover(_HOUR_ZERO + offset, _HOUR_ZERO + offset + length, grains, complement)
    return (
        tuple((g, lo - _HOUR_ZERO, hi - _HOUR_ZERO, sign) for g, lo, hi, sign in part.summary),
        tuple((lo - _HOUR_ZERO, hi - _HOUR_ZERO, sign) for lo, hi, sign in part.raw),
    )


def _cover(start: datetime, end: datetime, grains: tuple[str, ...], complement: bool) -> Split:
    summary: list[tuple[str, datetime, datetime, int]] = []
    raw: list[tuple[datetime, datetime, int]] = []
    order = [g for g in ORDER if g in grains]

    def whole(g: str, lo: datetime, hi: datetime, sign: int) -> None:
        summary.append((g, lo, hi, sign))

    def cover(lo: datetime, hi: datetime, level: int, sign: int) -> None:
        if lo >= hi:
            return
        if level == len(order):
            raw.append((lo, hi, sign))
            return
        g = order[level]
        a, b = _ceil(lo, g), _floor(hi, g)
        if a > b:  # inside one bucket
            first, after = b, a
            if complement and (lo - first) + (after - hi) < hi - lo:
                whole(g, first, after, sign)
                cover(first, lo, level + 1, -sign)
                cover(hi, after, level + 1, -sign)
            else:
                cover(lo, hi, level + 1, sign)
            return
        if lo < a and complement and lo - _floor(lo, g) < a - lo:
            first = _floor(lo, g)
            whole(g, first, a, sign)
            cover(first, lo, level + 1, -sign)
        else:
            cover(lo, a, level + 1, sign)
        if a < b:
            whole(g, a, b, sign)
        after = _next(b, g) if b < hi else b
        if b < hi and complement and after - hi < hi - b:
            whole(g, b, after, sign)
            cover(hi, after, level + 1, -sign)
        else:
            cover(b, hi, level + 1, sign)

    cover(start, end, 0, 1)
    return Split(_merged(summary), raw)


def _merged(parts: list[tuple[str, datetime, datetime, int]]) -> list:
    """``parts`` in time order, adjacent ones of a grain and sign as one range."""
    out: list[tuple[str, datetime, datetime, int]] = []
    for g, lo, hi, sign in sorted(parts, key=lambda p: (p[1], p[2])):
        same = [i for i, (g2, _lo, hi2, s2) in enumerate(out) if (g2, hi2, s2) == (g, lo, sign)]
        if same:
            out[same[0]] = (g, out[same[0]][1], hi, sign)
        else:
            out.append((g, lo, hi, sign))
    return out


def whole_hour(t: datetime) -> bool:
    return t.minute == 0 and t.second == 0 and t.microsecond == 0


# -- queries ---------------------------------------------------------------------------


def _key(dim: str, value: str | None) -> str:
    return "" if dim == TOTAL or value is None else "=" + value


def _value_column(dim: str, alias: str = "") -> str:
    """The value column as a query of ``dim``'s rows names it: the total's by its primary
    key (``+``: its one value, '', in every bucket makes the index of a value's hours a
    lookup per row)."""
    return f"+{alias}value" if dim == TOTAL else f"{alias}value"


def _ranges(dim: str, parts, value: str | None) -> tuple[str, list]:
    """A UNION ALL of the summary rows (value and ``SUMS``, times their sign) of ``parts``
    (``Split.summary``; optionally of one value)."""
    one = f" AND {_value_column(dim)} = ?" if value is not None else ""
    plus = ", ".join(SUMS)
    minus = ", ".join(f"-{s} AS {s}" for s in SUMS)
    selects, args = [], []
    for grain, lo, hi, sign in parts:
        assert grain in ORDER  # a literal: the planner sees which index applies
        selects.append(
            f"SELECT value, {plus if sign > 0 else minus} FROM call_summary"
            f" WHERE grain = '{grain}' AND dim = ?{one} AND bucket >= ? AND bucket < ?"
        )
        args += [dim, *([value] if value is not None else [])]
        args += [bucket_key(lo, grain), bucket_key(hi, grain)]
    return " UNION ALL ".join(selects), args


def group_sums(db: sqlite_utils.Database, dim: str, parts) -> dict[str | None, list[int]]:
    """Sums per value of ``dim`` over the summary buckets ``parts`` (``Split.summary``)."""
    if not parts:
        return {}
    union, args = _ranges(dim, parts, None)
    cols = ", ".join(f"SUM({s})" for s in SUMS)
    rows = db.execute(
        f"SELECT value, {cols} FROM ({union}) GROUP BY value HAVING SUM(calls) > 0", args
    ).fetchall()
    return {decode(r[0]): list(r[1:]) for r in rows}


def total_sums(db: sqlite_utils.Database, dim: str, value: str | None, parts) -> list[int]:
    """Sums over the summary buckets ``parts`` of ``dim``'s ``value`` (any, for the
    total)."""
    if not parts:
        return [0] * len(SUMS)
    union, args = _ranges(dim, parts, _key(dim, value))
    cols = ", ".join(f"coalesce(SUM({s}), 0)" for s in SUMS)
    return list(db.execute(f"SELECT {cols} FROM ({union})", args).fetchone())


def bucket_sums(
    db: sqlite_utils.Database,
    dim: str,
    value: str | None,
    spans: list[tuple[str, str, datetime, datetime]],
) -> dict[str, list[int]]:
    """Sums per label of whole summary buckets (label, grain, first, end) of ``dim``'s
    ``value`` (a label may have many spans: the heat map's cells; spans do not overlap:
    ``split(..., complement=False)``): per grain, the spans (JSON) drive a join with the
    summary, each a range of its index, summed by label in SQL."""
    by_grain: dict[str, list[tuple[str, str, str]]] = {}
    keys: dict[tuple[datetime, str], str] = {}  # a span's end is the next one's start

    def key(t: datetime, grain: str) -> str:
        k = keys.get((t, grain))
        if k is None:
            k = keys[(t, grain)] = bucket_key(t, grain)
        return k

    for label, grain, lo, hi in spans:
        by_grain.setdefault(grain, []).append((label, key(lo, grain), key(hi, grain)))
    out: dict[str, list[int]] = {}
    cols = ", ".join(f"SUM(s.{c})" for c in SUMS)
    for grain, found in by_grain.items():
        assert grain in ORDER  # a literal: the planner sees which index applies
        rows = db.execute(
            "WITH b AS (SELECT json_extract(value, '$[0]') AS label,"
            " json_extract(value, '$[1]') AS lo, json_extract(value, '$[2]') AS hi"
            f" FROM json_each(?)) SELECT b.label, {cols} FROM b CROSS JOIN call_summary s"
            f" WHERE s.grain = '{grain}' AND s.dim = ? AND {_value_column(dim, 's.')} = ?"
            " AND s.bucket >= b.lo"
            " AND s.bucket < b.hi GROUP BY b.label",
            [json.dumps(found), dim, _key(dim, value)],
        ).fetchall()
        for label, *sums in rows:
            have = out.get(label)
            out[label] = sums if have is None else [a + b for a, b in zip(have, sums, strict=True)]
    return {k: v for k, v in out.items() if v[0] > 0}


def dimension_key(dimension: Dimension) -> str | None:
    """The summary's key of a non-time report dimension (None: not summarized)."""
    column = _DIMENSION_KEYS.get(dimension) or DIMENSION_COLUMNS.get(dimension)
    return column if column in GRAINS else None
