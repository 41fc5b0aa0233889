"""Benchmark: the visit API (source resolution, SQLite writes, pool leases) against a bare
aiohttp handler, with the same load generator, on 127.0.0.1.

    .venv/bin/python bench/visit_api.py --seconds 5 --concurrency 32

Each server runs in its own process (one core's worth of Python, like the daemon). The
load generator is an aiohttp client with N concurrent loops in a third process. The API
load is page views of 1,000 returning visitors from a Google Ads click, across 50 pages of
the site (each visitor keeps its pool number: a lease renewal, a visit update), the
realistic steady state of a website. Those are answered from the daemon's memory and their
writes batched (``ctm_pbx.adapters.visits.VisitDesk``); ``--pages 0`` sends every request
to the store instead, as new visits from an ad click (the worst case).
``--sources 11,100,1000`` runs the API once per config size (the example's sources plus
custom ones, see ``source_resolution.py``), against the same bare handler; with
``--new-visitors`` too (each size from a copy of the same database).
The per-IP limits are lifted for the run (all load comes from 127.0.0.1).
``--baselines`` adds two servers that bound what the API can reach: the same API with a
store job that does nothing (``empty-job``: the writer's hop and an empty transaction, no
SQL) and with no store at all (``no-store``: the API's checks, middlewares and JSON).
``--repeat N`` runs every server N times, interleaved, and reports the medians.

New visitors, with a given number of active leases already held (the cost of a hand-out
must not grow with them):

    .venv/bin/python bench/visit_api.py --new-visitors --leases 100
    .venv/bin/python bench/visit_api.py --new-visitors --leases 10000
    .venv/bin/python bench/visit_api.py --new-visitors --pools 300 --pool-size 10

``--new-visitors``: every request a new visitor (no visitor id) from its own address (sent
as X-Forwarded-For through a trusted loopback proxy: the per-client lease cap applies as
on a real site). ``--leases N`` stores N active, confirmed leases on N numbers of the pool
before the server starts, beside ``--free`` (5,000) never-used numbers for the new
visitors; ``--pools S --pool-size M``: S on-site sources (``utm_source=srcK``), each with
a pool of M numbers, the new visitors spread over them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from source_resolution import sources_yaml

REPO = Path(__file__).resolve().parents[1]
BROWSER_UA = (  # a visitor's browser: tools' own user agents are crawlers to the API
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36"
)

CONFIG = """\
database: {path: bench.db}
web: {host: 127.0.0.1, port: 18091}
sources:
  google-ads: {preset: google_ads}
  direct: {preset: direct}
targets:
  sales: "+1 312 555 0100"
pools:
  gads: {source: google-ads, target: sales}
receiving_numbers:
  desk: {number: "+13125550101", dial: "PJSIP/phone1"}
routes:
  main: {type: single, targets: [desk]}
tracking_numbers:
"""

POOLS = """\
database: {{path: bench.db}}
web: {{host: 127.0.0.1, port: 18091, trusted_proxies: [127.0.0.1]}}
sources:
{sources}  direct: {{preset: direct}}
targets:
  sales: "+1 312 555 0100"
pools:
{pools}receiving_numbers:
  desk: {{number: "+13125550101", dial: "PJSIP/phone1"}}
routes:
  main: {{type: single, targets: [desk]}}
"""

SERVE_API = """
import asyncio, os, sys
from aiohttp import web
from ctm_pbx.adapters.config_loader import load_config
from ctm_pbx.adapters.store import migrate, open_db
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.core.ratelimit import RateLimiter
from ctm_pbx.edges.cli import sync_config_numbers
from ctm_pbx.edges.web import VisitApi, create_app
cfg = load_config(sys.argv[1])
db = open_db(cfg.database.path); migrate(db); sync_config_numbers(cfg, db); db.conn.close()
writer = StoreWriter(cfg.database.path)
stub = os.environ.get("CTM_BENCH_BASELINE")  # --baselines: what bounds the API
if stub:
    from ctm_pbx.adapters import visits
    def fixed(db, config, req, now, *rest):  # the answer of a new visit, decided by nobody
        shown = {"number": "+13125552000", "display": "(312) 555-2000"}
        return visits.VisitResult(req.visitor_id or visits.new_id(), None, "google-ads",
                                  "gclid", {"+13125550100": shown}, "2030-01-01T00:00:00Z")
    if stub == "empty-job":  # the writer's hop and its (empty) transaction, no SQL
        visits.handle_visit = fixed
    else:  # "no-store": the API's checks, middlewares and JSON only
        async def answer(self, req, now):
            return fixed(None, None, req, now)
        visits.VisitDesk.visit = answer
api = VisitApi(cfg, writer, requests=RateLimiter(1e9, 10**9),
               new_visitors=RateLimiter(1e9, 10**9))
web.run_app(create_app(lambda: {"ari_connected": True}, api), host="127.0.0.1",
            port=int(sys.argv[2]), access_log=None, print=None)
"""

SERVE_BARE = """
import sys
from aiohttp import web
async def handler(request):
    body = await request.json()
    return web.json_response({"visitor_id": body.get("visitor_id"), "numbers": {}})
app = web.Application()
app.router.add_post("/api/visit", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=None, print=None)
"""


async def load(
    port: int,
    seconds: float,
    concurrency: int,
    visitors: list[str],
    pages: int = 50,
    new_visitors: bool = False,
    pools: int = 0,
) -> dict:
    import aiohttp

    url = f"http://127.0.0.1:{port}/api/visit"
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + seconds

    async def worker(i: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors
        n = i
        while time.monotonic() < stop_at:
            vid = visitors[n % len(visitors)] if visitors else None
            n += concurrency
            headers = {"User-Agent": BROWSER_UA}
            if new_visitors:  # a new visitor from an address of its own
                vid, referrer = None, None
                headers["X-Forwarded-For"] = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
                query = f"utm_source=src{n % pools}" if pools else f"gclid=n{n}"
                landing = f"https://shop.example.com/?{query}"
            elif pages:
                landing = f"https://shop.example.com/page{n % pages}"
                referrer = "https://shop.example.com/"
            else:  # a new ad click each time: a new visit, decided by the store
                landing, referrer = f"https://shop.example.com/?gclid=c{n}", None
            body = {"visitor_id": vid, "landing_url": landing, "referrer": referrer}
            t0 = time.perf_counter()
            async with session.post(url, json=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - t0)

    async with aiohttp.ClientSession() as session:
        t0 = time.monotonic()
        await asyncio.gather(*(worker(i, session) for i in range(concurrency)))
        wall = time.monotonic() - t0
    latencies.sort()
    return {
        "requests_per_s": round(len(latencies) / wall),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "errors": errors,
        "requests": len(latencies),
    }


async def seed_visitors(port: int, count: int) -> list[str]:
    import aiohttp

    ids = []
    async with aiohttp.ClientSession() as session:
        for i in range(count):
            body = {"landing_url": f"https://shop.example.com/?gclid=bench{i}"}
            headers = {"User-Agent": BROWSER_UA}
            async with session.post(
                f"http://127.0.0.1:{port}/api/visit", json=body, headers=headers
            ) as resp:
                ids.append((await resp.json())["visitor_id"])
    return ids


def cpu_seconds(pid: int) -> float:
    """The process's CPU time (user + system, every thread), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(code: str, config: Path, port: int, baseline: str = "") -> subprocess.Popen:
    import socket

    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} is in use: pass another --port")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(config), str(port)],
        cwd=REPO,
        env={**os.environ, "CTM_BENCH_BASELINE": baseline},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    for _ in range(300):
        if proc.poll() is not None:
            break
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(proc.stderr.read().decode()[-2000:])


def prepare_pools(work: Path, args: argparse.Namespace) -> None:
    """The config and a database holding the numbers (CLI-managed) and ``--leases``."""
    sys.path.insert(0, str(REPO))
    from datetime import UTC, datetime, timedelta

    from ctm_pbx.adapters.store import leases as lease_store
    from ctm_pbx.adapters.store import migrate, open_db
    from ctm_pbx.adapters.store import visitors as visitor_store
    from ctm_pbx.adapters.store.numbers import add_numbers
    from ctm_pbx.core.clock import iso
    from ctm_pbx.core.inventory import NumberRecord

    if args.pools:
        names = [f"src{k}" for k in range(args.pools)]
        rule = "{{kind: onsite, match: [{{landing_params: {{utm_source: {0}}}}}]}}"
        sources = "".join(f"  {n}: {rule.format(n)}\n" for n in names)
        sizes = {n: args.pool_size for n in names}
    else:
        sources, names = "  google-ads: {preset: google_ads}\n", ["google-ads"]
        sizes = {"google-ads": args.leases + args.free}
    pools = "".join(f"  p-{n}: {{source: {n}, target: sales}}\n" for n in names)
    (work / "config.yaml").write_text(POOLS.format(sources=sources, pools=pools), encoding="utf-8")
    db = open_db(str(work / "bench.db"))
    migrate(db)
    now = datetime.now(UTC)
    records, serial = [], 0
    for n in names:
        for _ in range(sizes[n]):
            records.append(NumberRecord(f"+1{2000000000 + serial}", n, f"p-{n}", "main"))
            serial += 1
    with db.conn:
        add_numbers(db, records, now=iso(now))
        for i in range(args.leases):  # held for the whole run, renewed once: confirmed
            vid = f"held-{i:06d}"
            visitor_store.upsert_visitor(db, vid, now=now)
            lease = lease_store.insert_lease(
                db,
                number=records[i].number,
                pool=records[i].pool or "",
                visitor_id=vid,
                visit_id=None,
                now=now - timedelta(seconds=30),
                expires_at=now,
                client=f"10.200.{i >> 8 & 255}.{i & 255}",
            )
            lease_store.renew_lease(
                db, lease, now, now + timedelta(minutes=30), number=records[i].number
            )
    db.conn.close()


def measure(name: str, code: str, port: int, config_path: Path, args: argparse.Namespace) -> dict:
    """One server under the load: requests/s, latencies and its CPU per request."""
    baseline = name.removeprefix("baseline_") if name.startswith("baseline_") else ""
    proc = serve(code, config_path, port, baseline)
    try:
        visitors = (
            asyncio.run(seed_visitors(port, args.visitors))
            if name.startswith(("visit_api", "baseline_")) and not args.new_visitors
            else [f"visitor-{i:06d}" for i in range(args.visitors)]
        )
        opts = {"new_visitors": args.new_visitors, "pools": args.pools}
        asyncio.run(load(port, 1, args.concurrency, visitors, args.pages, **opts))  # warm up
        cpu = cpu_seconds(proc.pid)
        result = asyncio.run(
            load(port, args.seconds, args.concurrency, visitors, args.pages, **opts)
        )
        used = cpu_seconds(proc.pid) - cpu  # steadier than requests/s on a shared machine
        result["cpu_ms_per_request"] = round(used * 1000 / max(1, result["requests"]), 3)
        return result
    finally:
        proc.terminate()
        proc.wait(10)


def ratios(passes: list[dict], sizes: list[int]) -> dict:
    """Each server's requests/s over the bare handler's of the same pass, and its CPU per
    request: the medians of the passes."""
    summary: dict = {}
    for name in passes[0]:
        cpu = statistics.median(p[name]["cpu_ms_per_request"] for p in passes)
        if name == "bare_aiohttp":
            summary["cpu_ms_bare"] = cpu
            continue
        ratio = statistics.median(
            p[name]["requests_per_s"] / p["bare_aiohttp"]["requests_per_s"] for p in passes
        )
        short = name.removeprefix("visit_")
        summary[f"ratio_{short}_vs_bare"] = round(ratio, 2)
        summary[f"cpu_ms_{short}"] = cpu
    if len(sizes) > 1:
        first, last = (f"visit_api_{n}_sources" for n in (sizes[0], sizes[-1]))
        grew = [p[last]["requests_per_s"] / p[first]["requests_per_s"] for p in passes]
        summary[f"ratio_{sizes[-1]}_vs_{sizes[0]}_sources"] = round(statistics.median(grew), 2)
    summary["passes"] = len(passes)
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--visitors", type=int, default=1000)
    ap.add_argument("--pages", type=int, default=50, help="0: every request an ad click")
    ap.add_argument("--port", type=int, default=18091, help="the API's (the bare server: +1)")
    ap.add_argument(
        "--sources", default="", help="config sizes, e.g. 11,100,1000 (default: 2 sources)"
    )
    ap.add_argument("--new-visitors", action="store_true", help="every request a new visitor")
    ap.add_argument(
        "--baselines",
        action="store_true",
        help="also the API with its store job doing nothing (empty-job) and with no store"
        " at all (no-store): what bounds the API besides SQLite",
    )
    ap.add_argument("--repeat", type=int, default=1, help="interleaved passes (medians)")
    ap.add_argument("--leases", type=int, default=0, help="active leases stored beforehand")
    ap.add_argument("--free", type=int, default=5000, help="free numbers beside --leases")
    ap.add_argument("--pools", type=int, default=0, help="on-site sources, a pool each")
    ap.add_argument("--pool-size", type=int, default=10, help="numbers of each --pools pool")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ctm-bench-api-"))
    if args.new_visitors:
        prepare_pools(work, args)
    else:
        numbers = "".join(
            f'  - {{number: "+1312555{2000 + i:04d}", pool: gads, route: main}}\n'
            for i in range(args.visitors // 5)
        )
        (work / "config.yaml").write_text(CONFIG + numbers, encoding="utf-8")
    runs = [("bare_aiohttp", SERVE_BARE, args.port + 1, work / "config.yaml")]
    sizes = [int(n) for n in args.sources.split(",") if n.strip()]
    if sizes and args.pools:
        ap.error("--sources goes with the Google Ads pool (not --pools)")
    for size in sizes:
        (work / str(size)).mkdir()
        if args.new_visitors:  # each size starts from the same numbers and leases
            shutil.copy(work / "bench.db", work / str(size) / "bench.db")
        config = (
            (work / "config.yaml")
            .read_text(encoding="utf-8")
            .replace(
                "sources:\n  google-ads: {preset: google_ads}\n  direct: {preset: direct}\n",
                sources_yaml(size).rstrip("\n") + "\n",
            )
        )
        (work / str(size) / "config.yaml").write_text(config, encoding="utf-8")
        runs.append(
            (f"visit_api_{size}_sources", SERVE_API, args.port, work / str(size) / "config.yaml")
        )
    if not sizes:
        runs.append(("visit_api", SERVE_API, args.port, work / "config.yaml"))
    if args.baselines:
        last = runs[-1][3]
        runs += [(f"baseline_{b}", SERVE_API, args.port, last) for b in ("empty-job", "no-store")]
    passes: list[dict] = []
    for _ in range(args.repeat):  # interleaved: each pass runs every server once
        results = {}
        for name, code, port, config_path in runs:
            results[name] = measure(name, code, port, config_path, args)
            print(json.dumps({name: results[name]}), flush=True)
        passes.append(results)
    summary = ratios(passes, sizes)
    summary.update(
        cores=os.cpu_count(), concurrency=args.concurrency, pages=args.pages,
        new_visitors=args.new_visitors, leases=args.leases, pools=args.pools,
    )  # fmt: skip
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
