"""Recent leases per number, in memory, beside the writer's connection.

A call to a pool number asks "who held this number in the last N hours?"
(``lease_history``). Read from SQLite that means turning every lease of the
window (a hundred or more on a busy number) into objects on every call; this
index keeps them as objects instead, so the lookup is a filter of a short list.

Rules that keep it equal to the table:

- It only ever *mirrors* the table. A number is loaded from SQL the first time
  it is asked for (with the window asked for); after that the store functions
  that write leases (``insert_lease``, ``renew_lease``) tell it what they wrote.
  A window reaching further back than what was loaded reloads the number.
- Anything rolled back makes it forget everything (``invalidate``): a failed job
  or commit is rare, and reloading is cheap, so there is no undo journal to get wrong.
- Leases that expired before the longest window asked for (and an hour of slack)
  are pruned as new leases arrive, so memory stays at about one window of leases.

Only the single writer attaches one (``attach``); other connections (the CLI)
read the table directly.
"""

from __future__ import annotations

import heapq
import weakref
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import sqlite_utils

from ctm_pbx.core.clock import iso, parse_iso
from ctm_pbx.core.pools import Lease

PRUNE_EVERY = 1024  # new leases between two prunes
# Read (and keep) this much more history than asked for, so that the next call's
# window, starting a little earlier or later, is still covered.
SLACK = timedelta(hours=1)

LEASE_COLS = (
    "id, number, pool, visitor_id, visit_id, leased_at, last_active_at, expires_at, shared,"
    " closed_at"
)
_LOAD = (
    f"SELECT {LEASE_COLS} FROM leases INDEXED BY idx_leases_number_expires"
    " WHERE number = ? AND expires_at >= ?"
)
_ONE = f"SELECT {LEASE_COLS} FROM leases WHERE id = ?"


def lease_from_row(row: tuple) -> Lease:
    id_, number, pool, visitor_id, visit_id, leased_at, last_active_at, expires_at, shared = row[:9]
    closed_at = row[9] if len(row) > 9 else None
    return Lease(
        visitor_id=visitor_id,
        leased_at=parse_iso(leased_at),
        last_active_at=parse_iso(last_active_at),
        expires_at=parse_iso(expires_at),
        visit_id=visit_id,
        shared=bool(shared),
        id=id_,
        number=number,
        pool=pool,
        closed_at=parse_iso(closed_at) if closed_at else None,
    )


def stored(dt: datetime) -> datetime:
    """``dt`` as the table holds it: UTC, to the millisecond."""
    return parse_iso(iso(dt))


@dataclass
class _Active:
    """A pool's active leases: their expiry, and a heap of it (with stale entries)."""

    expiry: dict[int, datetime] = field(default_factory=dict)  # lease id -> expires_at
    heap: list[tuple[datetime, int]] = field(default_factory=list)


_ACTIVE = (
    "SELECT id, expires_at FROM leases WHERE number IN"
    " (SELECT number FROM tracking_numbers WHERE pool = ?) AND pool = ? AND expires_at > ?"
)


@dataclass
class _Number:
    since: datetime  # every lease of the number that expired at or after this is held
    leases: dict[int, Lease] = field(default_factory=dict)


class LeaseIndex:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db
        self._numbers: dict[str, _Number] = {}
        self._keep = timedelta(0)  # the longest window asked for
        self._added = 0
        self.loads = 0  # numbers read from SQL (for tests and benchmarks)
        self._active: dict[str, _Active] = {}  # pool -> its active leases
        self._lease_pool: dict[int, str] = {}  # active lease id -> its pool

    def history(self, number: str, since: datetime, until: datetime) -> list[Lease]:
        """Every lease that held ``number`` at some time in ``[since, until]``, oldest first."""
        since, until = stored(since), stored(until)  # compared as the table compares its text
        self._keep = max(self._keep, until - since)
        entry = self._numbers.get(number)
        if entry is None or since < entry.since:
            entry = self._load(number, since - SLACK)
        found = [
            lease
            for lease in entry.leases.values()
            if lease.expires_at >= since and lease.leased_at <= until
        ]
        found.sort(key=lambda lease: (lease.leased_at, lease.id or 0))
        return found

    def active_leases(self, pool: str, now: datetime) -> int:
        """How many leases of ``pool`` are active at ``now``: O(log n) a lease, amortised.

        Read from SQL the first time a pool is asked for; kept by ``added`` and
        ``renewed`` after that (the pool's peak counter needs it on every new lease).
        """
        active = self._active.get(pool)
        if active is None:
            active = self._active[pool] = _Active()
            for lease_id, until in self._db.conn.execute(_ACTIVE, (pool, pool, iso(now))):
                self._track(active, pool, lease_id, parse_iso(until))
        now = stored(now)
        heap = active.heap
        while heap and heap[0][0] <= now:
            until, lease_id = heapq.heappop(heap)
            if active.expiry.get(lease_id) == until:
                del active.expiry[lease_id]
                self._lease_pool.pop(lease_id, None)
        if len(heap) > 2 * len(active.expiry) + 1024:  # renewals left stale entries
            active.heap = [(until, lid) for lid, until in active.expiry.items()]
            heapq.heapify(active.heap)
        return len(active.expiry)

    def _track(self, active: _Active, pool: str, lease_id: int, until: datetime) -> None:
        active.expiry[lease_id] = until
        self._lease_pool[lease_id] = pool
        heapq.heappush(active.heap, (until, lease_id))

    def added(self, lease: Lease) -> None:
        """``lease`` (with its id) was inserted."""
        active = self._active.get(lease.pool)
        if active is not None and lease.id is not None:
            self._track(active, lease.pool, lease.id, lease.expires_at)
        entry = self._numbers.get(lease.number)
        if entry is not None and lease.expires_at >= entry.since and lease.id is not None:
            entry.leases[lease.id] = lease
        self._added += 1
        if self._added % PRUNE_EVERY == 0:
            self.prune(lease.leased_at - self._keep - SLACK)

    def renewed(self, number: str, lease_id: int, now: datetime, expires_at: datetime) -> None:
        """The lease was renewed as ``renew_lease`` does it (activity is never moved back)."""
        pool = self._lease_pool.get(lease_id)
        if pool is not None and pool in self._active:
            self._track(self._active[pool], pool, lease_id, stored(expires_at))
        entry = self._numbers.get(number)
        if entry is None:
            return
        lease = entry.leases.get(lease_id)
        if lease is None:  # held, but from before the loaded window: read it as it is now
            row = self._db.conn.execute(_ONE, (lease_id,)).fetchone()
            if row is not None and row[1] == number:
                lease = lease_from_row(row)
                if lease.expires_at >= entry.since:
                    entry.leases[lease_id] = lease
            elif row is not None:  # renewed under another number: do not guess
                self._numbers.pop(number, None)
            return
        entry.leases[lease_id] = replace(
            lease,
            last_active_at=max(lease.last_active_at, stored(now)),
            expires_at=stored(expires_at),
        )

    def closed(self, number: str, lease_id: int, at: datetime) -> None:
        """The lease's page closed at ``at`` (``close_leases``)."""
        entry = self._numbers.get(number)
        if entry is None:
            return
        lease = entry.leases.get(lease_id)
        if lease is None:  # not among what was loaded: read the number again when asked
            self._numbers.pop(number, None)
            return
        entry.leases[lease_id] = replace(lease, closed_at=stored(at))

    def prune(self, before: datetime) -> None:
        """Forget leases that expired before ``before`` (never asked for again)."""
        for entry in self._numbers.values():
            if before <= entry.since:
                continue
            gone = [k for k, lease in entry.leases.items() if lease.expires_at < before]
            for key in gone:
                del entry.leases[key]
            entry.since = before

    def clear(self) -> None:
        self._numbers.clear()
        self._active.clear()
        self._lease_pool.clear()

    def size(self) -> int:
        return sum(len(e.leases) for e in self._numbers.values())

    def _load(self, number: str, since: datetime) -> _Number:
        rows = self._db.conn.execute(_LOAD, (number, iso(since))).fetchall()
        entry = _Number(since, {row[0]: lease_from_row(row) for row in rows})
        self._numbers[number] = entry
        self.loads += 1
        return entry


_attached: weakref.WeakKeyDictionary[sqlite_utils.Database, LeaseIndex] = (
    weakref.WeakKeyDictionary()
)


def attach(db: sqlite_utils.Database) -> LeaseIndex:
    """Keep an index for ``db`` (the writer's connection); the store functions use it."""
    index = _attached.get(db)
    if index is None:
        index = _attached[db] = LeaseIndex(db)
    return index


def of(db: sqlite_utils.Database) -> LeaseIndex | None:
    return _attached.get(db)


def invalidate(db: sqlite_utils.Database) -> None:
    """Something was rolled back: forget what the index holds (it reloads as asked)."""
    index = _attached.get(db)
    if index is not None:
        index.clear()
