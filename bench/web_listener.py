"""Benchmark: the daemon's web listener (connection caps, quiet errors) against
aiohttp's plain TCP site serving the same app, with the same load generator.

    .venv/bin/python bench/web_listener.py --seconds 3 --concurrency 16

Each server runs in its own process; the load generator (an aiohttp client with N
concurrent loops) in a third; the runs alternate and their medians are compared. Two
loads against ``GET /healthz/live``: keep-alive requests (one connection per loop), and
a new connection per request (what the caps and the per-connection bookkeeping cost
most). Prints one JSON line per run, then the medians and the listener's ratios to the
plain site.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SERVE = """
import asyncio, sys
from aiohttp import web
from ctm_pbx.edges.web import create_app
from ctm_pbx.edges.web_listener import ConnectionCaps, GuardedSite
async def main(kind, port):
    runner = web.AppRunner(create_app(dict), access_log=None)
    await runner.setup()
    if kind == "listener":
        site = GuardedSite(runner, "127.0.0.1", port, ConnectionCaps(total=4096, per_client=4096))
    else:
        site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    await asyncio.Event().wait()
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""

LOAD = """
import asyncio, json, sys, time
import aiohttp
async def main(url, seconds, concurrency, fresh):
    done = 0
    stop = time.monotonic() + seconds
    async def loop(session):
        nonlocal done
        while time.monotonic() < stop:
            async with session.get(url) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            done += 1
    connector = aiohttp.TCPConnector(force_close=fresh, limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(loop(session) for _ in range(concurrency)))
    print(json.dumps({"requests_per_s": round(done / seconds)}))
asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "fresh"))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def measure(kind: str, load: str, seconds: float, concurrency: int) -> dict:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVE, kind, str(port)], cwd=REPO)
    try:
        wait_listening(port)
        url = f"http://127.0.0.1:{port}/healthz/live"
        args = [url, str(seconds), str(concurrency), load]
        out = subprocess.run(
            [sys.executable, "-c", LOAD, *args], capture_output=True, text=True, check=True
        ).stdout
        return {"server": kind, "load": load, **json.loads(out)}
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs; medians")
    opts = parser.parse_args()
    results: dict[tuple[str, str], list[int]] = {}
    for _ in range(opts.repeat):
        for load in ("keepalive", "fresh"):
            for kind in ("plain", "listener"):
                row = measure(kind, load, opts.seconds, opts.concurrency)
                results.setdefault((kind, load), []).append(row["requests_per_s"])
                print(json.dumps(row), flush=True)
    medians = {key: statistics.median(runs) for key, runs in results.items()}
    ratios = {
        load: round(medians["listener", load] / medians["plain", load], 2)
        for load in ("keepalive", "fresh")
    }
    print(json.dumps({"median_requests_per_s": {f"{k}/{lo}": v for (k, lo), v in medians.items()}}))
    print(json.dumps({"listener_vs_plain": ratios}))


if __name__ == "__main__":
    main()
