"""Which website visitor made a call to a pool number, and how sure we are.

Pure: the store hands over the lease history of the number called.

Per the team's attribution findings (a traffic simulation) a call is scored as a
probability over *every* visitor who held the number within the window, each
weighted by how likely a call is at that delay after their last activity
(that gave a calibrated confidence: calls scored >= 0.9 were 97 % right).

The weight is the density (per minute) of the delay ``d`` between a caller's
last activity on the site and the call, a mixture of the three kinds of call
the simulation modelled::

    f(d) = 0.70 * Exp(mean 3 min)(d)           # during the visit: d = time since the last page
         + 0.25 * Exp(median 10 min)(d)        # after leaving, median delay 10 minutes
         + 0.05 * 1 / (3 days)                 # days later: a flat floor

It decreases with ``d``, so the most recently active holder is always the
favourite; equally active holders split the probability evenly. A visitor
who was active after the call (scoring an old call) counts as ``d = 0``.
Off-site (fixed) numbers never get here: their source is certain.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ctm_pbx.core.clock import parse_iso
from ctm_pbx.core.pools import Lease

VISIT_SHARE, AFTER_SHARE, LATE_SHARE = 0.70, 0.25, 0.05
VISIT_MEAN_MINUTES = 3.0  # calls during the visit: minutes since the last page view
AFTER_MEDIAN_MINUTES = 10.0  # calls after leaving: median delay
LATE_SPAN_MINUTES = 3 * 24 * 60  # calls days later: spread evenly over three days

_AFTER_RATE = math.log(2) / AFTER_MEDIAN_MINUTES


def call_likelihood(idle_minutes: float) -> float:
    """Density (per minute) of a call ``idle_minutes`` after the caller's last activity."""
    d = max(0.0, idle_minutes)
    visit = math.exp(-d / VISIT_MEAN_MINUTES) / VISIT_MEAN_MINUTES
    after = _AFTER_RATE * math.exp(-_AFTER_RATE * d)
    late = 1.0 / LATE_SPAN_MINUTES
    return VISIT_SHARE * visit + AFTER_SHARE * after + LATE_SHARE * late


@dataclass(frozen=True)
class Candidate:
    visitor_id: str
    visit_id: str | None
    weight: float  # probability that this visitor made the call (candidates sum to 1)
    idle_minutes: float  # from their last activity to the call
    active: bool = False  # their lease was active when the call came


@dataclass(frozen=True)
class Attribution:
    visitor_id: str | None
    visit_id: str | None
    confidence: float  # 0..1: the best candidate's probability
    reason: str
    candidates: tuple[Candidate, ...] = ()  # the likeliest first, at most MAX_CANDIDATES
    candidate_count: int = 0  # every visitor who held the number in the window


NOBODY = "no visitor held this number in the window"
# A busy pool number has a hundred holders in a day; past the first few their
# probabilities are noise, so only these are kept (the confidence counts them all).
MAX_CANDIDATES = 10


def attribute(
    number: str, now: datetime, leases: Iterable[Lease], window_minutes: int
) -> Attribution:
    """Score a call to ``number`` at ``now`` against the number's lease history.

    Candidates are the visitors whose lease overlapped the window
    ``[now - window_minutes, now]``; a visitor with several leases counts once,
    by their most recent activity (activity after ``now`` counts as at ``now``).
    """
    since = now - timedelta(minutes=window_minutes)
    latest: dict[str, tuple[datetime, Lease]] = {}  # visitor -> (last activity, its lease)
    active_visitors: set[str] = set()
    for lease in leases:
        if lease.number and lease.number != number:
            continue
        if lease.leased_at > now or lease.expires_at < since:
            continue
        active = lease.expires_at > now
        if active:
            active_visitors.add(lease.visitor_id)
        last = min(lease.last_active_at, now)
        seen = latest.get(lease.visitor_id)
        if seen is None or last > seen[0] or (last == seen[0] and active):
            latest[lease.visitor_id] = (last, lease)
    if not latest:
        return Attribution(None, None, 0.0, NOBODY)

    scored = []
    for last, lease in latest.values():
        idle = (now - last).total_seconds() / 60
        scored.append((call_likelihood(idle), idle, lease))
    total = sum(w for w, _, _ in scored)
    scored.sort(key=lambda s: (-s[0], s[1], s[2].visitor_id))
    candidates = tuple(
        Candidate(
            lease.visitor_id,
            lease.visit_id,
            w / total,
            round(idle, 3),
            lease.visitor_id in active_visitors,
        )
        for w, idle, lease in scored[:MAX_CANDIDATES]
    )
    best_lease = scored[0][2]
    if best_lease.visitor_id in active_visitors:
        holders = len(active_visitors)
        reason = "exclusive active lease" if holders == 1 else f"shared lease ({holders} holders)"
    else:
        ago = round((now - best_lease.expires_at).total_seconds() / 60)
        reason = f"lease expired {ago} minute{'' if ago == 1 else 's'} before the call"
    best = candidates[0]
    return Attribution(best.visitor_id, best.visit_id, best.weight, reason, candidates, len(scored))


@dataclass(frozen=True)
class RepeatLink:
    call_id: int
    visitor_id: str
    started_at: datetime


def link_repeat_caller(
    previous_calls: Sequence[tuple[int, str | None, datetime | str]], now: datetime
) -> RepeatLink | None:
    """The caller's most recent earlier call that was attributed to a visitor.

    ``previous_calls`` are ``(call_id, visitor_id, started_at)`` of the same
    caller id (``started_at`` a datetime or ISO text). Calls made days after
    the visit cannot be recovered by the pool; this is what links them.
    """
    best: RepeatLink | None = None
    for call_id, visitor_id, started in previous_calls:
        if visitor_id is None:
            continue
        at = parse_iso(started) if isinstance(started, str) else started
        if at >= now:
            continue
        if best is None or at > best.started_at:
            best = RepeatLink(call_id, visitor_id, at)
    return best
