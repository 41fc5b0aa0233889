"""Benchmark: attributing a call (number + time -> visitor) with a million stored visits.

    .venv/bin/python bench/attribution_lookup.py --visits 1000000 --numbers 250 --lookups 2000

Fills a fresh database with visitors, one visit each and one lease per visit, spread over
30 days across a pool's numbers (as a busy site would leave it), then times the lookup a call
makes when it starts (now, at the end of that history): the number's lease history in the
attribution window, scored by ``ctm_pbx.core.attribution.attribute``. Reports p50/p99 per
lookup, three ways:

- ``index``: as the daemon does it, from the writer's lease index once it holds the number
  (it reads a number from the table the first time a call to it is attributed);
- ``first``: the first lookup of each number (that read included);
- ``table``: straight from SQLite (what the CLI, which keeps no index, does).

``--db PATH`` keeps the filled database there and reuses it on the next run.
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

from ctm_pbx.adapters.store import lease_index, migrate, open_db  # noqa: E402
from ctm_pbx.adapters.store import leases as lease_store  # noqa: E402
from ctm_pbx.core.attribution import attribute  # noqa: E402
from ctm_pbx.core.clock import iso  # noqa: E402

WINDOW_MINUTES = 24 * 60


def fill(db, visits: int, numbers: list[str], end: datetime, days: int) -> None:
    rng = random.Random(7)
    span = days * 86400
    batch_v, batch_l = [], []
    with db.conn:
        for i in range(visits):
            start = end - timedelta(seconds=rng.random() * span)
            active = start + timedelta(minutes=rng.expovariate(1 / 5))
            number = numbers[i % len(numbers)]
            batch_v.append((f"visit{i}", f"v{i}", iso(start), iso(active), "gads"))
            batch_l.append(
                (
                    number,
                    "gads",
                    f"v{i}",
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
        "INSERT INTO visitors (id, first_seen_at, last_seen_at, source, visit_id)"
        " VALUES (?2, ?3, ?4, ?5, ?1)",
        visits,
    )
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


def timed(db, calls: list[str], end: datetime, seed: int) -> dict:
    """Attribute a call to each number of ``calls``, in that order."""
    rng = random.Random(seed)
    times, candidates = [], []
    for number in calls:
        at = end - timedelta(seconds=rng.random() * 60)  # a call arriving now
        t = time.perf_counter()
        history = lease_store.lease_history(db, number, at - timedelta(minutes=WINDOW_MINUTES), at)
        result = attribute(number, at, history, WINDOW_MINUTES)
        times.append((time.perf_counter() - t) * 1000)
        candidates.append(result.candidate_count)
    times.sort()
    return {
        "p50_ms": round(times[len(times) // 2], 3),
        "p99_ms": round(times[int(len(times) * 0.99)], 3),
        "candidates_mean": round(statistics.mean(candidates), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--visits", type=int, default=1_000_000)
    ap.add_argument("--numbers", type=int, default=250)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--lookups", type=int, default=2000)
    ap.add_argument("--db", type=Path, help="keep (and reuse) the filled database here")
    args = ap.parse_args()
    path = args.db or Path(tempfile.mkdtemp(prefix="ctm-bench-attr-")) / "attr.db"
    reuse = path.exists()
    db = open_db(path)
    migrate(db)
    end = datetime(2026, 11, 28, tzinfo=UTC)
    numbers = [f"+1312555{1000 + i:04d}" for i in range(args.numbers)]
    t0 = time.monotonic()
    if not reuse:
        fill(db, args.visits, numbers, end, args.days)
    filled = time.monotonic() - t0
    stored = db.conn.execute("SELECT count(*) FROM visits").fetchone()[0]
    rng = random.Random(11)
    calls = [rng.choice(numbers) for _ in range(args.lookups)]
    table = timed(db, calls, end, 12)
    index = lease_index.attach(db)
    first = timed(db, numbers, end, 13)  # each number once: read from the table
    warm = timed(db, calls, end, 14)
    print(
        json.dumps(
            {
                "visits": stored,
                "numbers": args.numbers,
                "fill_seconds": round(filled, 1),
                "index": warm,
                "first": first,
                "table": table,
                "index_leases_held": index.size(),
                "numbers_read_from_table": index.loads,
            }
        )
    )
    db.conn.close()
    if not args.db:
        path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
