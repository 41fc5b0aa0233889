"""Pool leases: which visitor holds which tracking number, and since when.

Hot path (a new visitor on a pool): ``next_candidate`` (one seek in the hand-out
index of tracking_numbers), ``hand_out`` in the core, ``record_assignment``; a
returning visitor's lease is renewed by id. ``pool_view`` reads a whole pool (for
``pools stats``). Times are stored as ISO 8601 UTC text (``core.clock.iso``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlite_utils

from ctm_pbx.adapters.store import lease_index, visitors
from ctm_pbx.adapters.store.db import atomic
from ctm_pbx.adapters.store.lease_index import LEASE_COLS as _LEASE_COLS
from ctm_pbx.adapters.store.lease_index import lease_from_row as _lease
from ctm_pbx.adapters.store.lease_index import stored
from ctm_pbx.adapters.store.pool_stats import bump_pool_counters
from ctm_pbx.core.clock import iso, parse_iso
from ctm_pbx.core.model import Pool
from ctm_pbx.core.pools import (
    Assignment,
    Candidate,
    Lease,
    NumberState,
    PoolView,
    in_line_until,
    rests_until,
)

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
# A renewal is confirmed activity: it moves the number's place in the hand-out order.
# Once that place is past every unconfirmed lease's (``bounce_free_at``: where it falls
# back to if they bounce), nothing is left to fall back from.
_CONFIRMED_ACTIVITY = (
    "UPDATE tracking_numbers SET last_active_at = max(coalesce(last_active_at, ''), ?1),"
    " free_at = max(coalesce(free_at, ''), ?2),"
    " bounce_free_at = CASE WHEN ?2 >= coalesce(free_at, '') THEN NULL"
    " ELSE max(bounce_free_at, ?2) END WHERE number = ?3"
)
# A new lease holds its number until it expires (?1), without making it rest after that;
# until then the number stands at ?2 in the hand-out order (``core.pools.in_line_until``)
# and falls back to ``bounce_free_at`` when the lease expires unconfirmed.
_NEW_LEASE = (
    "UPDATE tracking_numbers SET held_until = max(coalesce(held_until, ''), ?1),"
    " bounce_free_at = CASE WHEN ?2 > coalesce(free_at, '')"
    " THEN max(coalesce(bounce_free_at, free_at, ''), ?1) ELSE max(bounce_free_at, ?1) END,"
    " free_at = max(coalesce(free_at, ''), ?2) WHERE number = ?3"
)
# the unconfirmed leases that ended without a heartbeat (bounces) give their numbers'
# places back: one range of a partial index, each lease settled once
_BOUNCED = (
    "UPDATE tracking_numbers INDEXED BY idx_tracking_numbers_unconfirmed"
    " SET free_at = min(free_at, bounce_free_at), bounce_free_at = NULL"
    " WHERE bounce_free_at IS NOT NULL AND held_until <= ?"
)
_NUMBER_COLS = "number, last_active_at, held_until, free_at, bounce_free_at"
_HAND_OUT = (
    f"SELECT {_NUMBER_COLS} FROM tracking_numbers"
    " INDEXED BY idx_tracking_numbers_hand_out"
    " WHERE pool = ? AND status = 'active' ORDER BY free_at LIMIT 1"
)
_NUMBER_STATE = (
    f"SELECT {_NUMBER_COLS} FROM tracking_numbers"
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
    first). ``None``: the pool has no number. A write first (this is the writer's
    path): numbers whose unconfirmed leases have all ended since the last call take
    their place back (``_BOUNCED``: a range of a partial index, each lease once).
    """
    db.conn.execute(_BOUNCED, (iso(now),))
    row = db.conn.execute(_HAND_OUT, (pool,)).fetchone()
    return None if row is None else _candidate(db, row, now, confirm_seconds)


def _candidate(
    db: sqlite_utils.Database, row: tuple, now: datetime, confirm_seconds: int
) -> Candidate:
    at = iso(now)
    number, last, held_until, free_at = row[:4]
    free_at = _free_at(row, at)
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
    if found is None:
        return None
    free_at = _free_at(found, iso(now))
    if free_at is not None and free_at > iso(now):
        return None
    return _candidate(db, found, now, confirm_seconds)


def _free_at(row: tuple, at: str) -> str | None:
    """The number's ``free_at`` at ``at``, its bounced unconfirmed leases settled (as
    ``_BOUNCED`` writes it)."""
    _number, _last, held_until, free_at, bounce = row
    if bounce is not None and held_until is not None and held_until <= at:
        return min(free_at, bounce) if free_at is not None else bounce
    return free_at


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
    in_line: datetime | None = None,
) -> int:
    """A new lease: it holds ``number`` until ``expires_at`` (its first renewal confirms it).

    Until then the number stands at ``in_line`` in the hand-out order (default:
    ``expires_at``); expired unconfirmed, it goes back to where it was, or to
    ``expires_at`` if that is later.
    """
    at = iso(now)
    cur = db.conn.execute(
        _INSERT_LEASE,
        (number, pool, visitor_id, visit_id, at, at, iso(expires_at), int(shared), client),
    )
    lease_id: int = cur.lastrowid  # type: ignore[assignment]
    place = max(in_line or expires_at, expires_at)
    db.conn.execute(_NEW_LEASE, (iso(expires_at), iso(place), number))
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
_REST_FROM = (
    "UPDATE tracking_numbers SET free_at = min(free_at, ?1),"
    " bounce_free_at = min(bounce_free_at, ?2) WHERE number = ?3 AND pool = ?4"
)


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
        # the closed lease's own among them; a live unconfirmed one keeps its place
        ends = [rests_until(h, pool) for h in held]
        places = [in_line_until(h, pool, now) for h in held]
        db.conn.execute(_REST_FROM, (iso(max(places)), iso(max(ends)), lease.number, lease.pool))
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
            in_line=assignment.in_line_until,
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


# --- activity answered from memory, written in one batch -----------------------


@dataclass(frozen=True)
class PageViews:
    """Activity answered from memory, written in one batch (``record_page_views``)."""

    visits: dict[str, tuple[datetime, int]]  # visit id -> (latest activity, page views)
    visitors: dict[str, datetime]  # visitor id -> latest activity
    renewals: dict[int, tuple[str, datetime, datetime]]  # lease id -> (number, at, expires_at)
    free_at: dict[str, datetime] = field(default_factory=dict)  # number -> expiry + cooldown


def record_page_views(db: sqlite_utils.Database, views: PageViews) -> None:
    visitors.touch_visits(db, views.visits, views.visitors)
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
