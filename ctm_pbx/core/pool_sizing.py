"""How many numbers a pool needs for an accuracy target, from its own traffic.

Pure. ``pools advise`` hands over the pool's stored sessions (each lease: when
the visitor took the number, when they were last active) and the call delays
of its calls; ``replay`` hands the same sessions out again on a pool
of another size with the real hand-out (``core.pools.assign``), places calls at
the measured delays and scores them with the real scorer
(``core.attribution.attribute``). ``advise_size`` searches the smallest size
that meets the target. No model of the traffic is assumed: its arrivals by
hour, session lengths and call delays are the pool's (each call spread over its candidates).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ctm_pbx.core.attribution import attribute
from ctm_pbx.core.model import Pool
from ctm_pbx.core.pools import Lease, NumberState, PoolView, assign

CONFIDENT = 0.9  # "a confident call": scored at least this
MAX_CALLS = 3000  # replayed calls per size (enough to read a percentage)
METRICS = ("accuracy", "same_day", "confident")


@dataclass(frozen=True)
class Session:
    visitor_id: str
    start: datetime
    end: datetime  # last activity


@dataclass(frozen=True)
class Replay:
    size: int
    calls: int
    accuracy: float  # top-1 over all replayed calls
    same_day: float  # top-1 over calls within a day of the visit
    confident: float  # share of calls scored >= CONFIDENT

    def metric(self, name: str) -> float:
        return float(getattr(self, name))


def replay(
    sessions: list[Session],
    delays: list,
    pool: Pool,
    size: int,
    window_minutes: int,
) -> Replay:
    """Hand ``sessions`` out on ``size`` numbers, call back at ``delays``, score the calls.

    A delay of 0 is a call made with the page open (placed mid-session); others
    are minutes after the session's last activity; ``(minutes, weight)`` pairs
    weigh them (a call spread over its candidates). Calls are spread evenly over
    the sessions and delays (deterministic).
    """
    sessions = sorted(sessions, key=lambda s: s.start)
    numbers = [f"n{i:05d}" for i in range(size)]
    held: dict[str, list[tuple[Session, Lease]]] = {n: [] for n in numbers}
    last_done: dict[str, datetime | None] = dict.fromkeys(numbers)
    owner: list[str] = []
    for s in sessions:
        t = s.start
        states = []
        for n in numbers:
            live, last = [], last_done[n]
            for sess, lease in held[n]:
                seen = _as_of(sess, lease, t)
                if seen.expires_at > t:
                    live.append(seen)
                if last is None or seen.last_active_at > last:
                    last = seen.last_active_at
            states.append(NumberState(n, last, tuple(live)))
        got = assign(PoolView(pool, tuple(states)), s.visitor_id, t)
        number = got.number or numbers[0]
        expires = s.end + timedelta(minutes=pool.lease_minutes)
        held[number].append((s, Lease(s.visitor_id, s.start, s.end, expires, number=number)))
        owner.append(number)
        _prune(held, last_done, t, pool)
    history = _history(sessions, owner)
    calls = _calls(sessions, delays)
    right = right_same = same = sure = 0
    for index, delay in calls:
        s, number = sessions[index], owner[index]
        now = s.start + (s.end - s.start) / 2 if delay <= 0 else s.end + timedelta(minutes=delay)
        leases = _window(history[number], now, window_minutes, pool)
        att = attribute(number, now, leases, window_minutes)
        ok = att.visitor_id == s.visitor_id
        right += ok
        sure += att.confidence >= CONFIDENT
        if delay < 24 * 60:
            same += 1
            right_same += ok
    placed = len(calls) or 1
    return Replay(size, len(calls), right / placed, right_same / (same or 1), sure / placed)


def _as_of(sess: Session, lease: Lease, t: datetime) -> Lease:
    if sess.end <= t:
        return lease
    last = max(sess.start, t)
    return replace(lease, last_active_at=last, expires_at=lease.expires_at - (sess.end - last))


def _prune(held, last_done, t: datetime, pool: Pool) -> None:
    """Forget sessions whose lease is over (keeping their number's last activity)."""
    for n, rows in held.items():
        if len(rows) < 4:
            continue
        keep = []
        for sess, lease in rows:
            if lease.expires_at > t or sess.end > t:
                keep.append((sess, lease))
            elif last_done[n] is None or sess.end > last_done[n]:
                last_done[n] = sess.end
        held[n] = keep


def _history(sessions: list[Session], owner: list[str]) -> dict[str, list]:
    out: dict[str, list] = {}
    for s, n in zip(sessions, owner, strict=True):
        out.setdefault(n, []).append(s)
    return out


def _window(rows: list[Session], now: datetime, window_minutes: int, pool: Pool) -> list[Lease]:
    """The number's leases as they stood at ``now`` (sessions sorted by start)."""
    stop = bisect.bisect_right([s.start for s in rows], now)
    since = now - timedelta(minutes=window_minutes + pool.lease_minutes)
    out = []
    for s in rows[:stop]:
        if s.end < since:
            continue
        last = min(s.end, now)
        out.append(Lease(s.visitor_id, s.start, last, last + timedelta(minutes=pool.lease_minutes)))
    return out


def _calls(sessions: list[Session], delays: list) -> list[tuple[int, float]]:
    """Calls spread evenly over the sessions, their delays at even quantiles of the weights.

    ``delays`` are minutes, or ``(minutes, weight)`` pairs.
    """
    if not sessions or not delays:
        return []
    pairs = sorted(
        (d, 1.0) if isinstance(d, int | float) else (float(d[0]), float(d[1])) for d in delays
    )
    total = sum(w for _, w in pairs)
    n = min(MAX_CALLS, max(len(sessions), len(pairs)))
    cumulative, acc = [], 0.0
    for _, w in pairs:
        acc += w
        cumulative.append(acc)
    out = []
    for i in range(n):
        q = ((i * 0.618034) % 1.0) * total  # a low-discrepancy walk over the quantiles
        k = min(bisect.bisect_left(cumulative, q), len(pairs) - 1)
        out.append(((i * 7919) % len(sessions), pairs[k][0]))
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


def advise_size(
    sessions: list[Session],
    delays: list,
    pool: Pool,
    metric: str,
    target: float,
    window_minutes: int,
    *,
    max_size: int = 2000,
) -> SizeAdvice:
    """The smallest pool size whose replay reaches ``target`` on ``metric``."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}")
    if not 0 < target < 1:
        raise ValueError("the target must be between 0 and 1 (exclusive)")
    calls = round(sum(1.0 if isinstance(d, int | float) else d[1] for d in delays))
    margin = 1.96 * math.sqrt(target * (1 - target) / max(calls, 1))
    if not sessions or not delays:
        return SizeAdvice(metric, target, None, 0.0, (), 1.0, "no stored visits or calls to replay")
    tried: dict[int, Replay] = {}

    def at(size: int) -> Replay:
        if size not in tried:
            tried[size] = replay(sessions, delays, pool, size, window_minutes)
        return tried[size]

    low, high = 0, 1
    while at(high).metric(metric) < target:
        low, high = high, high * 2
        if high > max_size:
            best = at(low)
            return SizeAdvice(
                metric,
                target,
                None,
                best.metric(metric),
                tuple(sorted(tried.values(), key=lambda r: r.size)),
                margin,
                f"{metric} {target:.0%} is not reached with {low} numbers"
                f" ({best.metric(metric):.1%}); calls made days later need the caller id",
            )
    while high - low > max(1, high // 20):  # to within 5 %
        mid = (low + high) // 2
        if at(mid).metric(metric) >= target:
            high = mid
        else:
            low = mid
    got = at(high)
    sure = (
        f"based on {calls} calls and {len(sessions)} visits:"
        f" the measured rate is good to +-{margin:.0%}"
    )
    if calls < 100:
        sure += " (little data: take it as a rough figure)"
    return SizeAdvice(
        metric,
        target,
        high,
        got.metric(metric),
        tuple(sorted(tried.values(), key=lambda r: r.size)),
        margin,
        f"{high} numbers reach {metric} {target:.0%} ({got.metric(metric):.1%} on a replay of"
        f" this pool's own visits and call delays); {sure}",
    )
