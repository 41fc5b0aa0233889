"""Each pool's accuracy report: is it big enough for attribution you can trust?

One place for ``ctm-pbx report accuracy`` and the dashboard's Pools page: the pool's
last 7 days of leases (``core.pools.pool_traffic``: visitors a day, pages open at the
peak and per day, the share rate), its calls in the report's period (``core.reports``)
and the size its own traffic needs for a share of confident calls (``core.pool_sizing``'s
replay), with the verdict in a sentence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

import sqlite_utils

from ctm_pbx.adapters.store import leases as lease_store
from ctm_pbx.adapters.store import pool_stats
from ctm_pbx.adapters.store import visitors as visitor_store
from ctm_pbx.adapters.store.reports import run_report
from ctm_pbx.adapters.visits import FIRST_RENEW_S
from ctm_pbx.core.attribution import evidence_of
from ctm_pbx.core.model import Config, Pool
from ctm_pbx.core.pool_sizing import Session, SizeAdvice, advise_size, spread_call
from ctm_pbx.core.pools import pool_traffic
from ctm_pbx.core.reports import Dimension, Filters, Period, QualifiedCall, time_buckets

HISTORY = timedelta(days=7)  # the traffic the advice replays (as `pools advise`)
# a week of at most this many leases replays in well under a second: the dashboard's
# page works such a pool's advice out itself, a busier one's in the background
QUICK_REPLAY = 300


@dataclass(frozen=True)
class PoolAccuracy:
    pool: str
    size: int
    daily_visitors: float
    peak_pages_open: int
    share_rate: float
    calls: int
    avg_confidence: float | None
    confident_share: float | None
    advised_size: int | None
    verdict: str
    daily_peaks: tuple[tuple[str, int], ...]  # (local day, most pages open at once)


ADVICE_PENDING = (
    "the advised size of {pool} is being worked out from its last 7 days of visits"
    " (a replay of each: reload the page in a few minutes)"
)


def advise_confident(
    db: sqlite_utils.Database, config: Config, pool: Pool, target: float, now: datetime
) -> SizeAdvice:
    """The smallest size of ``pool`` for ``target`` confident calls (one replay)."""
    numbers = lease_store.pool_numbers(db, pool.name)
    return replay_advice(db, config, pool, numbers, {"confident": target}, now)["confident"]


def verdict(pool: str, size: int, advised: int | None, target: float, why: str) -> str:
    """What to do, in a sentence: add numbers, keep the pool, or why there is no advice."""
    goal = f"{target:.0%} confident calls"
    if advised is None:
        return f"no size to advise for {pool}: {why}"
    if advised > size:
        more = advised - size
        return f"add {more} number{'s' * (more != 1)} to {pool} to reach {goal} ({why})"
    if advised < size:
        return f"{pool} reaches {goal} with {advised} of its {size} numbers ({why})"
    return f"{pool} is the right size for {goal} ({why})"


def replay_advice(
    db, config: Config, pool, numbers, targets: dict[str, float], now
) -> dict[str, SizeAdvice]:
    """Per metric, the smallest size of ``pool`` reaching its target: the pool's stored
    visits of the last 7 days handed out again at other sizes, its calls put back with
    the evidence they were scored with (``core.pool_sizing``; one replay per size)."""
    sessions, calls, zones = replay_data(db, pool, numbers, now - HISTORY, now)
    window = config.tracking.attribution_window_minutes
    cache: dict = {}
    return {
        metric: advise_size(sessions, calls, pool, metric, target, window, zones=zones,
                            start=max(1, len(numbers)), cache=cache,
                            first_heartbeat=timedelta(seconds=FIRST_RENEW_S))
        for metric, target in targets.items()
    }  # fmt: skip


def replay_data(db, pool, numbers, since: datetime, now: datetime):
    """What the sizing replay needs of the store: the pool's sessions (leases, with their
    closes), its calls spread over their candidates, and the visitors' browser zones."""
    leases = pool_stats.pool_leases(db, numbers, since, now)
    sessions = [
        Session(x.visitor_id, x.leased_at, x.last_active_at, x.closed_at, x.expires_at)
        for x in leases
    ]
    calls = []
    for at, caller, candidates, link, call_id in pool_stats.pool_calls(db, pool.name, since):
        calls.extend(spread_call(at, candidates, evidence_of(link, caller), call_id))
    visitors = list(dict.fromkeys([s.visitor_id for s in sessions] + [
        c.visitor_id for c in calls if c.visitor_id]))  # fmt: skip
    return sessions, calls, visitor_store.visitor_time_zones(db, visitors)


def pool_accuracy(
    db: sqlite_utils.Database,
    config: Config,
    period: Period,
    tz: tzinfo,
    qualified: QualifiedCall,
    target: float,
    now: datetime,
    advise: Callable[[Pool], SizeAdvice | None] | None = None,
) -> list[PoolAccuracy]:
    """Each pool's accuracy report. Its advised size is replayed here (``replay_advice``:
    seconds to minutes on a busy pool), unless ``advise`` gives it: the dashboard's
    advice, worked out in the background (None: not yet, and the pool's week has more
    than ``QUICK_REPLAY`` leases)."""
    by_pool = {
        r.key: r.metrics
        for r in run_report(db, Dimension.POOL, period, tz, Filters(), qualified,
                            compare=False, unique=False).rows
    }  # fmt: skip
    since = now - HISTORY
    days = time_buckets(Period(since, now, "7d", since, since), Dimension.DAY, tz)
    out = []
    for pool in config.pools.values():
        numbers = lease_store.pool_numbers(db, pool.name)
        leases = pool_stats.pool_leases(db, numbers, since, now)
        traffic = pool_traffic(leases, since, now)
        daily = pool_stats.daily_visitors(db, pool.source, now)
        sized_for = None if advise is None else advise(pool)
        if sized_for is None and (advise is None or len(leases) <= QUICK_REPLAY):
            sized = replay_advice(db, config, pool, numbers, {"confident": target}, now)
            sized_for = sized["confident"]
        if sized_for is None:
            advised, said = None, ADVICE_PENDING.format(pool=pool.name)
        else:
            advised = sized_for.size
            said = verdict(pool.name, len(numbers), advised, target, sized_for.explanation)
        calls = by_pool.get(pool.name, {})
        peaks = tuple((b.label, pool_traffic(leases, b.start, b.end).peak_open) for b in days)
        out.append(
            PoolAccuracy(
                pool=pool.name,
                size=len(numbers),
                daily_visitors=round(daily, 1),
                peak_pages_open=traffic.peak_open,
                share_rate=round(traffic.shared_share, 4),
                calls=int(calls.get("calls") or 0),
                avg_confidence=calls.get("avg_confidence"),
                confident_share=calls.get("confident_share"),
                advised_size=advised,
                verdict=said,
                daily_peaks=peaks,
            )
        )
    return out
