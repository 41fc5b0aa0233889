"""Benchmark: the visit API's memory (remembered visitors, per-IP rate limits) when full.

    .venv/bin/python bench/visitor_memory.py
    .venv/bin/python bench/visitor_memory.py --sizes 1000,300000 --requests 50000 --no-before

For each size N, a ``VisitDesk`` remembers N live visitors (its cap is N: the memory is
full) and both rate limiters hold N clients (their cap is N). Then a stream of requests
goes through what the API handler does with them, in process, without HTTP or SQLite:
``requests.allow(ip)``, ``new_visitors.allow(ip)`` for a page view, and

- a returning visitor's page view or heartbeat (4 in 5): ``VisitDesk.visit``, answered
  from memory (the real path, its writes buffered);
- a new visitor (1 in 5, from a new IP: a new client of both limiters): the store's
  answer remembered (``VisitDesk._remember``), the store itself left out.

After filling, a full pass of the cycle collector is timed (``full_collection_ms``: the
pause a generation-2 collection makes the event loop wait), beside the same pass before
the memory was filled (``full_collection_empty_ms``: the process's own objects).
Each request is timed alone: wall time (perf_counter_ns: p50, p99, max) and the CPU time
of the thread (``cpu_p99_us``: not counting the time the OS gave other processes, the
steadier figure on a shared machine). The summary gives the median over ``--repeat``
passes and the p99 ratio against the smallest size of the same run (flat: about 1).
Two phases per size: ``spread``, returning visitors among the last quarter remembered
(the working set grows with the memory, as on a busy site), and ``hot``, among the last
250 (the same working set at every size: what the structure's size alone costs).

``--before`` (the default; ``--no-before`` skips it) also times the new visitors' part
with the previous structures, copied below: a dict scanned for stale visitors whenever
the memory is full (nothing stale here, so every new visitor scans it all and is not
remembered) and a dict of buckets scanned for idle clients, then for the oldest. Those
are slow, so they get ``--before-requests`` new visitors per size.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.adapters.visits import VisitDesk, VisitRequest
from ctm_pbx.core.pools import lease_expiry
from ctm_pbx.core.ratelimit import RateLimiter
from ctm_pbx.core.returning_visitors import HeldNumber, KnownVisitor, answer_known_visitor
from ctm_pbx.core.sources import Touch

CONFIG = """\
sources:
  google-ads: {preset: google_ads}
  direct: {preset: direct}
targets:
  sales: "+1 312 555 0100"
pools:
  gads: {source: google-ads, target: sales}
"""
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SITE = "https://shop.example.com"
TOUCH = Touch("google-ads", "click id gclid", T0)


def known(n: int, now: datetime, pool) -> KnownVisitor:
    number = f"+1312556{n % 10000:04d}"
    held = HeldNumber("+13125550100", number, "gads", False, n, lease_expiry(pool, now))
    return KnownVisitor(f"visitor-{n:08d}", TOUCH, f"visit-{n}", f"visit-{n}", now, (held,), now)


def ip(n: int) -> str:
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def percentiles(ns: list[int]) -> dict:
    ordered = sorted(ns)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000  # noqa: E731
    return {"p50_us": round(at(0.5), 2), "p99_us": round(at(0.99), 2), "max_us": at(1.0)}


def full_collection_ms() -> float:
    """A full pass of the cycle collector (what a generation-2 collection stops the event
    loop for): the median of three, in ms."""
    pauses = []
    for _ in range(3):
        t = time.perf_counter_ns()
        gc.collect()
        pauses.append(time.perf_counter_ns() - t)
    return round(statistics.median(pauses) / 1e6, 2)


async def run_size(cfg, writer: StoreWriter, size: int, requests: int) -> list[dict]:
    """Fill a desk and limiters to ``size``, then time ``requests`` requests per phase."""
    pool = cfg.pools["gads"]
    empty = full_collection_ms()  # the process's own objects: the baseline
    desk = VisitDesk(cfg, writer, flush_after=3600, max_known=size)
    limits = RateLimiter(rate=10, burst=60, max_clients=size)
    new_visitors = RateLimiter(rate=1, burst=20, max_clients=size)
    for n in range(size):
        now = T0 + timedelta(microseconds=n)
        desk._remember(known(n, now, pool), now)
        limits.allow(ip(n), n * 1e-6)
        new_visitors.allow(ip(n), n * 1e-6)
    assert len(desk._known) == size and len(limits) == size
    gc.collect()
    full = full_collection_ms()
    fresh = size  # the next new visitor
    rows = []
    for phase, window in (("spread", size // 4), ("hot", min(250, size // 4))):
        times: list[int] = []
        new_times: list[int] = []
        cpu: list[int] = []
        start = T0 + timedelta(seconds=1 + len(rows) * requests / 5000)
        for i in range(requests):
            now = start + timedelta(microseconds=200 * i)  # 5,000 requests/s: none goes stale
            tick = (now - T0).total_seconds()
            if i % 5 == 4:  # a new visitor from a new address
                client = ip(fresh)
                visitor = known(fresh, now, pool)
                fresh += 1
                c, t = time.thread_time_ns(), time.perf_counter_ns()
                limits.allow(client, tick)
                new_visitors.allow(client, tick)
                desk._remember(visitor, now)
                new_times.append(time.perf_counter_ns() - t)
                cpu.append(time.thread_time_ns() - c)
                times.append(new_times[-1])
            else:  # a returning visitor among the last ``window`` remembered (none forgotten)
                n = fresh - 1 - (i * 7919) % window
                client = ip(n)
                page = i % 2 == 0
                req = VisitRequest(
                    f"visitor-{n:08d}", f"{SITE}/page-{i % 50}" if page else None, SITE + "/"
                )
                c, t = time.thread_time_ns(), time.perf_counter_ns()
                limits.allow(client, tick)
                if page:
                    new_visitors.allow(client, tick)
                result = await desk.visit(req, now)
                times.append(time.perf_counter_ns() - t)
                cpu.append(time.thread_time_ns() - c)
                assert result.numbers, "answered from memory"
        assert len(desk._known) == size, "the memory stays at its cap"
        for buffered in (desk._pending.visits, desk._pending.renewals, desk._pending.visitors):
            buffered.clear()  # nothing of this goes to the store
        new = percentiles(new_times)
        rows.append(
            {
                "phase": phase,
                "remembered": size,
                "requests": requests,
                **percentiles(times),
                "cpu_p99_us": percentiles(cpu)["p99_us"],
                "new_visitor_p50_us": new["p50_us"],
                "new_visitor_p99_us": new["p99_us"],
                "full_collection_ms": full,
                "full_collection_empty_ms": empty,
            }
        )
    if desk._flush_timer is not None:  # the loop would keep the desk (and its memory) alive
        desk._flush_timer.cancel()
    return rows


@dataclass
class BeforeMemory:
    """The previous ``VisitDesk`` memory: a dict, scanned for stale visitors when full."""

    pools: dict
    max_known: int
    known: dict[str, KnownVisitor] = field(default_factory=dict)

    def remember(self, visitor: KnownVisitor, now: datetime) -> None:
        if len(self.known) >= self.max_known:
            stale = [
                vid
                for vid, k in self.known.items()
                if answer_known_visitor(k, None, {}, self.pools, 0, now) is None
            ]
            for vid in stale:
                del self.known[vid]
        if len(self.known) < self.max_known:
            self.known[visitor.visitor_id] = visitor


@dataclass
class BeforeLimiter:
    """The previous ``RateLimiter``'s eviction: a dict scanned for idle, then oldest, buckets."""

    rate: float
    burst: int
    max_clients: int
    buckets: dict[str, list[float]] = field(default_factory=dict)

    def allow(self, client: str, now: float) -> None:
        bucket = self.buckets.get(client)
        if bucket is None:
            if len(self.buckets) >= self.max_clients:
                full_after = self.burst / self.rate
                for key in [k for k, b in self.buckets.items() if now - b[1] >= full_after]:
                    del self.buckets[key]
                if len(self.buckets) >= self.max_clients:
                    oldest = min(self.buckets, key=lambda k: self.buckets[k][1])
                    del self.buckets[oldest]
            bucket = self.buckets[client] = [float(self.burst), now]
        bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now


def run_before(cfg, size: int, requests: int) -> dict:
    pool = cfg.pools["gads"]
    memory = BeforeMemory(cfg.pools, size)
    limits = BeforeLimiter(10, 60, size)
    new_visitors = BeforeLimiter(1, 20, size)
    for n in range(size):
        now = T0 + timedelta(microseconds=n)
        memory.known[f"visitor-{n:08d}"] = known(n, now, pool)
        limits.allow(ip(n), n * 1e-6)
        new_visitors.allow(ip(n), n * 1e-6)
    gc.collect()
    times = []
    start = T0 + timedelta(seconds=1)
    for i in range(requests):
        now = start + timedelta(milliseconds=i)
        tick = 1 + 1e-3 * i
        client, visitor = ip(size + i), known(size + i, now, pool)
        t = time.perf_counter_ns()
        limits.allow(client, tick)
        new_visitors.allow(client, tick)
        memory.remember(visitor, now)
        times.append(time.perf_counter_ns() - t)
    return {"remembered": size, "new_visitors": requests, **percentiles(times)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000,300000")
    parser.add_argument("--requests", type=int, default=20_000, help="per size")
    parser.add_argument("--before", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--before-requests", type=int, default=5, help="per size")
    parser.add_argument("--repeat", type=int, default=3, help="passes; the median is quoted")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    cfg = parse_config(CONFIG, env={})
    passes: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        writer = StoreWriter(str(Path(tmp) / "unused.db"))  # the memory path never waits on it
        try:
            for turn in range(args.repeat):  # the order flips at each pass
                for size in sizes if turn % 2 == 0 else sizes[::-1]:
                    for row in await run_size(cfg, writer, size, args.requests):
                        print(json.dumps({"structure": "now", "pass": turn + 1, **row}))
                        passes.setdefault((row["phase"], size), []).append(row)
        finally:
            writer.close()
    keys = ("p50_us", "p99_us", "cpu_p99_us", "new_visitor_p50_us", "new_visitor_p99_us",
            "full_collection_ms", "full_collection_empty_ms")  # fmt: skip
    median = {
        at: {k: statistics.median(r[k] for r in rows) for k in keys} for at, rows in passes.items()
    }
    summary: dict = {}
    for phase in ("spread", "hot"):
        base = median[phase, sizes[0]]["p99_us"]
        summary[phase] = {
            "median_p50_us": {s: median[phase, s]["p50_us"] for s in sizes},
            "median_p99_us": {s: median[phase, s]["p99_us"] for s in sizes},
            "median_p99_vs_smallest": {
                s: round(median[phase, s]["p99_us"] / base, 2) for s in sizes
            },
            "median_cpu_p99_us": {s: median[phase, s]["cpu_p99_us"] for s in sizes},
            "median_new_visitor_p99_us": {s: median[phase, s]["new_visitor_p99_us"] for s in sizes},
        }
    summary["full_collection_ms"] = {s: median["spread", s]["full_collection_ms"] for s in sizes}
    summary["full_collection_empty_ms"] = {
        s: median["spread", s]["full_collection_empty_ms"] for s in sizes
    }
    if args.before:
        for size in sizes:
            was = run_before(cfg, size, args.before_requests)
            print(json.dumps({"structure": "before", **was}))
            summary.setdefault("before_new_visitor_p50_us", {})[size] = was["p50_us"]
            summary.setdefault("before_vs_now_new_visitor_p50", {})[size] = round(
                was["p50_us"] / median["spread", size]["new_visitor_p50_us"]
            )
    print(json.dumps({"summary": summary}))


if __name__ == "__main__":
    asyncio.run(main())
