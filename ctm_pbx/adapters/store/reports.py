"""Report queries: the call log summed into ``core.reports.Totals`` per group.

Plain SQL over ``calls`` (read only). The rules (what a period is, which local day a
call falls in, what a metric or a qualified call is) come from ``core.reports``: time
buckets arrive as UTC bounds and are joined against ``idx_calls_started_at``, URL
dimensions call the core's ``url_path``/``url_host`` registered as SQL functions.
"""

from __future__ import annotations

import json
from datetime import datetime, tzinfo

import sqlite_utils

from ctm_pbx.core.clock import iso
from ctm_pbx.core.reports import (
    CONFIDENT,
    DIMENSION_COLUMNS,
    MISSED_OUTCOMES,
    WEEKDAYS,
    Bucket,
    Dimension,
    Filters,
    Period,
    QualifiedCall,
    Report,
    Totals,
    build_report,
    time_buckets,
    url_host,
    url_path,
)

_FUNCTIONS = {"ctm_url_path": url_path, "ctm_url_host": url_host}


def _register(db: sqlite_utils.Database) -> None:
    for name, fn in _FUNCTIONS.items():
        db.conn.create_function(name, 1, fn, deterministic=True)


def _sums(qualified: QualifiedCall) -> tuple[str, list]:
    """The SELECT list that fills ``Totals`` (in its field order) and its arguments."""
    missed = ", ".join(f"'{o}'" for o in MISSED_OUTCOMES)
    q_outcomes = ", ".join("?" for _ in qualified.outcomes)
    sql = (
        "COUNT(*), COUNT(DISTINCT c.caller_number),"
        " TOTAL(c.caller_number IS NOT NULL AND c.previous_call_id IS NULL),"
        " TOTAL(c.outcome = 'answered'),"
        f" TOTAL(c.outcome IN ({missed})),"
        " TOTAL(c.outcome = 'voicemail'),"
        f" TOTAL(c.outcome IN ({q_outcomes}) AND COALESCE(c.talk_seconds, 0) >= ?),"
        " COUNT(c.ring_seconds), TOTAL(c.ring_seconds),"
        " TOTAL(CASE WHEN c.outcome = 'answered' THEN c.talk_seconds END),"
        " COUNT(c.queue_wait_seconds), TOTAL(c.queue_wait_seconds),"
        " COUNT(c.attribution_confidence), TOTAL(c.attribution_confidence),"
        f" TOTAL(c.attribution_confidence >= {CONFIDENT})"
    )
    return sql, [*qualified.outcomes, qualified.min_talk_seconds]


def _totals(values: tuple) -> Totals:
    (calls, unique, first, answered, missed, vm, qual, ring_n, ring_t, talk_t, q_n, q_t,
     scored, conf_t, confident) = values  # fmt: skip
    return Totals(
        calls=calls,
        unique_callers=unique,
        first_time=int(first),
        answered=int(answered),
        missed=int(missed),
        voicemails=int(vm),
        qualified=int(qual),
        ring_count=ring_n,
        ring_total=ring_t,
        talk_total=talk_t,
        queue_count=q_n,
        queue_total=q_t,
        scored=scored,
        confidence_total=conf_t,
        confident=int(confident),
    )


def filter_sql(filters: Filters) -> tuple[list[str], list]:
    """WHERE clauses (on alias ``c``) and their arguments for ``filters``."""
    where: list[str] = []
    args: list = []
    for clause, value in (
        ("c.source = ?", filters.source),
        ("c.pool = ?", filters.pool),
        ("c.tracking_number = ?", filters.number),
        ("c.route = ?", filters.route),
        ("c.outcome = ?", filters.outcome),
    ):
        if value is not None:
            where.append(clause)
            args.append(value)
    if filters.first_time is not None:
        first = "(c.caller_number IS NOT NULL AND c.previous_call_id IS NULL)"
        where.append(first if filters.first_time else f"NOT {first}")
    if filters.caller:
        where.append("c.caller_number LIKE ? ESCAPE '\\'")
        digits = filters.caller.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        args.append(f"%{digits}%")
    return where, args


def group_totals(
    db: sqlite_utils.Database,
    dimension: Dimension,
    start: datetime,
    end: datetime,
    filters: Filters,
    qualified: QualifiedCall,
) -> dict[str | None, Totals]:
    """Totals per value of a non-time ``dimension`` for calls started in [start, end)."""
    if dimension.is_time:
        raise ValueError("time dimensions are summed by bucket_totals")
    column = f"c.{DIMENSION_COLUMNS[dimension]}"
    if dimension is Dimension.LANDING_PAGE:
        column = f"ctm_url_path({column})"
    elif dimension is Dimension.REFERRER:
        column = f"ctm_url_host({column})"
    _register(db)
    sums, sum_args = _sums(qualified)
    where, args = filter_sql(filters)
    sql = (
        f"SELECT {column} AS k, {sums} FROM calls c"
        f" WHERE c.started_at >= ? AND c.started_at < ? {''.join(' AND ' + w for w in where)}"
        " GROUP BY k"
    )
    rows = db.conn.execute(sql, [*sum_args, iso(start), iso(end), *args]).fetchall()
    return {row[0]: _totals(row[1:]) for row in rows}


def bucket_totals(
    db: sqlite_utils.Database, buckets: list[Bucket], filters: Filters, qualified: QualifiedCall
) -> dict[str, Totals]:
    """Totals per time bucket (buckets with the same label, e.g. heat-map cells, add up)."""
    if not buckets:
        return {}
    sums, sum_args = _sums(qualified)
    where, args = filter_sql(filters)
    spans = json.dumps([[b.label, iso(b.start), iso(b.end)] for b in buckets])
    # the buckets drive the join: each one is a range scan of idx_calls_started_at
    sql = (
        "WITH b AS (SELECT json_extract(value, '$[0]') AS label,"
        " json_extract(value, '$[1]') AS s, json_extract(value, '$[2]') AS e"
        " FROM json_each(?))"
        f" SELECT b.label, {sums} FROM b CROSS JOIN calls c"
        f" WHERE c.started_at >= b.s AND c.started_at < b.e"
        f" {''.join(' AND ' + w for w in where)} GROUP BY b.label"
    )
    rows = db.conn.execute(sql, [spans, *sum_args, *args]).fetchall()
    return {row[0]: _totals(row[1:]) for row in rows}


def period_totals(
    db: sqlite_utils.Database,
    start: datetime,
    end: datetime,
    filters: Filters,
    qualified: QualifiedCall,
) -> Totals:
    """Totals of every call started in [start, end) that passes ``filters``."""
    sums, sum_args = _sums(qualified)
    where, args = filter_sql(filters)
    sql = (
        f"SELECT {sums} FROM calls c WHERE c.started_at >= ? AND c.started_at < ?"
        f" {''.join(' AND ' + w for w in where)}"
    )
    row = db.conn.execute(sql, [*sum_args, iso(start), iso(end), *args]).fetchone()
    return _totals(row)


def run_report(
    db: sqlite_utils.Database,
    dimension: Dimension,
    period: Period,
    tz: tzinfo,
    filters: Filters,
    qualified: QualifiedCall,
    *,
    compare: bool = True,
) -> Report:
    """One report: ``dimension``'s rows for ``period``, and the previous period's."""

    def groups(p: Period) -> tuple[dict, list[str] | None]:
        if dimension.is_time:
            buckets = time_buckets(p, dimension, tz)
            order = list(dict.fromkeys(b.label for b in buckets))
            if dimension is Dimension.HOUR:  # heat-map cells: Monday 00 first
                order = [f"{d} {h:02d}" for d in WEEKDAYS for h in range(24)]
            return bucket_totals(db, buckets, filters, qualified), order
        return group_totals(db, dimension, p.start, p.end, filters, qualified), None

    rows, order = groups(period)
    total = period_totals(db, period.start, period.end, filters, qualified)
    prev_rows = prev_total = None
    if compare:
        before = period.previous()
        prev_total = period_totals(db, before.start, before.end, filters, qualified)
        # time buckets of the previous period have other labels: only the total compares
        prev_rows = None if dimension.is_time else groups(before)[0]
    return build_report(
        dimension, period, getattr(tz, "key", str(tz)), rows, total, prev_rows, prev_total, order
    )
