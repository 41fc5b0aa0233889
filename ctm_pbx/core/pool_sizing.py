"""How many numbers a pool needs for an accuracy target, from its own traffic.

Pure. ``pools advise`` hands over the pool's stored sessions (each lease: when the
visitor took the number, their last activity, the page's close) and its calls, each
spread over its candidates by their probability and carrying what it told beside the
number (the caller's time zones, a repeat caller's earlier visitor). ``replay`` hands
the sessions out again on a pool of another size as the store did (``hand_out_again``:
``core.pools.hand_out`` on the number free first, its ``free_at`` moved as the store
moves it), puts each call back at its own time on the number its visitor would have
held, and scores it with the real scorer (``core.attribution.attribute``) and the same
evidence. ``advise_size`` searches the smallest size that meets the target. No model of
the traffic is assumed: arrivals, sessions, closes, call times and evidence are the
pool's own.
"""

from __future__ import annotations

import bisect
import heapq
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ctm_pbx.core.attribution import Evidence, attribute
from ctm_pbx.core.model import Pool
from ctm_pbx.core.pools import Candidate, Lease, hand_out, in_line_until, rests_until

CONFIDENT = 0.9  # "a confident call": scored at least this
METRICS = ("accuracy", "same_day", "confident")
SAME_DAY_MINUTES = 24 * 60
# A candidate this unlikely is not replayed: most of a call's candidates are visitors
# who left hours ago, and their share of the calls is under 1 % (bench/README.md).
MIN_WEIGHT = 0.005
# a new lease's first heartbeat comes this long after the number was shown (the visit
# API asks swap.js for it: ``adapters.visits.FIRST_RENEW_S``, which pool_accuracy passes)
FIRST_HEARTBEAT = timedelta(seconds=10)
RENEW_EVERY = timedelta(seconds=60)  # then one a minute (``adapters.visits.RENEW_EVERY_S``)


@dataclass(frozen=True)
class Session:
    """One stored lease: a visitor's stay on the page (one number)."""

    visitor_id: str
    start: datetime
    end: datetime  # last activity
    closed_at: datetime | None = None  # the page said it closed (swap.js's beacon)
    expires_at: datetime | None = None  # as stored (default: ``end`` + the lease's life)


@dataclass(frozen=True)
class ReplayCall:
    """A stored call, as made by one of its candidates (``weight``: their probability).

    ``visitor_id`` None: someone who is none of the candidates. ``same_day``: the
    candidate was active less than a day before the call.
    """

    at: datetime
    visitor_id: str | None
    weight: float
    same_day: bool = True
    evidence: Evidence = field(default_factory=Evidence)
    call_id: int | None = None  # the stored call (a later call's repeat link names it)


def spread_call(
    at: datetime,
    candidates: Sequence[Mapping],
    evidence: Evidence | None = None,
    call_id: int | None = None,
) -> list[ReplayCall]:
    """A stored call as made by each of its stored candidates (``attribution_candidates_json``:
    their weights, "someone else" among them), with the evidence it was scored with;
    candidates under ``MIN_WEIGHT`` are left out."""
    ev = evidence or Evidence()
    out = []
    for cand in candidates:
        weight = float(cand.get("weight") or 0)
        if weight < MIN_WEIGHT:
            continue
        visitor = None if cand.get("someone_else") else cand.get("visitor_id")
        idle = cand.get("idle_minutes")
        same = visitor is not None and idle is not None and 0 <= idle < SAME_DAY_MINUTES
        out.append(ReplayCall(at, visitor, weight, same, ev, call_id))
    return out


@dataclass(frozen=True)
class Replay:
    size: int
    calls: int  # calls replayed (their weights summed)
    accuracy: float  # top-1 over all replayed calls
    same_day: float  # top-1 over calls within a day of the visit
    confident: float  # share of calls scored >= CONFIDENT

    def metric(self, name: str) -> float:
        return float(getattr(self, name))


def replay(
    sessions: list[Session],
    calls: list[ReplayCall],
    pool: Pool,
    size: int,
    window_minutes: int,
    zones: Mapping[str, str] | None = None,
    first_heartbeat: timedelta = FIRST_HEARTBEAT,
) -> Replay:
    """Hand ``sessions`` out on ``size`` numbers, put ``calls`` back, score them.

    Each call is scored at its own time on the number its visitor's latest session
    (started by then) got in the replay, with its evidence and the visitors' browser
    ``zones``; a call of "someone else" (or of a visitor with no session) on a number
    chosen by its time. Every call counts by its weight. A repeat caller's link is the
    one the replay gave: to whom its earlier call (replayed before it, ``calls`` in time
    order) was attributed at this size, with that confidence, as the engine would link.
    """
    # per replayed call: attributed visitor -> [weight, weight x confidence]
    outcomes: dict[int, dict[str | None, list[float]]] = {}
    order = sorted(range(len(sessions)), key=lambda i: (sessions[i].start, i))
    owner = hand_out_again(sessions, order, pool, size, first_heartbeat)
    names = [f"n{i:05d}" for i in range(size)]
    on_number: list[list[int]] = [[] for _ in range(size)]
    by_visitor: dict[str, list[int]] = {}
    for i in order:
        if owner[i] is not None:
            on_number[owner[i]].append(i)  # type: ignore[index]
        by_visitor.setdefault(sessions[i].visitor_id, []).append(i)
    starts = [[sessions[i].start for i in rows] for rows in on_number]
    visitor_starts = {v: [sessions[i].start for i in rows] for v, rows in by_visitor.items()}
    life = timedelta(minutes=pool.lease_minutes)
    longest = max((s.end - s.start for s in sessions), default=timedelta(0))
    reach = timedelta(minutes=window_minutes) + life + min(longest, timedelta(days=1))
    total = right = same = right_same = sure = 0.0
    for call in calls:
        number: int | None = _number_at(call, size)
        if call.visitor_id in by_visitor:
            k = bisect.bisect_right(visitor_starts[call.visitor_id], call.at)
            if k:
                number = owner[by_visitor[call.visitor_id][k - 1]]
        ok = confident = False
        if number is not None and size:
            leases = _leases_at(sessions, on_number[number], starts[number], call.at, life,
                                reach, names[number])  # fmt: skip
            evidence = _relinked(call.evidence, outcomes)
            if zones and evidence.caller_zones:
                evidence = replace(evidence, visitor_zones=zones)
            att = attribute(names[number], call.at, leases, window_minutes, evidence)
            ok = call.visitor_id is not None and att.visitor_id == call.visitor_id
            confident = att.confidence >= CONFIDENT
            if call.call_id is not None:
                got = outcomes.setdefault(call.call_id, {}).setdefault(att.visitor_id, [0.0, 0.0])
                got[0] += call.weight
                got[1] += call.weight * att.confidence
        total += call.weight
        right += call.weight * ok
        sure += call.weight * confident
        if call.same_day and call.visitor_id is not None:
            same += call.weight
            right_same += call.weight * ok
    return Replay(
        size,
        round(total),
        right / (total or 1),
        right_same / (same or 1),
        sure / (total or 1),
    )


def _relinked(ev: Evidence, outcomes: Mapping[int, Mapping[str | None, list[float]]]) -> Evidence:
    """``ev`` with its repeat link as the replay made it: the visitor its earlier call was
    most attributed to here, with that confidence (none: no link). An earlier call the
    replay did not see (before the history) keeps its stored link."""
    earlier = outcomes.get(ev.repeat_call_id) if ev.repeat_call_id is not None else None
    if not earlier:
        return ev
    visitor, (weight, weighted) = max(earlier.items(), key=lambda kv: kv[1][0])
    if visitor is None:
        return replace(ev, repeat_visitor=None, repeat_visit=None, repeat_confidence=0.0)
    visit = ev.repeat_visit if visitor == ev.repeat_visitor else None
    return replace(
        ev, repeat_visitor=visitor, repeat_visit=visit, repeat_confidence=weighted / weight
    )


def _number_at(call: ReplayCall, size: int) -> int | None:
    """A number for a call nobody in the replay held: a stable choice by its time."""
    if not size:
        return None
    return zlib.crc32(f"{call.at.isoformat()} {call.visitor_id}".encode()) % size


def hand_out_again(
    sessions: list[Session],
    order: list[int],
    pool: Pool,
    size: int,
    first_heartbeat: timedelta = FIRST_HEARTBEAT,
    renew_every: timedelta = RENEW_EVERY,
) -> list[int | None]:
    """Each session's number (an index; None: the overflow number or an empty pool).

    The store's order (``core.pools.hand_out`` on the number with the earliest
    ``free_at``; never used first; a returning visitor's own number back when it is
    free), with ``free_at`` moved as the store moves it: a new lease puts its number
    where a holder active now would (``Assignment.in_line_until``) and keeps where it
    goes back to if the lease bounces (``bounce``: at the lease's first expiry, no rest;
    a heartbeat past it clears it); a confirmed page holds the number from its first
    heartbeat (``first_heartbeat`` later) until its last activity or its close,
    whichever came later; its last renewal makes it rest after the lease's tail; a close
    sets it to the latest ``in_line_until`` of the number's leases at that time, and the
    fall-back to their latest ``rests_until`` (a close stored in the same instant as the
    last renewal came before it: the renewal had the last word). When no number is free
    and pages are open, the store takes the one first in line, an open page's number
    ranked by its latest renewal, which a stored lease does not keep: the replay takes
    the renewals every ``renew_every`` from the first heartbeat (a second page's view
    moves them; ``tests/test_pool_sizing.py`` leaves such seeds out).
    """
    if not size:
        return [None] * len(sessions)
    life = timedelta(minutes=pool.lease_minutes)
    cooldown = timedelta(minutes=pool.cooldown_minutes)
    longest = max((x.end - x.start for x in sessions), default=timedelta(0))
    # a lease started earlier expired a cooldown ago (a page open for days: a day back)
    reach = min(longest, timedelta(days=1)) + life + cooldown
    free_at: list[datetime | None] = [None] * size
    bounce: list[datetime | None] = [None] * size  # free_at if its unconfirmed leases bounce
    held_until: list[datetime | None] = [None] * size  # its unconfirmed leases' latest end
    first_expiry: list[datetime | None] = [None] * len(sessions)
    last: list[datetime | None] = [None] * size  # its holders' latest confirmed activity
    ongoing = [0] * size  # confirmed pages open on it
    open_on: list[set[int]] = [set() for _ in range(size)]  # their sessions
    version = [0] * size
    rows: list[list[int]] = [[] for _ in range(size)]  # its sessions, in hand-out order
    idle: list[tuple] = [(0, 0.0, n, 0) for n in range(size)]  # numbers no page is open on
    # (time, 0: a close | 1: the last renewal | 2: the first heartbeat | 3: a first
    # expiry, session, number)
    events: list[tuple[datetime, int, int, int]] = []
    latest: dict[str, int] = {}  # visitor -> the number of their latest session
    owner: list[int | None] = [None] * len(sessions)

    def moved(n: int, until: datetime | None, lower: bool = False) -> None:
        old = free_at[n]
        if until is not None and old is not None:
            until = min(old, until) if lower else max(old, until)
        free_at[n] = until
        if not ongoing[n]:
            version[n] += 1
            heapq.heappush(idle, (1, until.timestamp(), n, version[n]))  # type: ignore[union-attr]

    def rests_at(n: int, now: datetime) -> tuple[datetime, datetime] | None:
        """The latest ``in_line_until`` and ``rests_until`` of the number's leases that
        may still keep it at ``now`` (as ``close_leases`` reads them: active, or expired
        within a cooldown); None: no such lease."""
        out: tuple[datetime, datetime] | None = None
        for k in reversed(rows[n]):
            x = sessions[k]
            if x.start < now - reach:
                break
            renewed = min(x.end, now)
            expires = x.expires_at if x.end <= now and x.expires_at else renewed + life
            if x.end <= x.start or now < min(x.start + first_heartbeat, x.end):
                renewed = x.start  # unconfirmed (yet): it lives until its first expiry
                expires = first_expiry[k] or x.expires_at or x.start + life
            closed = x.closed_at if x.closed_at is not None and x.closed_at <= now else None
            if expires <= now - cooldown:
                continue
            lease = Lease(x.visitor_id, x.start, renewed, expires, closed_at=closed)
            place, until = in_line_until(lease, pool, now), rests_until(lease, pool)
            out = (place, until) if out is None else (max(out[0], place), max(out[1], until))
        return out

    def placed(n: int, now: datetime) -> datetime:
        """The number's ``free_at`` at ``now`` while pages are open on it: their latest
        renewal + the lease + the cooldown, the renewals taken every ``renew_every`` from
        the first heartbeat (a stored lease keeps only its last activity)."""
        out = free_at[n]
        for k in open_on[n]:
            x = sessions[k]
            beat = min(x.start + first_heartbeat, x.end)
            renewed = min(x.end, beat + (now - beat) // renew_every * renew_every)
            until = renewed + life + cooldown
            out = until if out is None else max(out, until)
        return out or now

    for i in order:
        s = sessions[i]
        t = s.start
        while events and events[0][0] <= t:
            at, kind, j, n = heapq.heappop(events)
            done = sessions[j]
            confirmed = done.end > done.start
            if kind == 3:  # a first expiry: the number's bounced leases give its place back
                if bounce[n] is not None and held_until[n] <= at:  # type: ignore[operator]
                    fallback, bounce[n] = bounce[n], None
                    moved(n, fallback, lower=True)
                continue
            if kind == 2:  # the page's first heartbeat: the number is held
                renewed = at + life + cooldown  # its place, as a renewal moves it
                if free_at[n] is None or renewed >= free_at[n]:  # type: ignore[operator]
                    bounce[n] = None
                elif bounce[n] is not None:
                    bounce[n] = max(bounce[n], renewed)  # type: ignore[type-var]
                ongoing[n] += 1
                open_on[n].add(j)
                version[n] += 1
                heapq.heappush(events, (done.end, 1, j, n))
                continue
            if kind == 1:  # the last renewal: it rests after the lease's tail
                last[n] = done.end if last[n] is None else max(last[n], done.end)  # type: ignore[type-var]
                gone = done.closed_at is None or done.closed_at <= done.end
                ongoing[n] -= gone
                if gone:
                    open_on[n].discard(j)
                rest = (done.expires_at or done.end + life) + cooldown
                if bounce[n] is not None:
                    over = free_at[n] is None or rest >= free_at[n]  # type: ignore[operator]
                    bounce[n] = None if over else max(bounce[n], rest)  # type: ignore[type-var]
                moved(n, rest)
                continue
            if confirmed and done.closed_at is not None and done.closed_at > done.end:
                ongoing[n] -= 1  # the page closed after its last renewal: it left now
                open_on[n].discard(j)
            rested = rests_at(n, at)  # the closed lease's own among them
            if rested is not None and bounce[n] is not None:
                bounce[n] = min(bounce[n], rested[1])  # type: ignore[type-var]
            moved(n, rested[0] if rested is not None else free_at[n], lower=True)
        while idle and (ongoing[idle[0][2]] or idle[0][3] != version[idle[0][2]]):
            heapq.heappop(idle)
        head = free_at[idle[0][2]] if idle else None
        if idle and (head is None or head <= t or not any(ongoing)):
            n = idle[0][2]
            candidate = Candidate(str(n), last[n], 0, False, free_at[n])
        else:  # none free: the least recently renewed of the open pages' numbers, or
            # the idle one first in line (a number just handed out ranks among them)
            ranks = {k: placed(k, t) for k in range(size) if ongoing[k]}
            if idle:
                ranks[idle[0][2]] = head  # type: ignore[assignment]
            n = min(ranks, key=lambda k: (ranks[k], k))
            candidate = Candidate(str(n), last[n], ongoing[n], False, ranks[n])
        previous = None
        p = latest.get(s.visitor_id)
        if p is not None and not ongoing[p]:
            previous = Candidate(str(p), last[p], 0, False, free_at[p])
        got = hand_out(pool, candidate, t, previous=previous)
        if got.number is None or got.overflow:
            continue
        n = int(got.number)
        owner[i] = n
        latest[s.visitor_id] = n
        rows[n].append(i)
        expires = got.expires_at or t
        place = max(got.in_line_until or expires, expires)
        first_expiry[i] = expires
        old = free_at[n]
        held_until[n] = expires if held_until[n] is None else max(held_until[n], expires)  # type: ignore[type-var]
        if old is None or place > old:  # as ``_NEW_LEASE``: where it goes back to
            back = bounce[n] or old
            bounce[n] = expires if back is None else max(back, expires)
        elif bounce[n] is not None:
            bounce[n] = max(bounce[n], expires)  # type: ignore[type-var]
        moved(n, place)  # unconfirmed: as a holder active now, until it expires
        heapq.heappush(events, (expires, 3, i, n))
        if s.end > s.start:  # confirmed: by its first heartbeat, or its last activity
            heapq.heappush(events, (min(t + first_heartbeat, s.end), 2, i, n))
        if s.closed_at is not None:
            heapq.heappush(events, (s.closed_at, 0, i, n))
    return owner


def _leases_at(
    sessions: list[Session],
    rows: list[int],
    starts: list[datetime],
    now: datetime,
    life: timedelta,
    reach: timedelta,
    number: str,
) -> list[Lease]:
    """The number's leases as they stood at ``now`` (its sessions sorted by start, those
    started ``reach`` before it at most)."""
    since = now - reach
    out = []
    for k in range(bisect.bisect_right(starts, now) - 1, -1, -1):
        s = sessions[rows[k]]
        if s.start < since:
            break
        if s.end <= now:
            last, expires = s.end, s.expires_at or s.end + life
        else:
            last, expires = now, now + life
        closed = s.closed_at if s.closed_at is not None and s.closed_at <= now else None
        out.append(Lease(s.visitor_id, s.start, last, expires, number=number, closed_at=closed))
    out.reverse()
    return out


@dataclass(frozen=True)
class SizeAdvice:
    metric: str
    target: float
    size: int | None  # None: not reached up to the largest size tried
    reached: float  # the metric at ``size`` (or at the largest size tried)
    tried: tuple[Replay, ...]
    margin: float  # +- of the metric from the number of measured calls (95 %)
    explanation: str
    # the sizes that reach the target less and plus the margin (None: not reached)
    between: tuple[int | None, int | None] = (None, None)


def advise_size(
    sessions: list[Session],
    calls: list[ReplayCall],
    pool: Pool,
    metric: str,
    target: float,
    window_minutes: int,
    *,
    zones: Mapping[str, str] | None = None,
    max_size: int = 2000,
    start: int = 1,
    cache: dict[int, Replay] | None = None,
    first_heartbeat: timedelta = FIRST_HEARTBEAT,
) -> SizeAdvice:
    """The smallest pool size whose replay reaches ``target`` on ``metric``.

    How sure: the measured rate is good to +- ``margin`` (95 %, from the number of
    calls), so the sizes that reach the target less and plus the margin bound the answer.
    The search starts at ``start`` (the pool's size); ``cache`` keeps the replays for
    another target on the same data.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}")
    if not 0 < target < 1:
        raise ValueError("the target must be between 0 and 1 (exclusive)")
    count = round(sum(c.weight for c in calls))
    margin = 1.96 * math.sqrt(target * (1 - target) / max(count, 1))
    if not sessions or not calls:
        return SizeAdvice(metric, target, None, 0.0, (), 1.0, "no stored visits or calls to replay")
    tried = {} if cache is None else cache

    def at(size: int) -> float:
        if size not in tried:
            tried[size] = replay(
                sessions, calls, pool, size, window_minutes, zones, first_heartbeat
            )
        return tried[size].metric(metric)

    first = min(max(1, start), max_size)
    size = _smallest(at, target, first, max_size)
    low = _smallest(at, max(target - margin, 1e-9), size or first, max_size, 0.1)
    high = _smallest(at, min(target + margin, 1.0), size or first, max_size, 0.1)
    runs = tuple(sorted(tried.values(), key=lambda r: r.size))
    if size is None:
        largest = max(tried)
        return SizeAdvice(
            metric,
            target,
            None,
            at(largest),
            runs,
            margin,
            f"{metric} {target:.0%} is not reached with {largest} numbers"
            f" ({at(largest):.1%}); calls made days later need the caller id",
            (low, high),
        )
    span = f"{low}" if low == high else f"{low}-{high if high is not None else 'more'}"
    sure = (
        f"based on {count} calls and {len(sessions)} visits: the measured rate is good to"
        f" +-{margin:.0%}, so {span} numbers"
    )
    if count < 100:
        sure += " (little data: take it as a rough figure)"
    return SizeAdvice(
        metric,
        target,
        size,
        at(size),
        runs,
        margin,
        f"{size} numbers reach {metric} {target:.0%} ({at(size):.1%} on a replay of this"
        f" pool's own visits and calls); {sure}",
        (low, high),
    )


def _smallest(at, target: float, start: int, max_size: int, within: float = 0.05) -> int | None:
    """The smallest size with ``at(size) >= target``, to ``within`` of it, searched from
    ``start`` by halving or doubling (None: not reached by ``max_size``)."""
    if at(start) >= target:
        high, low = start, start // 2
        while low and at(low) >= target:
            high, low = low, low // 2
    else:
        low, high = start, start * 2
        while at(min(high, max_size)) < target:
            if high >= max_size:
                return None
            low, high = high, high * 2
        high = min(high, max_size)
    while high - low > max(1, int(high * within)):
        mid = (low + high) // 2
        if at(mid) >= target:
            high = mid
        else:
            low = mid
    return high
