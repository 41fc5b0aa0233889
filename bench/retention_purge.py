"""A retention purge through the daemon's one writer while other writes go on.

    .venv/bin/python bench/retention_purge.py --visits 30000

Seeds a file database with ``--visits`` visits (each with its visitor and pool lease)
older than the default 13 months, then, on the same ``StoreWriter``, measures a stream
of small writes (one every 2 ms from another thread, as the call path's) first alone
(the baseline, 3 s) and then during the purge (``retention.paced(writer.run_sync)``,
as the daemon runs it). Prints the purge's time and rows, and the writes' latency
(p50, p99, max) in both phases. ``--batch`` and ``--share`` change the batch size and
the share of the writer's time the purge may take.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ctm_pbx.adapters.config_loader import parse_config  # noqa: E402
from ctm_pbx.adapters.store import migrate, retention  # noqa: E402
from ctm_pbx.adapters.store.writer import StoreWriter  # noqa: E402
from ctm_pbx.adapters.visits import VisitRequest, handle_visit  # noqa: E402
from ctm_pbx.core.retention import cutoffs  # noqa: E402
from ctm_pbx.edges.cli import sync_config_numbers  # noqa: E402

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"
CONFIG = """\
sources:
  google-ads: {preset: google_ads}
targets:
  sales: "+1 312 555 0100"
pools:
  gads: {source: google-ads}
receiving_numbers:
  desk: {number: "+13125550101", dial: "PJSIP/phone1"}
routes:
  main: {type: single, targets: [desk]}
tracking_numbers:
  - {number: "+13125550150", pool: gads, route: main}
  - {number: "+13125550151", pool: gads, route: main}
"""
NOW = datetime(2026, 12, 3, tzinfo=UTC)


def seed(db, cfg, start: int, n: int) -> None:
    old = NOW - timedelta(days=500)
    for i in range(start, start + n):
        req = VisitRequest(None, f"https://shop.example.com/?gclid=G{i}", ip="198.51.100.9",
                           user_agent=UA)  # fmt: skip
        handle_visit(db, cfg, req, old + timedelta(seconds=i))


def writes(writer: StoreWriter, stop: threading.Event, waits: list[float]) -> None:
    i = 0
    while not stop.is_set():
        t0 = time.perf_counter()
        writer.run_sync(
            lambda db, i=i: db.conn.execute(
                "INSERT OR REPLACE INTO route_state VALUES (?, '{}', '')", (f"r{i % 100}",)
            )
        )
        waits.append(time.perf_counter() - t0)
        i += 1
        time.sleep(0.002)


def phase(writer: StoreWriter, work) -> dict:  # noqa: ANN001 - what runs meanwhile
    stop, waits = threading.Event(), []
    thread = threading.Thread(target=writes, args=(writer, stop, waits))
    thread.start()
    t0 = time.perf_counter()
    result = work()
    elapsed = time.perf_counter() - t0
    stop.set()
    thread.join()
    waits.sort()

    def ms(q: float) -> float:
        return round(waits[int(q * (len(waits) - 1))] * 1000, 2)

    return {"seconds": round(elapsed, 2), "writes": len(waits), "p50_ms": ms(0.5),
            "p99_ms": ms(0.99), "max_ms": ms(1.0), **(result or {})}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--visits", type=int, default=30000)
    ap.add_argument("--batch", type=int, default=retention.BATCH)
    ap.add_argument("--share", type=float, default=retention.PACE_SHARE)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config(CONFIG, env={}, base_dir=tmp)
        writer = StoreWriter(str(Path(tmp) / "bench.db"))
        try:
            writer.run_sync(migrate)
            writer.run_sync(lambda db: sync_config_numbers(cfg, db))
            for start in range(0, args.visits, 5000):
                writer.run_sync(seed, cfg, start, min(5000, args.visits - start))
            baseline = phase(writer, lambda: time.sleep(3))
            run = retention.paced(writer.run_sync, args.share)

            def purge() -> dict:
                counts, _ = retention.purge(run, cutoffs(cfg.retention, NOW), tmp, batch=args.batch)
                return {"visits_deleted": counts.visits_deleted,
                        "leases_deleted": counts.leases_deleted,
                        "visitors_deleted": counts.visitors_deleted}  # fmt: skip

            during = phase(writer, purge)
        finally:
            writer.close()
    print(json.dumps({"batch": args.batch, "share": args.share, "baseline": baseline,
                      "purge": during}))  # fmt: skip


if __name__ == "__main__":
    main()
