"""Number pools: which tracking number a website visitor is shown.

Pure: the store builds a ``PoolView`` (per number, who holds it now and when
its holders were last active), ``assign`` decides, the store records it.

The design follows the team's attribution findings (a traffic simulation):

- calls made while the page is open are attributed almost perfectly; the loss
  is in calls made *after* the visitor left, when the number has gone to
  someone else. So what matters is how long a number rests after its last
  holder's last activity: hand out the number whose holders were active
  longest ago (least-recently-*active*, never-used first).
- a lease lives ``lease_minutes`` after the visitor's *last* activity (each
  page view or heartbeat renews it), then the number rests
  ``cooldown_minutes`` before it is free again.
- a pool never fails: when no number is free it shows the overflow number if
  one is configured, else it reuses the least recently active number (a
  resting one first, sharing a held one last, marked ``shared``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ctm_pbx.core.model import Pool

CTM_VISITORS_PER_NUMBER = 20  # CallTrackingMetrics' rule of thumb
FINDINGS_VISITORS_PER_NUMBER = 5  # >= 99 % same-day accuracy in the simulation

HELD, RESTING, FREE = "held", "resting", "free"


@dataclass(frozen=True)
class Lease:
    """One visitor holding one number, from ``leased_at`` until ``expires_at``.

    ``expires_at`` is ``last_active_at + lease_minutes``: renewing moves both.
    """

    visitor_id: str
    leased_at: datetime
    last_active_at: datetime
    expires_at: datetime
    visit_id: str | None = None
    shared: bool = False  # handed out while someone else held the number
    id: int | None = None  # the store's row id
    number: str = ""
    pool: str = ""
    closed_at: datetime | None = None  # the page said it closed (swap.js's beacon)

    def active(self, now: datetime) -> bool:
        return self.leased_at <= now < self.expires_at

    @property
    def closed(self) -> bool:
        """The page said it closed, and no renewal came since (a tab shown again renews)."""
        return self.closed_at is not None and self.closed_at >= self.last_active_at

    def left_at(self) -> datetime:
        """When the holder was last on the page: its close, else its last activity."""
        return self.closed_at if self.closed and self.closed_at else self.last_active_at


Holder = Lease  # a lease seen from the number it holds


@dataclass(frozen=True)
class NumberState:
    """One number of a pool: its active leases and its holders' last activity.

    ``last_active_at`` is the latest activity of anyone who ever held it
    (``None``: never used); ``holders`` are the leases active now.
    """

    number: str
    last_active_at: datetime | None = None
    holders: tuple[Lease, ...] = ()

    def active_holders(self, now: datetime) -> tuple[Lease, ...]:
        return tuple(h for h in self.holders if h.active(now))

    def holding(self, now: datetime) -> tuple[Lease, ...]:
        """The active leases whose page has not said it closed: who holds the number now
        (a closed page's holder has left; the number rests)."""
        return tuple(h for h in self.holders if h.active(now) and not h.closed)

    def last_activity(self) -> datetime | None:
        times = [h.last_active_at for h in self.holders]
        if self.last_active_at is not None:
            times.append(self.last_active_at)
        return max(times) if times else None


@dataclass(frozen=True)
class PoolView:
    pool: Pool
    numbers: tuple[NumberState, ...] = ()

    def active_leases(self, now: datetime) -> int:
        return sum(len(n.active_holders(now)) for n in self.numbers)


@dataclass(frozen=True)
class Assignment:
    """What to show a visitor.

    ``number`` is ``None`` for an empty pool (show the target's own number).
    A new lease is to be stored when ``expires_at`` is set and ``renewed`` is
    false; a renewal updates lease ``lease_id``; the overflow number and an
    empty pool store no lease.
    """

    number: str | None
    shared: bool = False
    renewed: bool = False
    reason: str = ""
    expires_at: datetime | None = None
    lease_id: int | None = None  # the lease renewed
    overflow: bool = False
    capped: bool = False  # the client held its cap: shown one of its own numbers
    unconfirmed_released: bool = False  # the number's last lease expired unconfirmed
    # a new unconfirmed lease's place in the hand-out order until it expires or is
    # confirmed (``in_line_until``); None: its expiry
    in_line_until: datetime | None = None

    @property
    def new_lease(self) -> bool:
        return self.number is not None and not self.renewed and not self.overflow


def lease_expiry(pool: Pool, now: datetime) -> datetime:
    """A lease taken or renewed at ``now`` expires ``lease_minutes`` later."""
    return now + timedelta(minutes=pool.lease_minutes)


def free_at(state: NumberState, pool: Pool) -> datetime | None:
    """When the number may go to a new visitor (``None``: never used, free now)."""
    last = state.last_activity()
    if last is None:
        return None
    return last + timedelta(minutes=pool.lease_minutes + pool.cooldown_minutes)


def rests_until(lease: Lease, pool: Pool) -> datetime:
    """When ``lease`` stops keeping its number from a new visitor.

    A confirmed lease (renewed at least once) keeps it until it expires and then for
    ``cooldown_minutes``; a closed page's holder is one who left (after leaving, not
    in the visit): the number rests ``cooldown_minutes`` from the close, without the
    lease's tail. An unconfirmed lease keeps it until it expires, with no rest.
    """
    rest = timedelta(minutes=pool.cooldown_minutes)
    if lease.last_active_at <= lease.leased_at:
        return lease.expires_at
    if lease.closed and lease.closed_at is not None:
        return min(lease.expires_at, lease.closed_at) + rest
    return lease.expires_at + rest


def in_line_until(lease: Lease, pool: Pool, now: datetime) -> datetime:
    """Where ``lease`` puts its number in the hand-out order at ``now`` (the store's
    ``free_at``): ``rests_until``, except while it is unconfirmed and live (no heartbeat
    yet, not expired, its page not closed): then as a holder active at ``leased_at``, so
    a number just handed out never goes before a resting one or one whose holder was
    active longer ago. Expired unconfirmed (a bounce), it is back to ``rests_until``: the
    number is free at the lease's first expiry, without a rest.
    """
    rests = rests_until(lease, pool)
    if lease.last_active_at <= lease.leased_at and not lease.closed and now < lease.expires_at:
        held = lease_expiry(pool, lease.leased_at) + timedelta(minutes=pool.cooldown_minutes)
        return max(rests, held)
    return rests


def number_status(state: NumberState, pool: Pool, now: datetime) -> str:
    """``held`` (an active lease), ``resting`` (cooldown not over) or ``free``."""
    if state.holding(now):
        return HELD
    ready = free_at(state, pool)
    return FREE if ready is None or now >= ready else RESTING


def renew(lease: Lease, now: datetime, pool: Pool) -> Lease:
    """The visitor was active at ``now``: the lease lives ``lease_minutes`` more."""
    return replace(
        lease, last_active_at=max(lease.last_active_at, now), expires_at=lease_expiry(pool, now)
    )


def assign(view: PoolView, visitor_id: str, now: datetime) -> Assignment:
    """The number to show ``visitor_id`` at ``now``. Never fails."""
    pool = view.pool
    if not view.numbers:
        return Assignment(None, reason="empty pool: show the target's own number")
    expires = lease_expiry(pool, now)

    own = [
        (state, lease)
        for state in view.numbers
        for lease in state.active_holders(now)
        if lease.visitor_id == visitor_id
    ]
    if own:
        state, lease = max(own, key=lambda sl: (sl[1].last_active_at, sl[1].leased_at))
        others = {h.visitor_id for h in state.holding(now)} - {visitor_id}
        reason = "renewed: the visitor holds this number"
        if others:
            reason += f" (shared with {len(others)} other{'s' if len(others) > 1 else ''})"
        return Assignment(
            state.number,
            shared=bool(others),
            renewed=True,
            reason=reason,
            expires_at=expires,
            lease_id=lease.id,
        )

    free = [s for s in view.numbers if number_status(s, pool, now) == FREE]
    if free:
        best = min(free, key=_least_recently_active)
        last = best.last_activity()
        if last is None:
            reason = "free number, never used"
        else:
            reason = f"free number, least recently active ({_minutes(now - last)} min ago)"
        return Assignment(best.number, reason=reason, expires_at=expires)

    if pool.overflow_number:
        return Assignment(
            pool.overflow_number,
            reason="pool exhausted: overflow number (no number free)",
            overflow=True,
        )

    best = min(view.numbers, key=lambda s: _least_recently_active(s, len(s.holding(now))))
    holders = best.holding(now)
    last = best.last_activity()
    idle = _minutes(now - last) if last is not None else 0
    if not holders:
        return Assignment(
            best.number,
            reason=f"pool exhausted: cooldown cut short, resting for {idle} min",
            expires_at=expires,
        )
    count = len({h.visitor_id for h in holders})
    return Assignment(
        best.number,
        shared=True,
        reason=(
            f"pool exhausted: shared with {count} holder{'s' if count > 1 else ''}"
            f" (least recently active, {idle} min ago)"
        ),
        expires_at=expires,
    )


@dataclass(frozen=True)
class Candidate:
    """The number a pool would hand out next: the one free first (never used first).

    ``free_at`` is the latest ``in_line_until`` of its leases: its last confirmed
    holder's activity + lease + cooldown, a live unconfirmed lease's start + lease +
    cooldown (as a holder active then), an expired unconfirmed lease's end. In that
    order, free numbers come least recently active first, then resting ones, then held
    ones, a number just handed out among those held by a visitor active now.
    ``released_unconfirmed``: an unconfirmed lease held it and expired without a
    heartbeat (counted when the number goes out again).
    """

    number: str
    last_active_at: datetime | None  # its latest confirmed activity (for the reason)
    holders: int = 0  # active leases on it now
    released_unconfirmed: bool = False
    free_at: datetime | None = None  # None: never used


def first_expiry(pool: Pool, now: datetime, confirm_seconds: int) -> datetime:
    """A new lease lives ``confirm_seconds`` until the page's first heartbeat renews it.

    Crawlers, prerendered and hidden pages and scripts that only ask for numbers
    never send one, so the number they took is free again within a minute, and
    their activity never makes it rest: only confirmed activity moves
    ``last_active_at``.
    """
    return now + min(timedelta(seconds=confirm_seconds), timedelta(minutes=pool.lease_minutes))


def hand_out(
    pool: Pool,
    candidate: Candidate | None,
    now: datetime,
    *,
    client_leases: tuple[Lease, ...] = (),
    cap: int = 0,
    confirm_seconds: int = 60,
    previous: Candidate | None = None,
) -> Assignment:
    """A new visitor's number, from the pool's next ``candidate`` (None: empty pool).

    The order of ``assign`` without reading the pool: the candidate is free once
    ``free_at`` has passed, else it is resting (no active lease: the cooldown is cut
    short) or held (shared). Unconfirmed leases end sooner and never make a number
    rest. A client holding ``cap`` exclusive leases of the pool (``client_leases``)
    is shown the one of them whose holder was active longest ago. ``previous``: the
    number the visitor held last, free again: it goes back to them. A new lease comes
    with its ``in_line_until``: the number ranks as held by a visitor active now.
    """
    got = _hand_out(pool, candidate, now, client_leases, cap, confirm_seconds, previous)
    if not got.new_lease or got.expires_at is None:
        return got
    lease = Lease("", now, now, got.expires_at)
    return replace(got, in_line_until=in_line_until(lease, pool, now))


def _hand_out(
    pool: Pool,
    candidate: Candidate | None,
    now: datetime,
    client_leases: tuple[Lease, ...],
    cap: int,
    confirm_seconds: int,
    previous: Candidate | None,
) -> Assignment:
    if candidate is None:
        return Assignment(None, reason="empty pool: show the target's own number")
    expires = first_expiry(pool, now, confirm_seconds)
    if cap and len(client_leases) >= cap:
        own = min(client_leases, key=lambda lease: (lease.last_active_at, lease.id or 0))
        return Assignment(
            own.number,
            shared=True,
            reason=f"client holds {len(client_leases)} numbers of the pool (the cap): one of them",
            expires_at=expires,
            capped=True,
        )
    if previous is not None and (previous.free_at is None or now >= previous.free_at):
        return Assignment(
            previous.number,
            reason="free number, the visitor's own before",
            expires_at=expires,
            unconfirmed_released=previous.released_unconfirmed,
        )
    last = candidate.last_active_at
    released = candidate.released_unconfirmed
    if candidate.free_at is None or now >= candidate.free_at:
        if last is None:
            reason = "free number, never used"
        else:
            reason = f"free number, least recently active ({_minutes(now - last)} min ago)"
        return Assignment(
            candidate.number, reason=reason, expires_at=expires, unconfirmed_released=released
        )
    if pool.overflow_number:
        return Assignment(
            pool.overflow_number,
            reason="pool exhausted: overflow number (no number free)",
            overflow=True,
        )
    idle = _minutes(now - last) if last is not None else 0
    if not candidate.holders:
        return Assignment(
            candidate.number,
            reason=f"pool exhausted: cooldown cut short, resting for {idle} min",
            expires_at=expires,
            unconfirmed_released=released,
        )
    count = candidate.holders
    return Assignment(
        candidate.number,
        shared=True,
        reason=(
            f"pool exhausted: shared with {count} holder{'s' if count > 1 else ''}"
            f" (least recently active, {idle} min ago)"
        ),
        expires_at=expires,
    )


def _least_recently_active(state: NumberState, holders: int = 0) -> tuple:
    """Sort key: never used first, then the oldest last activity, fewer holders, the number."""
    last = state.last_activity()
    return (last is not None, last.timestamp() if last is not None else 0.0, holders, state.number)


def _minutes(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds() // 60))


@dataclass(frozen=True)
class PoolStats:
    pool: str
    size: int  # numbers in the pool
    held: int  # numbers with an active lease
    resting: int  # numbers in their cooldown
    free: int  # numbers that can go to a new visitor now
    active_leases: int  # visitors holding a number now
    shared_leases: int  # active leases beyond the first on their number
    utilisation: float  # held / size (0 for an empty pool)
    shares_total: int  # leases handed out shared, ever (the store's counter)
    peak_concurrent: int  # most active leases seen at once (the store's counter)


def pool_metrics(view: PoolView, now: datetime, shares_count: int = 0, peak: int = 0) -> PoolStats:
    statuses = [number_status(s, view.pool, now) for s in view.numbers]
    active = [len(s.active_holders(now)) for s in view.numbers]
    size = len(view.numbers)
    held = statuses.count(HELD)
    return PoolStats(
        pool=view.pool.name,
        size=size,
        held=held,
        resting=statuses.count(RESTING),
        free=statuses.count(FREE),
        active_leases=sum(active),
        shared_leases=sum(n - 1 for n in active if n > 1),
        utilisation=held / size if size else 0.0,
        shares_total=shares_count,
        peak_concurrent=max(peak, sum(active)),
    )


@dataclass(frozen=True)
class Advice:
    by_peak: int  # smallest N with P(share) <= target, concurrency ~ Poisson(peak)
    ctm_rule: int  # 1 number per 20 daily visitors
    findings_rule: int  # 1 number per 5 daily visitors (>= 99 % same-day accuracy)
    recommended: int  # max(by_peak, findings_rule)
    explanation: str


def poisson_size(mean: float, target_share_probability: float) -> int:
    """Smallest N with P(X > N) <= p for X ~ Poisson(mean)."""
    p = target_share_probability
    if not 0 < p < 1:
        raise ValueError("target_share_probability must be between 0 and 1 (exclusive)")
    if mean <= 0:
        return 0
    log_mean = math.log(mean)
    limit = mean + 60 * math.sqrt(mean) + 100  # guards the loop against rounding
    k, log_term, cdf = 0, -mean, 0.0
    while True:
        cdf += math.exp(log_term)
        if 1.0 - cdf <= p or k >= limit:
            return k
        k += 1
        log_term += log_mean - math.log(k)


def advise(
    peak_concurrent: int, daily_visitors: float, target_share_probability: float = 0.01
) -> Advice:
    """How many numbers a pool needs, three ways.

    ``by_peak`` treats concurrency at the busiest time as Poisson with mean
    ``peak_concurrent`` (active leases at once, the store's counter) and asks
    for the smallest size whose chance of running out (sharing) stays under
    ``target_share_probability``. The findings show that peak sizing loses
    calls made after the visitor left at high volume, so ``recommended`` is
    the larger of it and 1 number per 5 daily visitors.
    """
    if peak_concurrent < 0 or daily_visitors < 0:
        raise ValueError("peak_concurrent and daily_visitors must not be negative")
    by_peak = max(1, poisson_size(float(peak_concurrent), target_share_probability))
    ctm = max(1, math.ceil(daily_visitors / CTM_VISITORS_PER_NUMBER))
    findings = max(1, math.ceil(daily_visitors / FINDINGS_VISITORS_PER_NUMBER))
    recommended = max(by_peak, findings)
    explanation = (
        f"By peak concurrency: {by_peak} numbers keep the chance of sharing under"
        f" {target_share_probability:.2%} at a peak of {peak_concurrent} visitors at once"
        f" (Poisson). CTM's rule of thumb (1 number per {CTM_VISITORS_PER_NUMBER} daily"
        f" visitors): {ctm} for {daily_visitors:g} visitors a day. For >= 99 % same-day"
        f" attribution accuracy the traffic simulation needs about 1 number per"
        f" {FINDINGS_VISITORS_PER_NUMBER} daily visitors: {findings}. Recommended:"
        f" {recommended}; a bigger pool lets numbers rest longer after their last holder"
        f" left, which is what keeps calls made after the visit attributable. Calls made"
        f" days later are matched by the caller id of an earlier call, not by pool size."
    )
    return Advice(by_peak, ctm, findings, recommended, explanation)


# --- what the pool's history says (``pools stats``, ``pools advise``) --------

OPEN_SLACK = timedelta(seconds=90)  # a page renews every minute while open


def open_until(lease: Lease) -> datetime:
    """When the lease's page stopped being open: its close, else its last renewal + slack."""
    if lease.closed_at is not None and lease.closed_at >= lease.last_active_at:
        return min(lease.closed_at, lease.last_active_at + OPEN_SLACK)
    return lease.last_active_at + OPEN_SLACK


@dataclass(frozen=True)
class PoolTraffic:
    """The pool's leases over a period, read as pages open (not leases in their tail)."""

    leases: int  # leases handed out in the period
    shared: int  # leases whose page was open while another visitor's page had the number open
    peak_open: int  # most pages open at once
    peak_at: datetime | None
    days: float  # the period's length in days, as far as there is data

    @property
    def shared_share(self) -> float:
        return self.shared / self.leases if self.leases else 0.0


def pool_traffic(leases: list[Lease], since: datetime, until: datetime) -> PoolTraffic:
    """Shares and peak concurrency of the leases handed out in ``[since, until]``.

    *Shared* means another visitor's page was open (renewing) with the same
    number while this one's was: a lease in its 30-minute tail, its page long
    closed, does not count. The peak counts pages open, by a sweep over the
    open intervals. ``days`` starts at the first lease, so a pool with four
    days of data is not averaged over seven.
    """
    mine = sorted(
        (lease for lease in leases if since <= lease.leased_at <= until),
        key=lambda lease: lease.leased_at,
    )
    by_number: dict[str, list[Lease]] = {}
    for lease in mine:
        by_number.setdefault(lease.number, []).append(lease)
    shared_ids: set[int] = set()
    for group in by_number.values():
        for i, lease in enumerate(group):
            end = open_until(lease)
            j = i + 1
            while j < len(group) and group[j].leased_at < end:  # sorted: overlaps are near
                if group[j].visitor_id != lease.visitor_id:
                    shared_ids.update((id(lease), id(group[j])))
                j += 1
    shared = len(shared_ids)
    points = [(lease.leased_at, 1) for lease in mine] + [(open_until(lease), -1) for lease in mine]
    points.sort(key=lambda p: (p[0], p[1]))
    now_open = peak = 0
    peak_at = None
    for at, step in points:
        now_open += step
        if now_open > peak:
            peak, peak_at = now_open, at
    first = mine[0].leased_at if mine else until
    days = max((until - max(first, since)).total_seconds() / 86400, 1 / 24)
    return PoolTraffic(len(mine), shared, peak, peak_at, days)
