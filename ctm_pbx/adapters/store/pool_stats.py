"""Per-pool counters and the traffic a pool saw (``pools stats``, ``pools advise``,
the accuracy report and the metrics)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlite_utils

from ctm_pbx.adapters.store.db import one_row
from ctm_pbx.adapters.store.lease_index import LEASE_COLS as _LEASE_COLS
from ctm_pbx.adapters.store.lease_index import lease_from_row as _lease
from ctm_pbx.core.attribution import RepeatLink
from ctm_pbx.core.clock import iso, parse_iso
from ctm_pbx.core.pools import Lease


@dataclass(frozen=True)
class PoolCounters:
    pool: str
    leases: int = 0
    shares: int = 0
    overflows: int = 0
    peak_concurrent: int = 0
    peak_at: str | None = None
    since: str | None = None
    updated_at: str | None = None
    crawlers: int = 0  # page views of crawlers and headless tools, shown no pool number
    capped: int = 0  # new visitors whose client held its cap: shown one of its numbers
    unconfirmed: int = 0  # leases that expired without a heartbeat, their number reused


_BUMP = (
    "INSERT INTO pool_stats (pool, leases, shares, overflows, peak_concurrent, peak_at, since,"
    " updated_at, crawlers, capped, unconfirmed)"
    " VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?5 > 0 THEN ?6 END, ?6, ?6, ?7, ?8, ?9)"
    " ON CONFLICT (pool) DO UPDATE SET leases = leases + ?2, shares = shares + ?3,"
    " overflows = overflows + ?4, crawlers = crawlers + ?7, capped = capped + ?8,"
    " unconfirmed = unconfirmed + ?9,"
    " peak_at = CASE WHEN ?5 > peak_concurrent THEN ?6 ELSE peak_at END,"
    " peak_concurrent = max(peak_concurrent, ?5), updated_at = ?6"
)


def bump_pool_counters(
    db: sqlite_utils.Database,
    pool: str,
    *,
    now: datetime,
    leases: int = 0,
    shares: int = 0,
    overflows: int = 0,
    concurrent: int = 0,
    crawlers: int = 0,
    capped: int = 0,
    unconfirmed: int = 0,
) -> None:
    """Add to the counters; ``concurrent`` (active leases now) raises the peak."""
    db.conn.execute(
        _BUMP,
        (pool, leases, shares, overflows, concurrent, iso(now), crawlers, capped, unconfirmed),
    )


def pool_counters(db: sqlite_utils.Database, pool: str) -> PoolCounters:
    row = one_row(db, "SELECT * FROM pool_stats WHERE pool = ?", (pool,))
    return PoolCounters(**row) if row else PoolCounters(pool)


def reset_pool_counters(db: sqlite_utils.Database, pool: str, *, now: datetime) -> None:
    """Start counting afresh (e.g. after resizing the pool)."""
    at = iso(now)
    db.conn.execute(
        "INSERT INTO pool_stats (pool, since, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (pool) DO UPDATE SET leases = 0, shares = 0, overflows = 0,"
        " crawlers = 0, capped = 0, unconfirmed = 0,"
        " peak_concurrent = 0, peak_at = NULL, since = excluded.since,"
        " updated_at = excluded.updated_at",
        (pool, at, at),
    )


def daily_visitors(db: sqlite_utils.Database, source: str, now: datetime, days: int = 7) -> float:
    """Average distinct visitors a day from ``source`` over the last ``days`` days.

    Divided by the days there is data for (from the first visit of the period,
    at least an hour), not by ``days``: a pool four days old is not read low.
    """
    row = db.conn.execute(
        "SELECT COUNT(DISTINCT visitor_id), MIN(started_at) FROM visits"
        " WHERE source = ? AND started_at >= ?",
        (source, iso(now - timedelta(days=days))),
    ).fetchone()
    if not row[0]:
        return 0.0
    span = (now - parse_iso(row[1])).total_seconds() / 86400
    return row[0] / min(float(days), max(span, 1 / 24))


def pool_leases(
    db: sqlite_utils.Database, numbers: list[str], since: datetime, until: datetime
) -> list[Lease]:
    """The leases of ``numbers`` handed out in ``[since, until]`` (pool statistics)."""
    rows = db.conn.execute(
        f"SELECT {_LEASE_COLS} FROM leases INDEXED BY idx_leases_number_time"
        " WHERE number IN (SELECT value FROM json_each(?)) AND leased_at >= ? AND leased_at <= ?",
        (json.dumps(list(numbers)), iso(since), iso(until)),
    )
    return [_lease(r) for r in rows]


def pool_calls(db: sqlite_utils.Database, pool: str, since: datetime) -> list[tuple]:
    """The pool's calls since ``since``, for the sizing replay: ``(started_at, caller_number,
    candidates, earlier link, id)``, the link (a ``RepeatLink``, or None) the call was
    scored with."""
    rows = db.conn.execute(
        "SELECT c.started_at, c.caller_number, c.attribution_candidates_json, p.id,"
        " p.visitor_id, p.started_at, p.attribution_confidence, p.visit_id, c.id"
        " FROM calls c LEFT JOIN calls p ON p.id = c.previous_call_id"
        " WHERE c.pool = ? AND c.started_at >= ? ORDER BY c.started_at",
        (pool, iso(since)),
    )
    out = []
    for at, caller, text, pid, pvisitor, pstarted, pconf, pvisit, call_id in rows:
        link = None
        if pid is not None and pvisitor:
            confidence = 1.0 if pconf is None else float(pconf)
            link = RepeatLink(pid, pvisitor, parse_iso(pstarted), confidence, pvisit)
        out.append((parse_iso(at), caller, json.loads(text or "[]"), link, call_id))
    return out
