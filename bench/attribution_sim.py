"""Benchmark: how right call attribution is, on simulated website traffic.

    .venv/bin/python bench/attribution_sim.py                 # the full grid (a few minutes)
    .venv/bin/python bench/attribution_sim.py --visitors 200 --sizes 1 --days 4
    .venv/bin/python bench/attribution_sim.py --check-advice --seeds 1 2 3  # advice vs the grid

Drives the real code with an injected clock: every page view and renewal goes through
``ctm_pbx.adapters.visits.handle_visit`` (the store, the pool's hand-out order, the lease
index), every call through ``ctm_pbx.adapters.call_attribution.attribute_call`` on an
in-memory SQLite store. Nothing of the pool or the scorer is reimplemented here; the
simulation only decides who visits, what they see and when they call, and keeps the truth.

The traffic model (one on-site source, every visit from an ad click):

- arrivals: Poisson, diurnal (rate ``1 + 0.8 cos(2 pi (h - 14) / 24)``, busiest at 14:00);
- a visit has 1 + Geometric(mean 2) pages, each read for LogNormal(median 60 s, sigma 1);
  while a page is visible swap.js renews every 60 s (``RENEW_EVERY_S``), as it does;
- 20 % of visits leave the last tab open in the background (hidden: no renewals); half of
  those come back to it after LogNormal(median 30 min, sigma 1) and read it once more (the
  script renews on ``visibilitychange``, which may hand out a new number);
- 8 % of visits call: 70 % while a page is visible (a uniform instant of the visible
  time), 25 % after leaving with a delay LogNormal(median 10 min, sigma 1.525) (12 % of
  them after an hour), 5 % one to three days later (uniform); a caller dials the number
  the page showed last; 40 % of the days-later callers had also called the same day (a
  repeat caller: same caller id, an in-visit call);
- 15 % of visitors come back 1 to 7 days later for another visit (same visitor id, same
  chances of calling);
- each visitor has their own phone number (caller id);
- signals beyond the number (each can be switched off with ``--without``, for a before/after):
  - ``zones``: each visitor lives in a US time zone, by population (Eastern 47 %, Central
    29 %, Mountain 7 %, Pacific 17 %), and their browser reports it with the visit; their
    phone number is from that zone for 85 % of them (an area code of it: 212, 312, 303,
    415), from another zone, drawn by population, for the rest (moved, travelling, a
    mobile number from elsewhere);
  - ``repeat``: a caller calls from the same number every time (without: each call has a
    caller id never seen before, so no call is linked to an earlier one);
  - ``beacon``: a page that is hidden or left sends its close beacon (95 % of them arrive;
    a page left for the next one sends one too, which that page's visit supersedes), and
    half of the in-visit calls are made by tapping the number, which hides the page 5 s
    before the call comes in.

Reported per traffic level and pool size: top-1 accuracy (all calls, in-visit,
after-leave, days-later), the expected calibration error over 10 equal-width bins of
confidence, the share of calls scored >= 0.9 and their accuracy, and candidate recall
(the caller's visitor among the stored candidates). Calls are scored from day 1 on (a day
of history first). Seeded: the same arguments give the same table.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ctm_pbx.adapters.call_attribution import attribute_call  # noqa: E402
from ctm_pbx.adapters.config_loader import parse_config  # noqa: E402
from ctm_pbx.adapters.store import calls as call_store  # noqa: E402
from ctm_pbx.adapters.store import lease_index, migrate, open_db  # noqa: E402
from ctm_pbx.adapters.store.leases import close_leases  # noqa: E402
from ctm_pbx.adapters.visits import (  # noqa: E402
    FIRST_RENEW_S,
    RENEW_EVERY_S,
    VisitRequest,
    handle_visit,
)


def address(visitor: int) -> str:
    """Each simulated visitor's own IPv4 address (the lease cap counts per address)."""
    return f"198.18.{visitor >> 8 & 255}.{visitor & 255}"


BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
from ctm_pbx.core.call.actions import StartCall  # noqa: E402
from ctm_pbx.core.clock import iso  # noqa: E402
from ctm_pbx.edges.cli import sync_config_numbers  # noqa: E402

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
TARGET = "+13125550100"
SHOP = "https://shop.example.com"
CALL_SHARE = 0.08
KIND_SHARES = (("in-visit", 0.70), ("after-leave", 0.25), ("days-later", 0.05))
BACKGROUND_SHARE, BACKGROUND_RETURN = 0.20, 0.5
RETURN_SHARE = 0.15
REPEAT_SHARE = 0.40  # of days-later callers, those who had also called the same day
SIGNALS = ("zones", "repeat", "beacon")
ZONES = (  # (browser time zone, population share, an area code of it)
    ("America/New_York", 0.47, "212"),
    ("America/Chicago", 0.29, "312"),
    ("America/Denver", 0.07, "303"),
    ("America/Los_Angeles", 0.17, "415"),
)
NUMBER_IN_BROWSER_ZONE = 0.85
BEACON_ARRIVES = 0.95
TAP_SHARE, TAP_HIDES_S = 0.5, 5.0  # in-visit calls made by tapping the number
AFTER_MEDIAN_S, AFTER_SIGMA = 600.0, 1.525
BINS = 10


def sim_config(size: int, **pool_opts) -> str:
    opts = ", ".join(f"{k}: {v}" for k, v in pool_opts.items())
    numbers = "\n".join(
        f'  - {{number: "+1312{7000000 + i:07d}", pool: gads, route: main}}' for i in range(size)
    )
    return (
        f'web: {{allowed_origins: ["{SHOP}"]}}\n'
        "sources:\n  google-ads: {preset: google_ads}\n"
        f'targets:\n  sales: "{TARGET}"\n'
        f"pools:\n  gads: {{source: google-ads{', ' + opts if opts else ''}}}\n"
        'receiving_numbers:\n  desk: {number: "+13125550101", dial: "PJSIP/phone1"}\n'
        "routes:\n  main: {type: single, targets: [desk]}\n"
        f"tracking_numbers:\n{numbers}\n"
    )


@dataclass
class Call:
    at: float  # seconds since T0
    visitor: int
    kind: str
    number: str | None = None  # filled when the call is placed (what the page showed)


@dataclass
class Result:
    visitors_per_day: int
    size: int
    calls: list[tuple[str, bool, float, bool, str]] = field(default_factory=list)
    # (kind, right, confidence, caller's visitor among the candidates, the caller's visitor)
    seconds: float = 0.0
    advice: dict | None = None  # pool size per target, from the advisor on this store
    leases: int = 0  # leases handed out
    on_open: int = 0  # of them, started on a number another visitor's page had open

    def summary(self) -> dict:
        calls = self.calls
        n = len(calls)

        def acc(rows):
            return sum(r[1] for r in rows) / len(rows) if rows else float("nan")

        bins: list[list] = [[] for _ in range(BINS)]
        for row in calls:
            bins[min(BINS - 1, int(row[2] * BINS))].append(row)
        ece = sum(len(b) / n * abs(acc(b) - sum(r[2] for r in b) / len(b)) for b in bins if b)
        sure = [r for r in calls if r[2] >= 0.9]
        return {
            "visitors_per_day": self.visitors_per_day,
            "size": self.size,
            "calls": n,
            "top1": acc(calls),
            "same_day": acc([r for r in calls if r[0] != "days-later"]),
            **{kind: acc([r for r in calls if r[0] == kind]) for kind, _ in KIND_SHARES},
            "ece": ece,
            "share_ge_0.9": len(sure) / n if n else float("nan"),
            "acc_ge_0.9": acc(sure),
            "recall": sum(r[3] for r in calls) / n if n else float("nan"),
            "leases": self.leases,
            "started_on_open": self.on_open / self.leases if self.leases else float("nan"),
            "seconds": round(self.seconds, 1),
            **({"advice": self.advice} if self.advice else {}),
        }


def diurnal(hour: float) -> float:
    return 1 + 0.8 * math.cos(2 * math.pi * (hour - 14) / 24)


def _zone(rng: random.Random, other_than: int | None = None) -> int:
    shares = [0.0 if i == other_than else z[1] for i, z in enumerate(ZONES)]
    x = rng.random() * sum(shares)
    for i, share in enumerate(shares):
        if x < share:
            return i
        x -= share
    return len(ZONES) - 1


def run(
    visitors_per_day: int,
    size: int,
    days: int,
    seed: int,
    advise: dict | None = None,
    signals: tuple[str, ...] = SIGNALS,
) -> Result:
    """Simulate ``days`` days of arrivals on a pool of ``size`` numbers; score every call."""
    started = time.perf_counter()
    rng = random.Random(f"{seed}-{visitors_per_day}-{size}")
    # the signals draw from their own generator: switching one off leaves the traffic as it is
    srng = random.Random(f"{seed}-{visitors_per_day}-{size}-signals")
    cfg = parse_config(sim_config(size), env={})
    db = open_db(":memory:")
    migrate(db)
    sync_config_numbers(cfg, db)
    lease_index.attach(db)

    events: list[tuple[float, int, str, tuple]] = []
    seq = 0

    def push(at: float, kind: str, *data) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (at, seq, kind, data))

    # arrivals by thinning a Poisson process at the peak rate
    peak = visitors_per_day / 86400 * 1.8
    t, visitor_count = 0.0, 0
    while True:
        t += rng.expovariate(peak)
        if t >= days * 86400:
            break
        if rng.random() * 1.8 < diurnal((t / 3600) % 24):
            push(t, "arrive", visitor_count)
            visitor_count += 1

    vids: dict[int, str] = {}  # simulated visitor -> the id the API gave them
    shown: dict[int, str] = {}  # simulated visitor -> the number their page showed last
    phones: dict[int, str] = {}
    zones: dict[int, tuple[int, int]] = {}  # visitor -> (browser zone, their number's zone)
    result = Result(visitors_per_day, size)
    score_from = 86400.0

    def zone_of(visitor: int) -> tuple[int, int]:
        if visitor not in zones:
            browser = _zone(srng)
            number = browser if srng.random() < NUMBER_IN_BROWSER_ZONE else _zone(srng, browser)
            zones[visitor] = (browser, number)
        return zones[visitor]

    def request(visitor: int, at: float, page: bool) -> None:
        landing = f"{SHOP}/p{rng.randrange(5)}?gclid=g{visitor}" if page else None
        zone = ZONES[zone_of(visitor)[0]][0] if page and "zones" in signals else None
        with db.conn:
            got = handle_visit(
                db,
                cfg,
                VisitRequest(
                    vids.get(visitor),
                    landing,
                    None,
                    ip=address(visitor),
                    user_agent=BROWSER_UA,
                    time_zone=zone,
                ),
                T0 + timedelta(seconds=at),
            )
        if got.unknown:
            return request(visitor, at, True)
        vids[visitor] = got.visitor_id
        number = (got.numbers.get(TARGET) or {}).get("number")
        if number:
            shown[visitor] = number

    def plan_visit(visitor: int, at: float, returning: bool) -> None:
        """Queue one visit's page views and renewals, and its calls."""
        visible: list[tuple[float, float]] = []  # intervals with a visible page
        pages = 1
        while rng.random() < 2 / 3:
            pages += 1
        t = at
        for _ in range(pages):
            dwell = rng.lognormvariate(math.log(60), 1)
            visible.append((t, t + dwell))
            t += dwell
        left = t
        if rng.random() < BACKGROUND_SHARE and rng.random() < BACKGROUND_RETURN:
            back = left + rng.lognormvariate(math.log(1800), 1)
            dwell = rng.lognormvariate(math.log(60), 1)
            visible.append((back, back + dwell))
            left = back + dwell
        for i, (start, end) in enumerate(visible):
            # a new page (or the tab made visible again: a renewal)
            push(start, "page" if i < pages else "renew", visitor)
            # a new lease is confirmed by a first heartbeat soon (the API asks 10 s)
            r = start + (FIRST_RENEW_S if i == 0 and not returning else RENEW_EVERY_S)
            while r < end:
                push(r, "renew", visitor)
                r += RENEW_EVERY_S
            if "beacon" in signals and srng.random() < BEACON_ARRIVES:
                push(end, "close", visitor)
        if rng.random() < CALL_SHARE:
            kind = _pick(rng)
            if kind == "in-visit":
                instant = _instant(rng, visible)
                if "beacon" in signals and srng.random() < TAP_SHARE:
                    push(instant - TAP_HIDES_S, "close", visitor)  # the tap hid the page
                push(instant, "call", Call(0, visitor, kind))
            elif kind == "after-leave":
                delay = rng.lognormvariate(math.log(AFTER_MEDIAN_S), AFTER_SIGMA)
                push(left + delay, "call", Call(0, visitor, kind))
            else:
                if rng.random() < REPEAT_SHARE:
                    push(_instant(rng, visible), "call", Call(0, visitor, "in-visit"))
                push(left + rng.uniform(86400, 3 * 86400), "call", Call(0, visitor, kind))
        if not returning and rng.random() < RETURN_SHARE:
            push(left + rng.uniform(86400, 7 * 86400), "return", visitor)

    call_n = 0
    end = days * 86400
    while events:
        at, _seq, kind, data = heapq.heappop(events)
        if at > end:
            break
        if kind == "arrive":
            plan_visit(data[0], at, False)
        elif kind == "return":
            if at < days * 86400:
                plan_visit(data[0], at, True)
        elif kind in ("page", "renew"):
            request(data[0], at, kind == "page")
        elif kind == "close":
            if data[0] in vids:
                with db.conn:
                    close_leases(db, vids[data[0]], T0 + timedelta(seconds=at), cfg.pools)
        else:
            call: Call = data[0]
            number = shown.get(call.visitor)
            if number is None or at < score_from:
                continue
            call_n += 1
            area = ZONES[zone_of(call.visitor)[1]][2]
            if "repeat" in signals:
                phone = phones.setdefault(call.visitor, f"+1{area}{2000000 + len(phones):07d}")
            else:  # a caller id never seen before
                phone = f"+1{area}{2000000 + call_n:07d}"
            now = T0 + timedelta(seconds=at)
            start = StartCall(iso(now), number, phone, None, "google-ads", "gads", "main")
            with db.conn:
                call_id = call_store.insert_call(db, start, channel_id=f"c{call_n}", linkedid=None)
                attribute_call(db, cfg, call_id, start, now)
            row = db.conn.execute(
                "SELECT visitor_id, attribution_confidence, attribution_candidates_json"
                " FROM calls WHERE id = ?",
                (call_id,),
            ).fetchone()
            truth = vids[call.visitor]
            candidates = {c["visitor_id"] for c in json.loads(row[2] or "[]")}
            result.calls.append(
                (call.kind, row[0] == truth, row[1] or 0.0, truth in candidates, truth)
            )
    result.leases, result.on_open = started_on_open(db, cfg, T0 + timedelta(days=days))
    if advise:
        result.advice = advise_from(db, cfg, T0 + timedelta(days=days), advise)
    result.seconds = time.perf_counter() - started
    return result


def started_on_open(db, cfg, until: datetime) -> tuple[int, int]:
    """Leases handed out, and those started on a number another visitor's page had open
    (renewing: ``core.pools.open_until``) at that instant."""
    from ctm_pbx.adapters.store import leases as lease_store
    from ctm_pbx.adapters.store.pool_stats import pool_leases
    from ctm_pbx.core.pools import open_until

    numbers = lease_store.pool_numbers(db, cfg.pools["gads"].name)
    by_number: dict[str, list] = {}
    for lease in pool_leases(db, numbers, T0, until):
        by_number.setdefault(lease.number, []).append(lease)
    total = hit = 0
    for group in by_number.values():
        group.sort(key=lambda x: (x.leased_at, x.id or 0))
        open_now: list[tuple[datetime, str]] = []  # earlier leases' (open until, visitor)
        for lease in group:
            open_now = [o for o in open_now if o[0] > lease.leased_at]
            total += 1
            hit += any(visitor != lease.visitor_id for _until, visitor in open_now)
            open_now.append((open_until(lease), lease.visitor_id))
    return total, hit


def advise_from(db, cfg, now: datetime, targets: dict[str, float]) -> dict:
    """What ``pools advise`` answers on the simulated store (its last 7 days)."""
    from ctm_pbx.adapters.pool_accuracy import replay_advice
    from ctm_pbx.adapters.store import leases as lease_store

    pool = cfg.pools["gads"]
    numbers = lease_store.pool_numbers(db, pool.name)
    advised = replay_advice(db, cfg, pool, numbers, targets, now)
    return {m: {"size": a.size, "between": list(a.between)} for m, a in advised.items()}


ADVICE_TARGETS = {"accuracy": 0.9, "same_day": 0.99, "confident": 0.8}
ADVICE_SIZES = (0.5, 0.7, 1, 1.4, 2, 3, 4, 6)  # multiples of CTM's rule, the simulated sizes
SIM_METRIC = {"accuracy": "top1", "same_day": "same_day", "confident": "share_ge_0.9"}


def smallest_size(points: list[tuple[int, float]], target: float) -> float | None:
    """The smallest size reaching ``target``, by linear interpolation between the
    simulated sizes around the first one that reaches it (None: none does)."""
    points = sorted(points)
    for k, (size, value) in enumerate(points):
        if value >= target:
            if k == 0:
                return float(size)
            s0, v0 = points[k - 1]
            return s0 + (size - s0) * (target - v0) / (value - v0)
    return None


def check_advice(visitors: int, seed: int, days: int, rows: dict) -> list[dict]:
    """The advisor on the store of a pool at CTM's size against the simulation at each
    size of ``ADVICE_SIZES``: per target, the advised size and the simulation's smallest
    (negative: reached at the smallest size simulated, so at most that).

    ``rows`` caches summaries by (visitors, size, seed)."""
    ctm = max(1, round(visitors / 20))
    sizes = sorted({max(1, round(ctm * m)) for m in ADVICE_SIZES})
    for size in sizes:
        if (visitors, size, seed) not in rows:
            advise = ADVICE_TARGETS if size == ctm else None
            rows[visitors, size, seed] = run(visitors, size, days, seed, advise).summary()
            print(json.dumps(rows[visitors, size, seed]), file=sys.stderr, flush=True)
    advice = rows[visitors, ctm, seed]["advice"]
    out = []
    for metric, target in ADVICE_TARGETS.items():
        points = [(n, rows[visitors, n, seed][SIM_METRIC[metric]]) for n in sizes]
        sim = smallest_size(points, target)
        if sim == sizes[0]:  # reached at the smallest size simulated: at most that
            sim = -float(sizes[0])
        got = advice[metric]
        out.append(
            {
                "visitors_per_day": visitors,
                "seed": seed,
                "metric": metric,
                "target": target,
                "advised": got["size"],
                "between": got["between"],
                "simulated": sim,
                "error": (got["size"] / sim - 1) if got["size"] and sim and sim > 0 else None,
            }
        )
    return out


def advice_table(rows: list[dict]) -> str:
    head = "| visitors/day | seed | target | advised (margin) | simulation | error |"
    lines = [head, "|" + "---|" * 6]
    for r in rows:
        low, high = r["between"]
        span = f" ({low}-{high if high is not None else '?'})" if r["advised"] else ""
        sim = r["simulated"]
        sim = "not reached" if sim is None else f"<= {-sim:g}" if sim < 0 else f"{sim:.1f}"
        err = f"{r['error']:+.0%}" if r["error"] is not None else "-"
        lines.append(
            f"| {r['visitors_per_day']} | {r['seed']} | {r['metric']} {r['target']:g}"
            f" | {r['advised'] or 'not reached'}{span} | {sim} | {err} |"
        )
    return "\n".join(lines)


def _pick(rng: random.Random) -> str:
    x = rng.random()
    for kind, share in KIND_SHARES:
        if x < share:
            return kind
        x -= share
    return KIND_SHARES[-1][0]


def _instant(rng: random.Random, visible: list[tuple[float, float]]) -> float:
    total = sum(b - a for a, b in visible)
    x = rng.random() * total
    for a, b in visible:
        if x <= b - a:
            return a + x
        x -= b - a
    return visible[-1][1]


def table(rows: list[dict]) -> str:
    head = (
        "| visitors/day | numbers | calls | top-1 | in-visit | after-leave | days-later"
        " | ECE | >= 0.9: share | >= 0.9: right | recall | on an open page |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append(
            f"| {r['visitors_per_day']} | {r['size']} | {r['calls']} | {r['top1']:.1%}"
            f" | {r['in-visit']:.1%} | {r['after-leave']:.1%} | {r['days-later']:.1%}"
            f" | {r['ece']:.3f} | {r['share_ge_0.9']:.1%} | {r['acc_ge_0.9']:.1%}"
            f" | {r['recall']:.1%} | {r['started_on_open']:.1%} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--visitors", type=int, nargs="+", default=[200, 1000, 5000])
    ap.add_argument(
        "--sizes", type=float, nargs="+", default=[1, 2, 4], help="multiples of CTM's rule"
    )
    ap.add_argument("--days", type=int, default=0, help="days of arrivals (default by volume)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--without",
        nargs="*",
        default=[],
        choices=SIGNALS,
        help="signals beyond the number to leave out (a before/after)",
    )
    ap.add_argument(
        "--advise",
        action="store_true",
        help="also ask the advisor (accuracy 0.9, same-day 0.99, confident 0.8) on each store",
    )
    ap.add_argument(
        "--check-advice",
        action="store_true",
        help="the advisor's size per target (accuracy 0.9, same-day 0.99, confident 0.8) on"
        " a store at CTM's size against the simulation's smallest at 0.5x-6x, per --seeds",
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()
    if args.check_advice:
        cache: dict = {}
        checked = []
        for visitors in args.visitors:
            days = args.days or {200: 30, 1000: 10}.get(visitors, 4)
            for seed in args.seeds:
                checked += check_advice(visitors, seed, days, cache)
        print(json.dumps(checked, indent=1) if args.json else advice_table(checked))
        return
    rows = []
    for visitors in args.visitors:
        # enough calls to read a percentage at low volume, minutes at high volume
        days = args.days or {200: 30, 1000: 10}.get(visitors, 4)
        for mult in args.sizes:
            size = max(1, round(visitors / 20 * mult))
            targets = ADVICE_TARGETS if args.advise else None
            signals = tuple(x for x in SIGNALS if x not in args.without)
            summary = run(visitors, size, days, args.seed, targets, signals).summary()
            rows.append(summary)
            print(json.dumps(summary), file=sys.stderr, flush=True)
    print(json.dumps(rows, indent=1) if args.json else table(rows))


if __name__ == "__main__":
    main()
