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
custom ones, see ``source_resolution.py``), against the same bare handler.
The per-IP limits are lifted for the run (all load comes from 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from source_resolution import sources_yaml

REPO = Path(__file__).resolve().parents[1]

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

SERVE_API = """
import asyncio, sys
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
    port: int, seconds: float, concurrency: int, visitors: list[str], pages: int = 50
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
            if pages:
                landing = f"https://shop.example.com/page{n % pages}"
                referrer = "https://shop.example.com/"
            else:  # a new ad click each time: a new visit, decided by the store
                landing, referrer = f"https://shop.example.com/?gclid=c{n}", None
            body = {"visitor_id": vid, "landing_url": landing, "referrer": referrer}
            t0 = time.perf_counter()
            async with session.post(url, json=body) as resp:
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
            async with session.post(f"http://127.0.0.1:{port}/api/visit", json=body) as resp:
                ids.append((await resp.json())["visitor_id"])
    return ids


def serve(code: str, config: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(config), str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    import socket

    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(proc.stderr.read().decode()[-2000:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--visitors", type=int, default=1000)
    ap.add_argument("--pages", type=int, default=50, help="0: every request an ad click")
    ap.add_argument(
        "--sources", default="", help="config sizes, e.g. 11,100,1000 (default: 2 sources)"
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ctm-bench-api-"))
    numbers = "".join(
        f'  - {{number: "+1312555{2000 + i:04d}", pool: gads, route: main}}\n'
        for i in range(args.visitors // 5)
    )
    (work / "config.yaml").write_text(CONFIG + numbers, encoding="utf-8")
    runs = [("bare_aiohttp", SERVE_BARE, 18092, work / "config.yaml")]
    sizes = [int(n) for n in args.sources.split(",") if n.strip()]
    for size in sizes:
        (work / str(size)).mkdir()
        config = CONFIG.replace(
            "sources:\n  google-ads: {preset: google_ads}\n  direct: {preset: direct}\n",
            sources_yaml(size).rstrip("\n") + "\n",
        )
        (work / str(size) / "config.yaml").write_text(config + numbers, encoding="utf-8")
        runs.append(
            (f"visit_api_{size}_sources", SERVE_API, 18091, work / str(size) / "config.yaml")
        )
    if not sizes:
        runs.append(("visit_api", SERVE_API, 18091, work / "config.yaml"))
    results = {}
    for name, code, port, config_path in runs:
        proc = serve(code, config_path, port)
        try:
            visitors = (
                asyncio.run(seed_visitors(port, args.visitors))
                if name.startswith("visit_api")
                else [f"visitor-{i:06d}" for i in range(args.visitors)]
            )
            asyncio.run(load(port, 1, args.concurrency, visitors, args.pages))  # warm up
            results[name] = asyncio.run(
                load(port, args.seconds, args.concurrency, visitors, args.pages)
            )
        finally:
            proc.terminate()
            proc.wait(10)
        print(json.dumps({name: results[name]}), flush=True)
    bare = results.pop("bare_aiohttp")["requests_per_s"]
    summary: dict = {
        f"ratio_{name.removeprefix('visit_')}_vs_bare": round(result["requests_per_s"] / bare, 2)
        for name, result in results.items()
    }
    if len(sizes) > 1:
        first, last = (
            results[f"visit_api_{n}_sources"]["requests_per_s"] for n in (sizes[0], sizes[-1])
        )
        summary[f"ratio_{sizes[-1]}_vs_{sizes[0]}_sources"] = round(last / first, 2)
    summary.update(cores=os.cpu_count(), concurrency=args.concurrency, pages=args.pages)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
