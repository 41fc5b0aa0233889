"""Benchmark: the outbox. What writing the events costs the call log's writer, how fast
the delivery worker empties the outbox, and how long an event takes to arrive.

    .venv/bin/python bench/outbox.py --calls 3000 --destinations 2

Three runs in one process against a fresh database each, with the receiver (a bare
aiohttp app answering 204) in its own process:

  (a) write, no outbox : calls written as the ARI recorder writes them (a row created,
                         then completed), through the writer's ``defer``, no routing
  (b) write, outbox    : the same with ``--destinations`` webhooks wanting
                         call.started and call.completed (2 events per call each)
  (c) deliver          : the events of (b), already committed, sent by the worker
                         to the receiver: events/s until the outbox is empty
  (d) latency          : calls written one at a time at ``--rate`` per second while
                         the worker runs: commit-to-receipt time, p50 and p99

The ratio (b)/(a) is the call path's cost of the outbox (the writes only: the events'
bodies are made by the worker, off the call path).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ctm_pbx.adapters.config_loader import parse_config  # noqa: E402
from ctm_pbx.adapters.outbox_delivery import OutboxDelivery  # noqa: E402
from ctm_pbx.adapters.store import calls as call_store  # noqa: E402
from ctm_pbx.adapters.store import outbox  # noqa: E402
from ctm_pbx.adapters.store.schema import migrate  # noqa: E402
from ctm_pbx.adapters.store.writer import StoreWriter  # noqa: E402
from tests.helpers import BASE  # noqa: E402
from tests.outbox_helpers import finish, start_call  # noqa: E402

RECEIVER = """
import sys, time
from aiohttp import web
got = []
async def hook(request):
    await request.read()
    got.append((request.headers["X-CTM-Event-Id"], time.time()))
    return web.Response(status=204)
async def dump(request):
    return web.json_response(got)
app = web.Application()
app.router.add_post("/hook", hook)
app.router.add_get("/got", dump)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def _start(db, channel: str) -> int:
    return call_store.insert_call(db, start_call(), channel_id=channel, linkedid=None)


def _finish(db, channel: str) -> None:
    (call_id,) = db.execute("SELECT id FROM calls WHERE channel_id = ?", [channel]).fetchone()
    call_store.finish_call(db, call_id, finish(talk=45.0))


async def write_calls(writer: StoreWriter, n: int) -> float:
    """n calls as the ARI recorder writes them (deferred jobs); seconds until committed."""
    t0 = time.perf_counter()
    for i in range(n):
        writer.defer(_start, f"b-{i}")
        writer.defer(_finish, f"b-{i}")
        if i % 50 == 49:
            await asyncio.sleep(0)  # let the writer's timer run, as calls arrive over time
    await writer.run(lambda db: None)  # everything before it is committed
    return time.perf_counter() - t0


def config(port: int, destinations: int, db_path: str):
    hooks = "".join(
        f"  d{i}:\n    url: http://127.0.0.1:{port}/hook\n    secret: bench-secret-0123456789\n"
        "    events: [call.started, call.completed]\n"
        for i in range(destinations)
    )
    cfg = parse_config(f"database: {{path: {db_path}}}\nwebhooks:\n{hooks}" + BASE, env={})
    return dataclasses.replace(cfg, outbox=dataclasses.replace(cfg.outbox, max_attempts=3))


async def fetch_got(port: int) -> list:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/got") as r:
        return await r.json()


async def main(args: argparse.Namespace) -> None:
    port = 18900 + os.getpid() % 500
    rx = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    try:
        await asyncio.sleep(1.0)
        with tempfile.TemporaryDirectory() as tmp:
            results = {}
            # (a) no outbox
            w = StoreWriter(f"{tmp}/a.db")
            w.run_sync(migrate)
            results["write_plain_s"] = await write_calls(w, args.calls)
            w.close()
            # (b) with the outbox
            path = f"{tmp}/b.db"
            cfg = config(port, args.destinations, path)
            w = StoreWriter(path)
            w.run_sync(migrate)
            w.run_sync(outbox.attach, outbox.routing_for(cfg))
            results["write_outbox_s"] = await write_calls(w, args.calls)
            events = w.run_sync(lambda db: db.execute("SELECT count(*) FROM outbox").fetchone()[0])
            w.run_sync(outbox.detach)
            # (c) delivery of what (b) committed
            delivery = OutboxDelivery(cfg, w)
            t0 = time.perf_counter()
            await delivery.start()
            while True:
                left = await w.run(
                    lambda db: db.execute(
                        "SELECT count(*) FROM outbox WHERE state != 'delivered'"
                    ).fetchone()[0]
                )
                if not left:
                    break
                await asyncio.sleep(0.05)
            results["deliver_s"] = time.perf_counter() - t0
            # (d) latency at a steady rate, the worker running
            before = len(await fetch_got(port))
            sent_at = {}
            for i in range(args.latency_calls):
                await w.run(_start, f"l-{i}")
                sent_at[i] = time.time()
                await asyncio.sleep(1 / args.rate)
            await asyncio.sleep(1.0)
            got = (await fetch_got(port))[before:]
            ids = w.run_sync(
                lambda db: dict(
                    db.execute(
                        "SELECT o.event_id, c.channel_id FROM outbox o JOIN calls c"
                        " ON c.id = o.call_id WHERE c.channel_id LIKE 'l-%'"
                    ).fetchall()
                )
            )
            lat = sorted(
                (at - sent_at[int(ids[eid][2:])]) * 1000 for eid, at in got if eid in ids
            )
            await delivery.close()
            w.close()
        n = args.calls
        print(f"calls: {n}, destinations: {args.destinations}, events: {events}")
        a, b = results["write_plain_s"], results["write_outbox_s"]
        print(f"(a) write, no outbox : {n / a:8.0f} calls/s")
        print(f"(b) write, outbox    : {n / b:8.0f} calls/s  ({events / b:.0f} events/s written)")
        print(f"    ratio (b)/(a)    : {a / b:.2f}")
        print(f"(c) deliver          : {events / results['deliver_s']:8.0f} events/s")
        if lat:
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(
                f"(d) latency          : p50 {statistics.median(lat):.1f} ms, p99 {p99:.1f} ms"
                f" ({len(lat)} events at {args.rate}/s)"
            )
        print(f"machine: {os.cpu_count()} cores, shared; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    finally:
        rx.terminate()
        rx.wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--destinations", type=int, default=2)
    p.add_argument("--latency-calls", type=int, default=300)
    p.add_argument("--rate", type=float, default=50.0)
    asyncio.run(main(p.parse_args()))
