"""Benchmark: attributing a call (number + time -> visitor) with a million stored visits.

    .venv/bin/python bench/attribution_lookup.py --visits 1000000 --numbers 250 --lookups 2000

Fills a fresh database with visits and one lease per visit, spread over 30 days across a
pool's numbers (as a busy site would leave it), then times the lookup a call makes when it
starts (now, at the end of that history): the number's lease history in the attribution
window, scored by ``ctm_pbx.core.attribution.attribute``. Reports p50/p99 per lookup.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ctm_pbx.adapters.store import leases as lease_store  # noqa: E402
from ctm_pbx.adapters.store import migrate, open_db  # noqa: E402
from ctm_pbx.core.attribution import attribute  # noqa: E402
from ctm_pbx.core.clock import iso  # noqa: E402

WINDOW_MINUTES = 24 * 60


def fill(db, visits: int, numbers: list[str], end: datetime, days: int) -> None:
    rng = random.Random(7)
    span = days * 86400
    batch_v, batch_l = [], []
    with db.conn:
        db.conn.execute(
            "INSERT INTO visitors (id, first_seen_at, last_seen_at) VALUES ('v', ?, ?)",
            (iso(end), iso(end)),
        )
        for i in range(visits):
            start = end - timedelta(seconds=rng.random() * span)
            active = start + timedelta(minutes=rng.expovariate(1 / 5))
            number = numbers[i % len(numbers)]
            batch_v.append((f"visit{i}", "v", iso(start), iso(active), "gads"))
            batch_l.append(
                (
                    number,
                    "gads",
                    "v",
                    f"visit{i}",
                    iso(start),
                    iso(active),
                    iso(active + timedelta(minutes=30)),
                    0,
                )
            )
            if len(batch_v) == 50_000:
                _flush(db, batch_v, batch_l)
        _flush(db, batch_v, batch_l)


def _flush(db, visits, leases) -> None:
    db.conn.executemany(
        "INSERT INTO visits (id, visitor_id, started_at, last_active_at, source)"
        " VALUES (?, ?, ?, ?, ?)",
        visits,
    )
    db.conn.executemany(
        "INSERT INTO leases (number, pool, visitor_id, visit_id, leased_at, last_active_at,"
        " expires_at, shared) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        leases,
    )
    visits.clear()
    leases.clear()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--visits", type=int, default=1_000_000)
    ap.add_argument("--numbers", type=int, default=250)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--lookups", type=int, default=2000)
    args = ap.parse_args()
    path = Path(tempfile.mkdtemp(prefix="ctm-bench-attr-")) / "attr.db"
    db = open_db(path)
    migrate(db)
    end = datetime(2026, 11, 28, tzinfo=UTC)
    numbers = [f"+1312555{1000 + i:04d}" for i in range(args.numbers)]
    t0 = time.monotonic()
    fill(db, args.visits, numbers, end, args.days)
    filled = time.monotonic() - t0
    rng = random.Random(11)
    times = []
    candidates = []
    for _ in range(args.lookups):
        number = rng.choice(numbers)
        at = end - timedelta(seconds=rng.random() * 60)  # a call arriving now
        t = time.perf_counter()
        history = lease_store.lease_history(db, number, at - timedelta(minutes=WINDOW_MINUTES), at)
        result = attribute(number, at, history, WINDOW_MINUTES)
        times.append((time.perf_counter() - t) * 1000)
        candidates.append(len(result.candidates))
    times.sort()
    print(
        json.dumps(
            {
                "visits": args.visits,
                "numbers": args.numbers,
                "fill_seconds": round(filled, 1),
                "lookup_ms_p50": round(times[len(times) // 2], 3),
                "lookup_ms_p99": round(times[int(len(times) * 0.99)], 3),
                "candidates_mean": round(statistics.mean(candidates), 1),
            }
        )
    )
    db.conn.close()
    path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
