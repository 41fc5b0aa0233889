"""Report queries: the call log summed into ``core.reports.Totals`` per group.

Plain SQL, read only. The rules (what a period is, which local day a call falls in,
what a metric or a qualified call is) come from ``core.reports``: time buckets arrive
as UTC bounds. Whole UTC hours, days and months come from the summary
(``summaries``: kept by triggers in the transaction that writes a call) when it can
answer (no filter or one on a summed dimension, the summary's qualified-call rule);
the edges, the other dimensions and filters come from ``calls`` (range scans of
``idx_calls_started_at``; the URL dimensions' values are the SQL of ``url_parts``, as in
the summary's triggers). Both sum the same integer expressions, so a report is the same
either way. Unique callers, which no sum gives, always come from
``calls``: ``unique=False`` skips them (None) where nobody reads them.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import fields
from datetime import datetime, tzinfo

import sqlite_utils

from ctm_pbx.adapters.store import summaries
from ctm_pbx.core.clock import iso
from ctm_pbx.core.reports import (
    DIMENSION_COLUMNS,
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
)

Sums = list[int]  # one value per ``summaries.SUMS``
_OPEN = "c.status = 'in_progress'"  # calls the summary does not hold yet


def _select(qualified: QualifiedCall, unique: bool) -> tuple[str, list]:
    """The SELECT list of the raw sums (``summaries.SUMS``, after the unique callers when
    ``unique``) and its arguments: the same integer sums the summary keeps."""
    cond = summaries.qualified_sql("c", len(qualified.outcomes))
    cols = [f"coalesce(SUM({e}), 0)" for e in summaries.contributions("c", cond)]
    if unique:
        cols.insert(0, "COUNT(DISTINCT c.caller_number)")
    return ", ".join(cols), [*qualified.outcomes, qualified.min_talk_seconds]


def _split_row(values: tuple, unique: bool) -> tuple[int | None, Sums]:
    return (values[0], list(values[1:])) if unique else (None, list(values))


def _totals(sums: Sums, unique: int | None) -> Totals:
    (calls, first, answered, missed, vm, qual, ring_n, ring_ms, talk_ms, q_n, q_ms,
     scored, conf_micro, confident) = sums  # fmt: skip
    return Totals(
        calls=calls,
        unique_callers=unique,
        first_time=first,
        answered=answered,
        missed=missed,
        voicemails=vm,
        qualified=qual,
        ring_count=ring_n,
        ring_total=ring_ms / 1000,
        talk_total=talk_ms / 1000,
        queue_count=q_n,
        queue_total=q_ms / 1000,
        scored=scored,
        confidence_total=conf_micro / 1_000_000,
        confident=confident,
    )


def _add(into: dict, key, sums: Sums) -> None:
    have = into.get(key)
    into[key] = sums if have is None else [a + b for a, b in zip(have, sums, strict=True)]


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
    if filters.tag:
        where.append("instr(c.tags, ?) > 0")
        args.append(f",{filters.tag},")
    return where, args


def _summary_filter(filters: Filters) -> tuple[str, str | None] | None:
    """The (summary dimension, value) that stands for ``filters`` (the total for none);
    None when the summary cannot answer them (more than one, or not summed)."""
    given = {f.name: getattr(filters, f.name) for f in fields(filters)}
    set_ = {k: v for k, v in given.items() if v is not None and v != ""}
    if not set_:
        return summaries.TOTAL, None
    if len(set_) == 1:
        ((name, value),) = set_.items()
        if name in summaries.FILTER_DIMS:
            return summaries.FILTER_DIMS[name], value
    return None


def _raw_groups(
    db: sqlite_utils.Database,
    column: str,
    ranges: list[tuple[datetime, datetime, int]],
    filters: Filters,
    qualified: QualifiedCall,
    unique: bool,
    *,
    open_only: bool = False,
) -> dict:
    """{key: (unique callers, sums)} of the calls in ``ranges`` (first, end, sign: each
    summed apart, times its sign); ``open_only``: of the calls in progress only (those
    the summary does not hold)."""
    select, sel_args = _select(qualified, unique)
    where, args = filter_sql(filters)
    table = "calls c"
    if open_only:
        table, where = "calls c INDEXED BY idx_calls_open", [_OPEN, *where]
    out: dict = {}
    for start, end, sign in ranges:
        sql = (
            f"SELECT {column} AS k, {select} FROM {table}"
            f" WHERE c.started_at >= ? AND c.started_at < ?"
            f"{''.join(' AND ' + w for w in where)} GROUP BY +{column}"
        )
        for row in db.conn.execute(sql, [*sel_args, iso(start), iso(end), *args]):
            u, sums = _split_row(row[1:], unique)
            if sign < 0:
                u, sums = None, [-x for x in sums]
            if row[0] in out:  # ranges are disjoint: only the sums add (unique is one range)
                u, sums = None, [a + b for a, b in zip(out[row[0]][1], sums, strict=True)]
            out[row[0]] = (u, sums)
    return out


def _open_buckets(
    db: sqlite_utils.Database, spans: list, filters: Filters, qualified: QualifiedCall
) -> dict[str, Sums]:
    """Sums per label of the calls in progress within ``spans`` (label, grain, first,
    end): the summary holds completed calls only."""
    if not spans:
        return {}
    select, sel_args = _select(qualified, False)
    where, args = filter_sql(filters)
    sql = (
        f"SELECT c.started_at, {select} FROM calls c INDEXED BY idx_calls_open WHERE {_OPEN}"
        f" AND c.started_at >= ? AND c.started_at < ?{''.join(' AND ' + w for w in where)}"
        " GROUP BY c.id"
    )
    first = iso(min(lo for _label, _g, lo, _hi in spans))
    end = iso(max(hi for _label, _g, _lo, hi in spans))
    rows = db.conn.execute(sql, [*sel_args, first, end, *args]).fetchall()
    if not rows:
        return {}
    found = sorted((iso(lo), iso(hi), label) for label, _g, lo, hi in spans)
    starts = [lo for lo, _hi, _label in found]
    out: dict[str, Sums] = {}
    for at, *sums in rows:
        i = bisect_right(starts, at) - 1
        if i >= 0 and at < found[i][1]:
            _add(out, found[i][2], sums)
    return out


def _unique_by(
    db: sqlite_utils.Database, column: str, start: datetime, end: datetime, filters: Filters
) -> dict:
    """Unique callers per ``column`` value in [start, end): no sum gives them."""
    where, args = filter_sql(filters)
    sql = (
        f"SELECT {column} AS k, COUNT(DISTINCT c.caller_number) FROM calls c"
        f" WHERE c.started_at >= ? AND c.started_at < ?"
        f"{''.join(' AND ' + w for w in where)} GROUP BY +{column}"
    )
    return dict(db.conn.execute(sql, [iso(start), iso(end), *args]).fetchall())


def _column(dimension: Dimension) -> str:
    key = summaries.dimension_key(dimension)
    if key in summaries.DERIVED:
        return summaries.value_sql(key, "c")
    return f"c.{DIMENSION_COLUMNS[dimension]}"


def group_totals(
    db: sqlite_utils.Database,
    dimension: Dimension,
    start: datetime,
    end: datetime,
    filters: Filters,
    qualified: QualifiedCall,
    *,
    unique: bool = True,
    summary: bool = True,
) -> dict[str | None, Totals]:
    """Totals per value of a non-time ``dimension`` for calls started in [start, end):
    from the summary where it can answer (no filter, a summed dimension), else from
    ``calls``. ``unique``: count unique callers too (from ``calls``; None if not)."""
    if dimension.is_time:
        raise ValueError("time dimensions are summed by bucket_totals")
    column = _column(dimension)
    key = summaries.dimension_key(dimension)
    if (
        key is None
        or not summaries.kept(db, key)
        or _summary_filter(filters) != (summaries.TOTAL, None)
        or not (summary and summaries.usable(db, qualified))
    ):
        raw = _raw_groups(db, column, [(start, end, 1)], filters, qualified, unique)
        return {k: _totals(sums, u) for k, (u, sums) in raw.items()}
    part = summaries.split(start, end, summaries.GRAINS[key][1])
    found = summaries.group_sums(db, key, part.summary)
    for k, (_u, sums) in _raw_groups(db, column, part.raw, filters, qualified, False).items():
        _add(found, k, sums)
    covered = [(lo, hi, sign) for _g, lo, hi, sign in part.summary]
    for k, (_u, sums) in _raw_groups(
        db, column, covered, filters, qualified, False, open_only=True
    ).items():
        _add(found, k, sums)
    found = {k: sums for k, sums in found.items() if sums[0] > 0}  # values the signs cancel
    counts = _unique_by(db, column, start, end, filters) if unique else {}
    return {k: _totals(sums, counts.get(k, 0) if unique else None) for k, sums in found.items()}


def _raw_buckets(
    db: sqlite_utils.Database,
    buckets: list[Bucket],
    filters: Filters,
    qualified: QualifiedCall,
    unique: bool,
) -> dict[str, tuple[int | None, Sums]]:
    if not buckets:
        return {}
    select, sel_args = _select(qualified, unique)
    where, args = filter_sql(filters)
    spans = json.dumps([[b.label, iso(b.start), iso(b.end)] for b in buckets])
    # the buckets drive the join: each one is a range scan of idx_calls_started_at
    sql = (
        "WITH b AS (SELECT json_extract(value, '$[0]') AS label,"
        " json_extract(value, '$[1]') AS s, json_extract(value, '$[2]') AS e"
        " FROM json_each(?))"
        f" SELECT b.label, {select} FROM b CROSS JOIN calls c"
        f" WHERE c.started_at >= b.s AND c.started_at < b.e"
        f" {''.join(' AND ' + w for w in where)} GROUP BY b.label"
    )
    rows = db.conn.execute(sql, [spans, *sel_args, *args]).fetchall()
    return {row[0]: _split_row(row[1:], unique) for row in rows}


def bucket_totals(
    db: sqlite_utils.Database,
    buckets: list[Bucket],
    filters: Filters,
    qualified: QualifiedCall,
    *,
    unique: bool = True,
    summary: bool = True,
) -> dict[str, Totals]:
    """Totals per time bucket (buckets with the same label, e.g. heat-map cells, add up):
    whole UTC hours and quarters from the summary (no filter, or only a source: its
    hours), the rest raw."""
    if not buckets:
        return {}
    on = _summary_filter(filters)
    grains = tuple(g for g in summaries.GRAINS[on[0]][1] if g in "hq") if on else ()
    if not grains or not (summary and summaries.usable(db, qualified)):
        raw = _raw_buckets(db, buckets, filters, qualified, unique)
        return {k: _totals(sums, u) for k, (u, sums) in raw.items()}
    assert on is not None
    spans: list = []
    edges: list[Bucket] = []
    hours = "h" in grains
    for b in buckets:
        if hours and summaries.whole_hour(b.start) and summaries.whole_hour(b.end):
            spans.append((b.label, "h", b.start, b.end))  # the usual bucket: no split
            continue
        part = summaries.split(b.start, b.end, grains, complement=False)
        spans += [(b.label, g, lo, hi) for g, lo, hi, _sign in part.summary]
        edges += [Bucket(b.label, s, e) for s, e, _sign in part.raw]
    found = summaries.bucket_sums(db, on[0], on[1], spans)
    for label, (_u, sums) in _raw_buckets(db, edges, filters, qualified, False).items():
        _add(found, label, sums)
    for label, sums in _open_buckets(db, spans, filters, qualified).items():
        _add(found, label, sums)
    counts: dict = {}
    if unique:
        counts = {
            k: u for k, (u, _s) in _raw_buckets(db, buckets, filters, qualified, True).items()
        }
    return {k: _totals(sums, counts.get(k, 0) if unique else None) for k, sums in found.items()}


def period_totals(
    db: sqlite_utils.Database,
    start: datetime,
    end: datetime,
    filters: Filters,
    qualified: QualifiedCall,
    *,
    unique: bool = True,
    summary: bool = True,
) -> Totals:
    """Totals of every call started in [start, end) that passes ``filters``: from the
    summary when no filter or one on a summed dimension is given, else raw."""
    on = _summary_filter(filters)
    if on is None or not (summary and summaries.usable(db, qualified)):
        raw = _raw_groups(db, "NULL", [(start, end, 1)], filters, qualified, unique)
        u, sums = raw.get(None, (0 if unique else None, [0] * len(summaries.SUMS)))
        return _totals(sums, u)
    dim, value = on
    part = summaries.split(start, end, summaries.GRAINS[dim][1])
    found = {None: summaries.total_sums(db, dim, value, part.summary)}
    for _k, (_u, sums) in _raw_groups(db, "NULL", part.raw, filters, qualified, False).items():
        _add(found, None, sums)
    covered = [(lo, hi, sign) for _g, lo, hi, sign in part.summary]
    for _k, (_u, sums) in _raw_groups(
        db, "NULL", covered, filters, qualified, False, open_only=True
    ).items():
        _add(found, None, sums)
    count = None
    if unique:
        count = _unique_by(db, "NULL", start, end, filters).get(None, 0)
    return _totals(found[None], count)


def run_report(
    db: sqlite_utils.Database,
    dimension: Dimension,
    period: Period,
    tz: tzinfo,
    filters: Filters,
    qualified: QualifiedCall,
    *,
    compare: bool = True,
    unique: bool = True,
    summary: bool = True,
) -> Report:
    """One report: ``dimension``'s rows for ``period``, and the previous period's.
    ``unique``: count unique callers (a scan of the period's calls; None if not).
    ``summary=False``: every figure from ``calls`` (the bench's and tests' yardstick)."""
    opts = {"unique": unique, "summary": summary}

    def groups(p: Period) -> tuple[dict, list[str] | None]:
        if dimension.is_time:
            buckets = time_buckets(p, dimension, tz)
            order = list(dict.fromkeys(b.label for b in buckets))
            if dimension is Dimension.HOUR:  # heat-map cells: Monday 00 first
                order = [f"{d} {h:02d}" for d in WEEKDAYS for h in range(24)]
            return bucket_totals(db, buckets, filters, qualified, **opts), order
        return (
            group_totals(db, dimension, p.start, p.end, filters, qualified, **opts),
            None,
        )

    rows, order = groups(period)
    total = period_totals(db, period.start, period.end, filters, qualified, **opts)
    prev_rows = prev_total = None
    if compare:
        before = period.previous()
        prev_total = period_totals(db, before.start, before.end, filters, qualified, **opts)
        # time buckets of the previous period have other labels: only the total compares
        prev_rows = None if dimension.is_time else groups(before)[0]
    return build_report(
        dimension, period, getattr(tz, "key", str(tz)), rows, total, prev_rows, prev_total, order
    )
