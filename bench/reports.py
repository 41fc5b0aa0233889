"""Reports and dashboard pages on a big call log: how long each takes, and how that grows.

    .venv/bin/python bench/reports.py                       # 1,000,000 calls (seeding minutes)
    .venv/bin/python bench/reports.py --calls 200000 --db /tmp/r.db

Seeds (once per --db; reused when it has the asked-for number of calls) ``--calls`` calls
over 13 months across ``--sources`` sources and ``--numbers`` tracking numbers with the
demo generator (through the summary's triggers, as the daemon writes), then times, in the
same run, each figure three ways: ``raw`` (every sum from ``calls``, unique callers too:
the code before the summary), ``summary`` (whole UTC buckets from ``call_summary``, no
unique callers: the dashboard and the CLI's tables) and ``summary+unique`` (the CLI's
--json/--csv). Every CLI report for the last 30 days and the last 12 months (median of
``--repeat`` runs); the dashboard's overview, a call-log page and a call's page (server
time through aiohttp's test client, logged in), on the database and on a copy without
the summary (``raw``); a bare ``SELECT COUNT(*)`` over the same period as the do-nothing
baseline; and what writing a call costs without the triggers, with m017's (no URL
dimension) and with today's. One JSON line per figure, then a table. ``--dims``,
``--periods``, ``--ways`` and ``--no-pages`` time a part (a 1,000,000-call run without
``raw`` takes minutes rather than an hour).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sqlite3
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient, TestServer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ctm_pbx.adapters.config_loader import parse_config  # noqa: E402
from ctm_pbx.adapters.store import demo as demo_store  # noqa: E402
from ctm_pbx.adapters.store import migrate, open_db, summaries  # noqa: E402
from ctm_pbx.adapters.store import users as user_store  # noqa: E402
from ctm_pbx.adapters.store.reader import StoreReader, open_read_only  # noqa: E402
from ctm_pbx.adapters.store.reports import run_report  # noqa: E402
from ctm_pbx.adapters.store.writer import StoreWriter  # noqa: E402
from ctm_pbx.core.clock import iso  # noqa: E402
from ctm_pbx.core.demo import demo_calls  # noqa: E402
from ctm_pbx.core.model import Source, SourceKind  # noqa: E402
from ctm_pbx.core.reports import Dimension, Filters, QualifiedCall, parse_period  # noqa: E402
from ctm_pbx.core.users import Role  # noqa: E402
from ctm_pbx.edges.dashboard import Dashboard, create_dashboard_app  # noqa: E402

CONFIG = (REPO / "config.example.yaml").read_text(encoding="utf-8")
TZ = ZoneInfo("America/Chicago")
PASSWORD = "bench password 123"


def seed(path: Path, calls: int, sources: int, numbers: int) -> None:
    db = open_db(path)
    migrate(db)
    have = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    if have == calls:
        print(f"reusing {path} ({have} calls)", file=sys.stderr)
        return
    db.execute("DELETE FROM calls")
    cfg = parse_config(CONFIG, env={"ARI_PASSWORD": "x", "AMI_SECRET": "x"})
    extra = {
        f"client-{i:03d}": Source(f"client-{i:03d}", SourceKind.ONSITE, 50) for i in range(sources)
    }
    cfg = replace(cfg, sources={**cfg.sources, **extra})
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    batch = 50_000
    for start in range(0, calls, batch):
        rows = demo_calls(cfg, now=now, days=396, calls=min(batch, calls - start), seed=start)
        for i, row in enumerate(rows):
            row["tracking_number"] = f"+1312{(start + i) % numbers:07d}"
        demo_store.seed_demo(db, rows)
        print(f"  seeded {start + len(rows)} calls", file=sys.stderr)
    db.execute("ANALYZE")
    if not db.execute("SELECT 1 FROM users WHERE name = 'bench'").fetchone():
        user_store.add_user(db, "bench", PASSWORD, Role.VIEWER, now)
    db.conn.commit()
    print(f"seeded {calls} calls in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def timed(fn, repeat: int) -> tuple[float, float]:
    """The median wall and CPU (this process's: SQLite runs in it) milliseconds of ``fn``."""
    times, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return statistics.median(times), statistics.median(cpu)


def without_summary(path: Path) -> Path:
    """A copy of the database as it was before m017: no summary, no triggers."""
    raw = path.with_name(path.stem + "-raw.db")
    if not raw.exists() or raw.stat().st_mtime < path.stat().st_mtime:
        shutil.copyfile(path, raw)
        conn = sqlite3.connect(raw)
        for name in summaries.TRIGGERS:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        conn.execute("DROP TABLE IF EXISTS call_summary")
        conn.execute("DROP TABLE IF EXISTS call_summary_rule")
        conn.commit()
        conn.execute("VACUUM")
        conn.close()
    return raw


WAYS = {  # name -> run_report options (and the writes' "m017 summary")
    "raw": {"summary": False, "unique": True},
    "summary": {"summary": True, "unique": False},
    "summary+unique": {"summary": True, "unique": True},
}


def bench_reports(
    path: Path, repeat: int, dims: list[Dimension], periods: list[str], ways: list[str]
) -> list[dict]:
    db = open_read_only(path)
    now = datetime.now(UTC)
    qualified = QualifiedCall()
    out = []
    for since in periods:
        period = parse_period("365d" if since == "12m" else since, None, now=now, tz=TZ)
        count, count_cpu = timed(
            lambda p=period: db.execute(
                "SELECT COUNT(*) FROM calls WHERE started_at >= ? AND started_at < ?",
                [iso(p.start), iso(p.end)],
            ).fetchone(),
            repeat,
        )
        out.append({"what": "baseline count(*)", "period": since, "ms": {"raw": round(count, 1)},
                    "cpu": {"raw": round(count_cpu, 1)}})  # fmt: skip
        for dim in dims:
            row = {"what": f"report {dim.value}", "period": since, "ms": {}, "cpu": {}}
            for way in ways:
                opts = WAYS[way]
                ms, cpu = timed(
                    lambda d=dim, p=period, o=opts: run_report(
                        db, d, p, TZ, Filters(), qualified, **o
                    ),
                    repeat,
                )
                row["ms"][way] = round(ms, 1)
                row["cpu"][way] = round(cpu, 1)
            out.append(row)
            print(json.dumps(row), flush=True)
    return out


def bench_writes(path: Path, raw_path: Path, calls: int = 2000, repeat: int = 3) -> list[dict]:
    """A call's writes as the daemon makes them (its row at the start, the attribution
    while it rings, its end), ``calls`` times, without the summary's triggers (``raw``),
    with m017's (no URL dimension: created for the run, in the transaction) and with
    today's; microseconds per call, rolled back, the ways taken in turn ``repeat`` times
    (median)."""
    cfg = parse_config(CONFIG, env={"ARI_PASSWORD": "x", "AMI_SECRET": "x"})
    rows = demo_calls(cfg, now=datetime.now(UTC), days=1, calls=calls, seed=99)
    for r in rows:
        r["referrer"] = "https://www.google.com/search?q=plumber" if r["landing_url"] else None
    row = {"what": "writes of one call (us)", "period": "-", "ms": {}}
    ways = [("raw", raw_path, False), ("summary", path, False)]
    if hasattr(summaries, "URL_DIMS"):
        ways.insert(1, ("m017 summary", path, True))
    times: dict[str, list[float]] = {}
    for _ in range(repeat):
        for way, target, old in ways:
            db = open_db(target)
            conn = db.conn
            conn.execute("BEGIN")
            if old:
                summaries.create_triggers(db, without=summaries.URL_DIMS)
            t0 = time.perf_counter()
            for r in rows:
                cur = conn.execute(
                    "INSERT INTO calls (status, started_at, tracking_number, caller_number,"
                    " source, route) VALUES ('in_progress', ?, ?, ?, ?, ?)",
                    [r["started_at"], r["tracking_number"], r["caller_number"], r["source"],
                     r["route"]],
                )  # fmt: skip
                conn.execute(
                    "UPDATE calls SET attribution_confidence = ?, utm_campaign = ?,"
                    " utm_term = ?, landing_url = ?, referrer = ? WHERE id = ?",
                    [r["attribution_confidence"], r["utm_campaign"], r["utm_term"],
                     r["landing_url"], r["referrer"], cur.lastrowid],
                )  # fmt: skip
                conn.execute(
                    "UPDATE calls SET status = 'completed', ended_at = ?, outcome = ?,"
                    " ring_seconds = ?, talk_seconds = ?, answered_by = ? WHERE id = ?",
                    [r["ended_at"], r["outcome"], r["ring_seconds"], r["talk_seconds"],
                     r["answered_by"], cur.lastrowid],
                )  # fmt: skip
            times.setdefault(way, []).append((time.perf_counter() - t0) * 1e6 / calls)
            conn.rollback()
            conn.close()
    for way, _target, _old in ways:
        row["ms"][way] = round(statistics.median(times[way]))
    print(json.dumps(row), flush=True)
    return [row]


async def bench_pages(path: Path, raw_path: Path, repeat: int) -> list[dict]:
    rows: dict[str, dict] = {}
    for way, target in (("raw", raw_path), ("summary", path)):
        for name, (ms, cpu) in (await page_times(target, repeat)).items():
            row = rows.setdefault(name, {"what": name, "period": "-", "ms": {}, "cpu": {}})
            row["ms"][way], row["cpu"][way] = ms, cpu
    for row in rows.values():
        print(json.dumps(row), flush=True)
    return list(rows.values())


async def page_times(path: Path, repeat: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU ms of each page (the server runs in this process)."""
    cfg = parse_config(
        CONFIG.replace("path: ctm-pbx.db", f"path: {path}"),
        env={"ARI_PASSWORD": "x", "AMI_SECRET": "x"},
    )
    writer, reader = StoreWriter(str(path)), StoreReader(str(path))
    client = TestClient(TestServer(create_dashboard_app(Dashboard(cfg, reader, writer))))
    await client.start_server()
    page = await client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())[1]
    await client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf": csrf})
    newest = await reader.run(lambda db: db.execute("SELECT MAX(id) FROM calls").fetchone()[0])
    out = {}
    for name, url in (("overview page", "/"), ("call-log page", "/calls"),
                      ("call-log page, filtered", "/calls?source=google-ads&since=30d"),
                      ("call page", f"/calls/{newest}")):  # fmt: skip
        times, cpu = [], []
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            resp = await client.get(url)
            await resp.read()
            assert resp.status == 200, (url, resp.status)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        out[name] = (round(statistics.median(times), 1), round(statistics.median(cpu), 1))
    await client.close()
    reader.close()
    writer.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--sources", type=int, default=300)
    ap.add_argument("--numbers", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--db", type=Path, default=REPO / "bench" / "results" / "reports.db")
    ap.add_argument("--dims", default=",".join(d.value for d in Dimension),
                    help="the reports to time (comma-separated dimensions)")  # fmt: skip
    ap.add_argument("--periods", default="30d,12m")
    ap.add_argument("--ways", default=",".join(WAYS), help="of: " + ", ".join(WAYS))
    ap.add_argument("--no-pages", action="store_true", help="skip the dashboard's pages")
    args = ap.parse_args()
    args.db.parent.mkdir(parents=True, exist_ok=True)
    seed(args.db, args.calls, args.sources, args.numbers)
    raw_path = without_summary(args.db)
    dims = [Dimension(d) for d in args.dims.split(",")]
    ways = args.ways.split(",")
    rows = bench_reports(args.db, args.repeat, dims, args.periods.split(","), ways)
    if not args.no_pages:
        rows += asyncio.run(bench_pages(args.db, raw_path, args.repeat))
    rows += bench_writes(args.db, raw_path)
    print(
        f"\n{args.calls} calls, {args.sources} extra sources, {args.numbers} numbers"
        f" (ms wall / CPU; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})"
    )
    cols = [*WAYS, "m017 summary"]
    print(f"{'':<40} {'':>4} " + " ".join(f"{w:>16}" for w in cols))
    for row in rows:
        cells = " ".join(f"{_cell(row, w):>16}" for w in cols)
        print(f"{row['what']:<40} {row['period']:>4} {cells}")


def _cell(row: dict, way: str) -> str:
    if way not in row["ms"]:
        return ""
    cpu = row.get("cpu", {}).get(way)
    return f"{row['ms'][way]}" + (f" / {cpu}" if cpu is not None else "")


if __name__ == "__main__":
    main()
