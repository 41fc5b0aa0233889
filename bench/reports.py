"""Reports and dashboard pages on a big call log: how long each takes, and how that grows.

    .venv/bin/python bench/reports.py                       # 1,000,000 calls (seeding ~2 min)
    .venv/bin/python bench/reports.py --calls 100000 --db /tmp/r.db

Seeds (once per --db; reused when it has the asked-for number of calls) ``--calls`` calls
over 13 months across ``--sources`` sources and ``--numbers`` tracking numbers with the
demo generator, then times, in the same run: every CLI report for the last 30 days and the
last 12 months (median of ``--repeat`` runs), the dashboard's overview, a call-log page and a
call's page (server time through aiohttp's test client, logged in), and a bare
``SELECT COUNT(*)`` over the same 12 months as the do-nothing baseline. One JSON line per
figure, then a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
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
from ctm_pbx.adapters.store import migrate, open_db  # noqa: E402
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


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def bench_reports(path: Path, repeat: int) -> list[dict]:
    db = open_read_only(path)
    now = datetime.now(UTC)
    qualified = QualifiedCall()
    out = []
    for since in ("30d", "12m"):
        period = parse_period("365d" if since == "12m" else since, None, now=now, tz=TZ)
        count = timed(
            lambda p=period: db.execute(
                "SELECT COUNT(*) FROM calls WHERE started_at >= ? AND started_at < ?",
                [iso(p.start), iso(p.end)],
            ).fetchone(),
            repeat,
        )
        out.append({"what": "baseline count(*)", "period": since, "ms": round(count, 1)})
        for dim in Dimension:
            ms = timed(
                lambda d=dim, p=period: run_report(db, d, p, TZ, Filters(), qualified), repeat
            )
            out.append({"what": f"report {dim.value}", "period": since, "ms": round(ms, 1)})
            print(json.dumps(out[-1]), flush=True)
    return out


async def bench_pages(path: Path, repeat: int) -> list[dict]:
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
    out = []
    for name, url in (("overview page", "/"), ("call-log page", "/calls"),
                      ("call-log page, filtered", "/calls?source=google-ads&since=30d"),
                      ("call page", f"/calls/{newest}")):  # fmt: skip
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            resp = await client.get(url)
            await resp.read()
            assert resp.status == 200, (url, resp.status)
            times.append((time.perf_counter() - t0) * 1000)
        out.append({"what": name, "period": "-", "ms": round(statistics.median(times), 1)})
        print(json.dumps(out[-1]), flush=True)
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
    args = ap.parse_args()
    args.db.parent.mkdir(parents=True, exist_ok=True)
    seed(args.db, args.calls, args.sources, args.numbers)
    rows = bench_reports(args.db, args.repeat)
    rows += asyncio.run(bench_pages(args.db, args.repeat))
    print(f"\n{args.calls} calls, {args.sources} extra sources, {args.numbers} numbers")
    for row in rows:
        print(f"{row['what']:<28} {row['period']:>4} {row['ms']:>9.1f} ms")


if __name__ == "__main__":
    main()
