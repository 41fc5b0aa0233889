"""Website visitors, their visits, pool leases and per-pool counters.

Hot path (a new visitor on a pool): ``next_candidate`` (one seek in the hand-out
index of tracking_numbers), ``hand_out`` in the core, ``record_assignment``; a
returning visitor's lease is renewed by id. ``pool_view`` reads a whole pool (for
``pools stats``). Plain SQL throughout: sqlite-utils' table helpers introspect
the schema on every call.

Times go in as aware datetimes and are stored as ISO 8601 UTC text
(``ctm_pbx.core.clock.iso``), which sorts as time does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from ctm_pbx.adapters.store import lease_index
from ctm_pbx.adapters.store.db import atomic
from ctm_pbx.adapters.store.lease_index import LEASE_COLS as _LEASE_COLS
from ctm_pbx.adapters.store.lease_index import lease_from_row as _lease
from ctm_pbx.adapters.store.lease_index import stored
from ctm_pbx.core.clock import iso, parse_iso
from ctm_pbx.core.model import Pool
from ctm_pbx.core.pools import Assignment, Candidate, Lease, NumberState, PoolView, rests_until

# --- visitors and visits ---------------------------------------------------

_UPSERT_VISITOR = (
    "INSERT INTO visitors (id, first_seen_at, last_seen_at, source, visit_id)"
    " VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET"
    " last_seen_at = max(visitors.last_seen_at, excluded.last_seen_at),"
    " visit_id = CASE WHEN excluded.source IS NULL THEN visitors.visit_id"
    " ELSE excluded.visit_id END,"
    " source = coalesce(excluded.source, visitors.source)"
)
_INSERT_VISIT = (
    "INSERT INTO visits (id, visitor_id, started_at, last_active_at, source, source_rule,"
    " landing_url, referrer, utm_source, utm_medium, utm_campaign, utm_term, utm_content,"
    " click_ids_json, pages, ip, user_agent, time_zone, language, ga_client_id, ga_session_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)"
)
_TOUCH_VISIT = (
    "UPDATE visits SET last_active_at = max(last_active_at, ?), pages = pages + ? WHERE id = ?"
)
_TOUCH_VISITOR = (
    "UPDATE visitors SET last_seen_at = max(last_seen_at, ?)"
    " WHERE id = (SELECT visitor_id FROM visits WHERE id = ?)"
)
_SEEN_VISITOR = "UPDATE visitors SET last_seen_at = max(last_seen_at, ?) WHERE id = ?"
_UTM = ("source", "medium", "campaign", "term", "content")


def upsert_visitor(
    db: sqlite_utils.Database,
    visitor_id: str,
    *,
    now: datetime,
    source: str | None = None,
    visit_id: str | None = None,
) -> None:
    """Create the visitor or mark them seen at ``now``.

    ``source`` (with the ``visit_id`` that set it) replaces the attributed
    source when given: whether a visit takes over (first/last touch) is the
    caller's decision.
    """
    at = iso(now)
    db.conn.execute(_UPSERT_VISITOR, (visitor_id, at, at, source, visit_id))


def get_visitor(db: sqlite_utils.Database, visitor_id: str) -> dict[str, Any] | None:
    return _one(db, "SELECT * FROM visitors WHERE id = ?", (visitor_id,))


@dataclass(frozen=True)
class VisitorState:
    """What a visit needs of a stored visitor (``visitor_state``): its attributed
    source, the visit that set it, and its latest visit."""

    id: str
    source: str | None
    first_seen_at: str
    visit_id: str | None  # the visit that set ``source``
    touch_started_at: str | None  # that visit's start (None: no such visit stored)
    touch_rule: str | None  # the rule that matched it
    latest_visit: str | None  # the visitor's latest visit (by start)
    latest_active_at: str | None  # its last activity
    visits_since: int  # visits started at or after ``since`` (``max_visits_per_day``)


# one read for the visitor, the visit it is attributed to and its latest visit (the
# visit-API's new visits: a statement costs more than the rows it reads)
_VISITOR_STATE = (
    "SELECT v.id, v.source, v.first_seen_at, v.visit_id, t.started_at, t.source_rule,"
    " l.id, l.last_active_at,"
    " (SELECT count(*) FROM visits WHERE visitor_id = v.id AND started_at >= ?2)"
    " FROM visitors v"
    " LEFT JOIN visits t ON t.id = v.visit_id"
    " LEFT JOIN visits l ON l.id = (SELECT id FROM visits WHERE visitor_id = v.id"
    " ORDER BY started_at DESC LIMIT 1)"
    " WHERE v.id = ?1"
)


def visitor_state(
    db: sqlite_utils.Database, visitor_id: str, since: datetime
) -> VisitorState | None:
    """The stored visitor ``visitor_id`` (None: not stored), its visits counted from
    ``since``."""
    row = db.conn.execute(_VISITOR_STATE, (visitor_id, iso(since))).fetchone()
    return VisitorState(*row) if row else None


def insert_visit(
    db: sqlite_utils.Database,
    visit_id: str,
    visitor_id: str,
    *,
    now: datetime,
    source: str | None = None,
    source_rule: str | None = None,
    landing_url: str | None = None,
    referrer: str | None = None,
    utm: dict[str, str | None] | None = None,
    click_ids: dict[str, str] | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    signals: tuple[str | None, str | None, str | None, str | None] = (None, None, None, None),
) -> None:
    """A new visit (first page view at ``now``); the visitor must exist.

    ``utm`` keys are ``source``, ``medium``, ``campaign``, ``term``, ``content``
    (with or without the ``utm_`` prefix); ``signals``: what the page reported (time
    zone, language, GA client and session ids), as ``note_visit_signals`` takes them.
    """
    at = iso(now)
    utm = {k.removeprefix("utm_"): v for k, v in (utm or {}).items()}
    db.conn.execute(
        _INSERT_VISIT,
        (
            visit_id,
            visitor_id,
            at,
            at,
            source,
            source_rule,
            landing_url,
            referrer,
            *(utm.get(k) for k in _UTM),
            json.dumps(click_ids or {}, sort_keys=True),
            ip,
            user_agent,
            *signals,
        ),
    )


def touch_visit(
    db: sqlite_utils.Database,
    visit_id: str,
    now: datetime,
    *,
    page_view: bool = True,
    visitor: bool = True,
) -> bool:
    """Another page view (or, ``page_view=False``, a heartbeat) of the visit, and its
    visitor seen (``visitor=False``: the caller writes the visitor's row itself).

    False if there is no such visit.
    """
    at = iso(now)
    cur = db.conn.execute(_TOUCH_VISIT, (at, int(page_view), visit_id))
    if not cur.rowcount:
        return False
    if visitor:
        db.conn.execute(_TOUCH_VISITOR, (at, visit_id))
    return True


@dataclass(frozen=True)
class PageViews:
    """Activity answered from memory, written in one batch (``record_page_views``)."""

    visits: dict[str, tuple[datetime, int]]  # visit id -> (latest activity, page views)
    visitors: dict[str, datetime]  # visitor id -> latest activity
    renewals: dict[int, tuple[str, datetime, datetime]]  # lease id -> (number, at, expires_at)
    free_at: dict[str, datetime] = field(default_factory=dict)  # number -> expiry + cooldown


def record_page_views(db: sqlite_utils.Database, views: PageViews) -> None:
    db.conn.executemany(
        _TOUCH_VISIT, [(iso(at), pages, vid) for vid, (at, pages) in views.visits.items()]
    )
    db.conn.executemany(_SEEN_VISITOR, [(iso(at), vid) for vid, at in views.visitors.items()])
    db.conn.executemany(
        _RENEW_LEASE,
        [(iso(at), iso(until), lid) for lid, (_n, at, until) in views.renewals.items()],
    )
    db.conn.executemany(
        _CONFIRMED_ACTIVITY,
        [
            (iso(at), iso(views.free_at.get(number, until)), number)
            for number, at, until in views.renewals.values()
        ],
    )
    index = lease_index.of(db)
    if index is not None:
        for lease_id, (number, at, until) in views.renewals.items():
            index.renewed(number, lease_id, at, until)


_VISIT_SIGNALS = (
    "UPDATE visits SET time_zone = coalesce(?, time_zone), language = coalesce(?, language),"
    " ga_client_id = coalesce(?, ga_client_id), ga_session_id = coalesce(?, ga_session_id)"
    " WHERE id = ?"
)


def note_visit_signals(
    db: sqlite_utils.Database,
    visit_id: str,
    *,
    time_zone: str | None = None,
    language: str | None = None,
    ga_client_id: str | None = None,
    ga_session_id: str | None = None,
) -> None:
    """What the page reported with a page view of the visit; what it did not report keeps
    its earlier value (Google Analytics may set its cookies after the first page)."""
    db.conn.execute(_VISIT_SIGNALS, (time_zone, language, ga_client_id, ga_session_id, visit_id))


def visitor_time_zones(db: sqlite_utils.Database, visitor_ids: list[str]) -> dict[str, str]:
    """The browser time zone of each visitor's latest visit that reported one."""
    if not visitor_ids:
        return {}
    rows = db.conn.execute(
        "SELECT visitor_id, time_zone FROM visits"
        " WHERE visitor_id IN (SELECT value FROM json_each(?)) AND time_zone IS NOT NULL"
        " ORDER BY started_at",
        (json.dumps(visitor_ids),),
    )
    return dict(rows.fetchall())


def get_visit(db: sqlite_utils.Database, visit_id: str) -> dict[str, Any] | None:
    row = _one(db, "SELECT * FROM visits WHERE id = ?", (visit_id,))
    if row is not None:
        row["click_ids"] = json.loads(row.pop("click_ids_json"))
    return row


# --- leases ----------------------------------------------------------------

_ACTIVE_LEASES = (
    f"SELECT {_LEASE_COLS} FROM leases"
    " WHERE number IN (SELECT value FROM json_each(?)) AND expires_at > ?"
)
# confirmed activity only: a lease that expired unconfirmed leaves its number free
_LAST_ACTIVE = (
    "SELECT j.value, (SELECT last_active_at FROM tracking_numbers WHERE number = j.value)"
    " FROM json_each(?) AS j"
)
_INSERT_LEASE = (
    "INSERT INTO leases (number, pool, visitor_id, visit_id, leased_at, last_active_at,"
    " expires_at, shared, client) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_RENEW_LEASE = (
    "UPDATE leases SET last_active_at = max(last_active_at, ?), expires_at = ? WHERE id = ?"
)
# a renewal is confirmed activity: it moves the number's place in the hand-out order
_CONFIRMED_ACTIVITY = (
    "UPDATE tracking_numbers SET last_active_at = max(coalesce(last_active_at, ''), ?1),"
    " free_at = max(coalesce(free_at, ''), ?2) WHERE number = ?3"
)
# a new lease holds its number until it expires, without making it rest after that
_HELD_UNTIL = (
    "UPDATE tracking_numbers SET held_until = max(coalesce(held_until, ''), ?1),"
    " free_at = max(coalesce(free_at, ''), ?1) WHERE number = ?2"
)
_HAND_OUT = (
    "SELECT number, last_active_at, held_until, free_at FROM tracking_numbers"
    " INDEXED BY idx_tracking_numbers_hand_out"
    " WHERE pool = ? AND status = 'active' ORDER BY free_at LIMIT 1"
)
_NUMBER_STATE = (
    "SELECT number, last_active_at, held_until, free_at FROM tracking_numbers"
    " WHERE number = ? AND pool = ? AND status = 'active'"
)
_LATEST_LEASE = (
    "SELECT number FROM leases INDEXED BY idx_leases_visitor WHERE visitor_id = ? AND pool = ?"
    " ORDER BY id DESC LIMIT 1"
)
# a closed page's holder has left: its number is resting, not held
_HOLDERS = (
    "SELECT count(*) FROM leases INDEXED BY idx_leases_number_expires"
    " WHERE number = ? AND expires_at > ? AND (closed_at IS NULL OR closed_at < last_active_at)"
)
_CLIENT_LEASES = (
    f"SELECT {_LEASE_COLS} FROM leases INDEXED BY idx_leases_client"
    " WHERE client = ? AND pool = ? AND expires_at > ? AND shared = 0"
)
_ACTIVE_LEASE = (
    f"SELECT {_LEASE_COLS} FROM leases WHERE visitor_id = ? AND pool = ? AND expires_at > ?"
    " ORDER BY last_active_at DESC LIMIT 1"
)
# Who held the number at some time in [since, until]: leases that started by
# ``until`` and had not expired before ``since``. The range on expires_at keeps
# the scan to the window however long the number's history is.
_LEASE_HISTORY = (
    f"SELECT {_LEASE_COLS} FROM leases INDEXED BY idx_leases_number_expires"
    " WHERE number = ? AND expires_at >= ? AND leased_at <= ? ORDER BY leased_at, id"
)


def pool_numbers(db: sqlite_utils.Database, pool: str) -> list[str]:
    """The active inventory numbers of a pool."""
    rows = db.conn.execute(
        "SELECT number FROM tracking_numbers WHERE pool = ? AND status = 'active' ORDER BY number",
        (pool,),
    )
    return [r[0] for r in rows]


def in_pool(db: sqlite_utils.Database, number: str, pool: str) -> bool:
    """``number`` is still an active number of ``pool`` (not released, not moved)."""
    row = db.conn.execute(
        "SELECT 1 FROM tracking_numbers WHERE number = ? AND pool = ? AND status = 'active'",
        (number, pool),
    ).fetchone()
    return row is not None


def pool_view(db: sqlite_utils.Database, pool: Pool, numbers: list[str], now: datetime) -> PoolView:
    """Per number: its active leases and the last activity of anyone who held it.

    Two queries whatever the history: active leases by (number, expires_at),
    then each number's latest activity by (number, last_active_at) (one
    seek to the end of the number's index range).
    """
    numbers = list(dict.fromkeys(numbers))
    if not numbers:
        return PoolView(pool, ())
    wanted = json.dumps(numbers)
    holders: dict[str, list[Lease]] = {n: [] for n in numbers}
    for row in db.conn.execute(_ACTIVE_LEASES, (wanted, iso(now))):
        holders[row[1]].append(_lease(row))
    last = dict(db.conn.execute(_LAST_ACTIVE, (wanted,)).fetchall())
    return PoolView(
        pool,
        tuple(
            NumberState(
                n,
                parse_iso(last[n]) if last.get(n) else None,
                tuple(sorted(holders[n], key=lambda h: (h.leased_at, h.id or 0))),
            )
            for n in numbers
        ),
    )


def next_candidate(
    db: sqlite_utils.Database, pool: str, now: datetime, confirm_seconds: int
) -> Candidate | None:
    """The number ``hand_out`` weighs for a new visitor, in O(log n).

    One seek in (pool, status, free_at): the number free first (never used
    first). ``None``: the pool has no number.
    """
    row = db.conn.execute(_HAND_OUT, (pool,)).fetchone()
    return None if row is None else _candidate(db, row, now, confirm_seconds)


def _candidate(
    db: sqlite_utils.Database, row: tuple, now: datetime, confirm_seconds: int
) -> Candidate:
    at = iso(now)
    number, last, held_until, free_at = row
    last_at = parse_iso(last) if last else None
    released = False
    if held_until is not None and held_until <= at:
        started = parse_iso(held_until) - timedelta(seconds=confirm_seconds)
        released = last_at is None or last_at < started  # no heartbeat since it was taken
    # a number free at ``now`` has no active lease (``free_at`` is at or past every
    # lease's end): only a number still held needs its holders counted
    free = free_at is None or free_at <= at
    holders = 0 if free else db.conn.execute(_HOLDERS, (number, at)).fetchone()[0]
    return Candidate(number, last_at, holders, released, parse_iso(free_at) if free_at else None)


def previous_number(
    db: sqlite_utils.Database, visitor_id: str, pool: str, now: datetime, confirm_seconds: int
) -> Candidate | None:
    """The number of the visitor's latest lease of ``pool``, if it is free again now
    (a page that came back after its unconfirmed lease ended gets its number back)."""
    row = db.conn.execute(_LATEST_LEASE, (visitor_id, pool)).fetchone()
    if row is None:
        return None
    found = db.conn.execute(_NUMBER_STATE, (row[0], pool)).fetchone()
    if found is None or (found[3] is not None and found[3] > iso(now)):
        return None
    return _candidate(db, found, now, confirm_seconds)


def client_leases(
    db: sqlite_utils.Database, pool: str, client: str, now: datetime
) -> tuple[Lease, ...]:
    """The exclusive leases of ``pool`` that ``client`` holds at ``now``."""
    rows = db.conn.execute(_CLIENT_LEASES, (client, pool, iso(now)))
    return tuple(_lease(r) for r in rows)


def insert_lease(
    db: sqlite_utils.Database,
    *,
    number: str,
    pool: str,
    visitor_id: str,
    visit_id: str | None,
    now: datetime,
    expires_at: datetime,
    shared: bool = False,
    client: str | None = None,
) -> int:
    """A new lease: it holds ``number`` until ``expires_at`` (its first renewal confirms it)."""
    at = iso(now)
    cur = db.conn.execute(
        _INSERT_LEASE,
        (number, pool, visitor_id, visit_id, at, at, iso(expires_at), int(shared), client),
    )
    lease_id: int = cur.lastrowid  # type: ignore[assignment]
    db.conn.execute(_HELD_UNTIL, (iso(expires_at), number))
    index = lease_index.of(db)
    if index is not None:
        held_from = stored(now)
        index.added(
            Lease(
                visitor_id,
                held_from,
                held_from,
                stored(expires_at),
                visit_id,
                shared,
                lease_id,
                number,
                pool,
            )
        )
    return lease_id


def renew_lease(
    db: sqlite_utils.Database,
    lease_id: int,
    now: datetime,
    expires_at: datetime,
    *,
    number: str | None = None,
    rest: timedelta = timedelta(0),
) -> None:
    """The holder was active at ``now``: the lease now ends at ``expires_at``.

    Confirmed activity: the number is free again ``rest`` (the pool's cooldown)
    after that. ``number`` (the lease's) spares a lookup.
    """
    db.conn.execute(_RENEW_LEASE, (iso(now), iso(expires_at), lease_id))
    if number is None:
        row = db.conn.execute("SELECT number FROM leases WHERE id = ?", (lease_id,)).fetchone()
        number = row[0] if row else None
    if number is None:
        return
    db.conn.execute(_CONFIRMED_ACTIVITY, (iso(now), iso(expires_at + rest), number))
    index = lease_index.of(db)
    if index is not None:
        index.renewed(number, lease_id, now, expires_at)


# --- the page's close beacon ------------------------------------------------

CLOSE_GRACE = timedelta(seconds=2)
_OPEN_LEASES = (
    f"SELECT {_LEASE_COLS} FROM leases INDEXED BY idx_leases_visitor WHERE visitor_id = ?"
    " AND expires_at > ? AND (closed_at IS NULL OR closed_at < last_active_at)"
)
_CLOSE = "UPDATE leases SET closed_at = ? WHERE id = ?"
_REST_FROM = "UPDATE tracking_numbers SET free_at = min(free_at, ?) WHERE number = ? AND pool = ?"


def close_leases(
    db: sqlite_utils.Database, visitor_id: str, now: datetime, pools: dict[str, Pool]
) -> int:
    """The visitor's page closed at ``now``: their open leases are closed; how many.

    A closed page's holder counts as one who left (``core.pools.rests_until``): the
    number is resting, not held, and goes to a new visitor ``cooldown_minutes`` after
    the close instead of after the lease's tail. A renewal reopens the lease (its
    activity comes after the close). A close within ``CLOSE_GRACE`` of the lease's
    last activity is ignored: the beacon of the page left behind may arrive after the
    next page's visit (another connection), and must not close the page now open.
    """
    at = iso(now)
    rows = db.conn.execute(_OPEN_LEASES, (visitor_id, at)).fetchall()
    index = lease_index.of(db)
    closed = 0
    for row in rows:
        lease = _lease(row)
        if now - lease.last_active_at < CLOSE_GRACE:
            continue
        db.conn.execute(_CLOSE, (at, lease.id))
        closed += 1
        if index is not None and lease.id is not None:
            index.closed(lease.number, lease.id, now)
        pool = pools.get(lease.pool)
        if pool is None:
            continue
        # every lease that may still keep the number: active, or expired within a cooldown
        since = iso(now - timedelta(minutes=pool.cooldown_minutes))
        held = [_lease(r) for r in db.conn.execute(_NUMBER_LEASES, (lease.number, since))]
        ends = [rests_until(h, pool) for h in held]  # the closed lease's own among them
        db.conn.execute(_REST_FROM, (iso(max(ends)), lease.number, lease.pool))
    return closed


_NUMBER_LEASES = (
    f"SELECT {_LEASE_COLS} FROM leases INDEXED BY idx_leases_number_expires"
    " WHERE number = ? AND expires_at > ?"
)


def active_lease(
    db: sqlite_utils.Database, visitor_id: str, pool: str, now: datetime
) -> Lease | None:
    row = db.conn.execute(_ACTIVE_LEASE, (visitor_id, pool, iso(now))).fetchone()
    return _lease(row) if row else None


# ``_ACTIVE_LEASE`` and ``in_pool`` of its number in one statement
_RENEWABLE_LEASE = (
    f"SELECT {_LEASE_COLS}, EXISTS (SELECT 1 FROM tracking_numbers t"
    " WHERE t.number = leases.number AND t.pool = ?2 AND t.status = 'active')"
    " FROM leases WHERE visitor_id = ?1 AND pool = ?2 AND expires_at > ?3"
    " ORDER BY last_active_at DESC LIMIT 1"
)


def renewable_lease(
    db: sqlite_utils.Database, visitor_id: str, pool: str, now: datetime
) -> Lease | None:
    """The visitor's ``active_lease`` of ``pool`` if its number is still ``in_pool``
    (a released or moved number is not renewed): None otherwise."""
    row = db.conn.execute(_RENEWABLE_LEASE, (visitor_id, pool, iso(now))).fetchone()
    return _lease(row[:-1]) if row and row[-1] else None


def get_lease(db: sqlite_utils.Database, lease_id: int) -> Lease | None:
    row = db.conn.execute(f"SELECT {_LEASE_COLS} FROM leases WHERE id = ?", (lease_id,)).fetchone()
    return _lease(row) if row else None


def lease_history(
    db: sqlite_utils.Database, number: str, since: datetime, until: datetime
) -> list[Lease]:
    """Every lease that held ``number`` at some time in ``[since, until]``, oldest first.

    From the writer's lease index when it has one (the daemon), else from the table.
    """
    index = lease_index.of(db)
    if index is not None:
        return index.history(number, since, until)
    rows = db.conn.execute(_LEASE_HISTORY, (number, iso(since), iso(until)))
    return [_lease(r) for r in rows]


def record_assignment(
    db: sqlite_utils.Database,
    view: PoolView,
    assignment: Assignment,
    *,
    visitor_id: str,
    visit_id: str | None,
    now: datetime,
    client: str | None = None,
) -> int | None:
    """Store what ``assign`` or ``hand_out`` decided; returns the lease id (None: no lease).

    ``view`` (the pool's, or a ``PoolView`` without numbers) names the pool; the
    peak counter counts the pool's active leases (the writer's lease index keeps
    them, else the table is read).
    """
    pool = view.pool.name
    with atomic(db, "lease"):
        if assignment.overflow:
            bump_pool_counters(db, pool, now=now, overflows=1)
            return None
        if assignment.number is None or assignment.expires_at is None:
            return None
        if assignment.renewed and assignment.lease_id is not None:
            renew_lease(
                db,
                assignment.lease_id,
                now,
                assignment.expires_at,
                number=assignment.number,
                rest=timedelta(minutes=view.pool.cooldown_minutes),
            )
            return assignment.lease_id
        lease_id = insert_lease(
            db,
            number=assignment.number,
            pool=pool,
            visitor_id=visitor_id,
            visit_id=visit_id,
            now=now,
            expires_at=assignment.expires_at,
            shared=assignment.shared,
            client=client,
        )
        bump_pool_counters(
            db,
            pool,
            now=now,
            leases=1,
            shares=int(assignment.shared and not assignment.capped),
            capped=int(assignment.capped),
            unconfirmed=int(assignment.unconfirmed_released),
            concurrent=active_leases(db, pool, now),
        )
        return lease_id


def active_leases(db: sqlite_utils.Database, pool: str, now: datetime) -> int:
    """Leases of ``pool`` active at ``now`` (from the writer's index when it has one)."""
    index = lease_index.of(db)
    if index is not None:
        return index.active_leases(pool, now)
    row = db.conn.execute(
        "SELECT count(*) FROM leases WHERE number IN"
        " (SELECT number FROM tracking_numbers WHERE pool = ?) AND pool = ? AND expires_at > ?",
        (pool, pool, iso(now)),
    ).fetchone()
    return row[0]


# --- per-pool counters -----------------------------------------------------


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
    row = _one(db, "SELECT * FROM pool_stats WHERE pool = ?", (pool,))
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


def _one(db: sqlite_utils.Database, sql: str, args: tuple) -> dict[str, Any] | None:
    cur = db.conn.execute(sql, args)
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row, strict=True))


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


def pool_call_delays(
    db: sqlite_utils.Database, pool: str, since: datetime
) -> list[tuple[float, float]]:
    """``(minutes, weight)``: how long after the caller's last activity the pool's calls came.

    Each call counts once, spread over its candidates by their probability (an
    open page: 0 minutes) and its "someone else" share (a days-later call,
    ``LATE_MINUTES``), so that the calls no one could attribute are not left out.
    """
    rows = db.conn.execute(
        "SELECT attribution_candidates_json FROM calls WHERE pool = ? AND started_at >= ?",
        (pool, iso(since)),
    )
    delays: list[tuple[float, float]] = []
    for (text,) in rows:
        for cand in json.loads(text or "[]"):
            weight = float(cand.get("weight") or 0)
            if weight <= 0:
                continue
            if cand.get("someone_else") or (cand.get("idle_minutes") or 0) < 0:
                delays.append((LATE_MINUTES, weight))
            else:
                delays.append(
                    (0.0 if cand.get("open_page") else float(cand["idle_minutes"]), weight)
                )
    return delays


LATE_MINUTES = 2 * 24 * 60  # a call from outside the window: replayed as two days later
