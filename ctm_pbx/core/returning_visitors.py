"""Answering a returning visitor from what their previous request left behind.

Most requests to the visit API are the same visitor's next page or heartbeat:
same source, same visit, same pool numbers, only the leases to renew. Given
what the store answered last time (``KnownVisitor``) this decides, without the
store, whether that is all there is to it (``QuickAnswer``) or whether the store
must decide (``None``): a new visit, a new source, a lease that ran out, an
overflow number, or memory older than ``REFRESH_AFTER``. ``RememberedVisitors``
holds those last answers, a bounded number of them, forgetting in O(1).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ctm_pbx.core.model import Pool, Source
from ctm_pbx.core.pools import lease_expiry
from ctm_pbx.core.sources import SourceDecision, Touch, attribute_visitor

VISIT_IDLE = timedelta(minutes=30)  # a page view after this much idle time starts a new visit
ARRIVALS = ("landing", "referrer")  # decision phases that mean "came from somewhere": a new visit
REFRESH_AFTER = timedelta(minutes=5)  # ask the store again at least this often
SWEEP = 2  # stale visitors a remembered one forgets at most: more than it adds, never a scan


@dataclass(frozen=True)
class HeldNumber:
    """The number shown for one target: a pool lease, or the source's static number."""

    target: str  # the target's E.164 number
    number: str
    pool: str | None = None  # None: a static number (source-level tracking)
    shared: bool = False
    lease_id: int | None = None  # None with a pool: the overflow number (no lease)
    expires_at: datetime | None = None

    def shown(self) -> dict:
        return {"number": self.number, "pool": self.pool, "shared": self.shared}


@dataclass(frozen=True)
class KnownVisitor:
    visitor_id: str
    touch: Touch | None  # the source the visitor is attributed to
    visit_id: str | None  # the visit that set it
    page_visit: str  # the visit page views are counted in
    last_active_at: datetime  # of that visit
    numbers: tuple[HeldNumber, ...]
    loaded_at: datetime  # when the store last decided for this visitor

    def can_be_remembered(self) -> bool:
        """Only leases and static numbers repeat; an overflow number must retry the pool."""
        return all(h.lease_id is not None or h.pool is None for h in self.numbers)

    def stale(self, now: datetime) -> bool:
        """Memory that can no longer answer at ``now`` (or later): its store answer is too
        old, its visit ended or one of its leases ran out."""
        if now >= self.loaded_at + REFRESH_AFTER or now >= self.last_active_at + VISIT_IDLE:
            return True
        return any(h.expires_at is not None and h.expires_at <= now for h in self.numbers)


# a remembered visitor as one flat tuple of strings, numbers and datetimes: the cycle
# collector stops tracking such a tuple when it first meets it, so a full memory costs
# its pauses nothing (a tuple of tuples can take a collection per level)
_Packed = tuple
_NUMBER = 6  # the fields of each held number, after the visitor's own


def _pack(known: KnownVisitor) -> _Packed:
    touch = known.touch
    head = (
        known.visitor_id,
        known.visit_id,
        known.page_visit,
        known.last_active_at,
        known.loaded_at,
        touch is not None,
        touch.source if touch else None,
        touch.rule if touch else None,
        touch.at if touch else None,
    )
    numbers = (
        value
        for h in known.numbers
        for value in (h.target, h.number, h.pool, h.shared, h.lease_id, h.expires_at)
    )
    return (*head, *numbers)


def _unpack(packed: _Packed) -> KnownVisitor:
    visitor_id, visit_id, page_visit, last_active_at, loaded_at, touched, *touch = packed[:9]
    rest = packed[9:]
    return KnownVisitor(
        visitor_id,
        Touch(*touch) if touched else None,
        visit_id,
        page_visit,
        last_active_at,
        tuple(HeldNumber(*rest[k : k + _NUMBER]) for k in range(0, len(rest), _NUMBER)),
        loaded_at,
    )


@dataclass
class RememberedVisitors:
    """The last answer of each returning visitor, at most ``capacity`` of them.

    Kept in the order the visitors were last answered (an ``OrderedDict``): the
    least recently answered is the first to go stale (its leases aside), and the
    first to go when the memory is full. Remembering a visitor forgets at most ``SWEEP`` stale
    ones and then, if still full, the least recently answered: never a scan, so
    a full memory costs a request what an empty one does. Each is kept as plain
    tuples, not objects, which Python's cycle collector does not track: a full
    collection would otherwise walk every remembered visitor, with the event loop
    (and the calls on it) waiting.
    """

    capacity: int = 200_000
    _known: OrderedDict[str, _Packed] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        return len(self._known)

    def __contains__(self, visitor_id: object) -> bool:
        return visitor_id in self._known

    def get(self, visitor_id: str) -> KnownVisitor | None:
        packed = self._known.get(visitor_id)
        return None if packed is None else _unpack(packed)

    def forget(self, visitor_id: str) -> None:
        self._known.pop(visitor_id, None)

    def remember(self, known: KnownVisitor, now: datetime) -> None:
        """``known`` is the visitor's latest answer, given at ``now``."""
        memory = self._known
        if known.visitor_id in memory:
            memory[known.visitor_id] = _pack(known)
            memory.move_to_end(known.visitor_id)
            return
        if self.capacity <= 0:
            return
        for _ in range(SWEEP):
            if not memory or not _unpack(next(iter(memory.values()))).stale(now):
                break
            memory.popitem(last=False)
        if len(memory) >= self.capacity:
            memory.popitem(last=False)
        memory[known.visitor_id] = _pack(known)


@dataclass(frozen=True)
class QuickAnswer:
    visitor: KnownVisitor  # what to remember now
    renewed: tuple[HeldNumber, ...]  # leases to renew, with their new expiry
    page_view: bool  # a page view (counted in the visit), not a heartbeat

    @property
    def expires_at(self) -> datetime | None:
        ends = [h.expires_at for h in self.renewed if h.expires_at is not None]
        return min(ends) if ends else None


def answer_known_visitor(
    known: KnownVisitor,
    decision: SourceDecision | None,
    sources: Mapping[str, Source],
    pools: Mapping[str, Pool],
    first_touch_days: int,
    now: datetime,
) -> QuickAnswer | None:
    """The answer to a page view (``decision``: its source) or a heartbeat (``None``)."""
    if not known.loaded_at <= now < known.loaded_at + REFRESH_AFTER:
        return None
    if not known.last_active_at <= now < known.last_active_at + VISIT_IDLE:
        return None
    if decision is not None:
        if decision.phase in ARRIVALS:
            return None
        touch, _why = attribute_visitor(known.touch, decision, sources, now, first_touch_days)
        if touch != known.touch:
            return None
    numbers: list[HeldNumber] = []
    renewed: list[HeldNumber] = []
    for held in known.numbers:
        if held.pool is None:
            numbers.append(held)
            continue
        pool = pools.get(held.pool)
        if held.lease_id is None or pool is None or held.expires_at is None:
            return None
        if held.expires_at <= now:
            return None
        held = HeldNumber(  # dataclasses.replace would cost as much as the rest of this path
            held.target, held.number, held.pool, held.shared, held.lease_id, lease_expiry(pool, now)
        )
        numbers.append(held)
        renewed.append(held)
    visitor = KnownVisitor(
        known.visitor_id,
        known.touch,
        known.visit_id,
        known.page_visit,
        now,
        tuple(numbers),
        known.loaded_at,
    )
    return QuickAnswer(visitor, tuple(renewed), page_view=decision is not None)
