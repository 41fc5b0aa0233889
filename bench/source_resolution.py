"""Benchmark: which source a visit comes from, with 11, 100 and 1,000 sources.

    .venv/bin/python bench/source_resolution.py
    .venv/bin/python bench/source_resolution.py --sources 11,300,1000 --rounds 2000

The config is the example's 11 sources plus custom ones up to ``--sources`` (each a
``utm_source``/``utm_campaign`` pair or a referrer host, as an agency tracking every
campaign of every client has). Per size it times ``parse_visit`` + the source decision
for a mix of visits (a Google Ads click, a Bing referrer, the last custom source's utm
pair, its partner's referrer, a direct visit), each with a click id of its own as new
visitors have, two ways in the same run: the linear scan (``resolve_source``, the
reference) and the index (``SourceIndex.resolve``). Prints one JSON line per size with
p50/p99/mean in microseconds and the index's build time, then the index's figures at
the largest size against the smallest (the flatness the index is for).

``--visit-job`` also times the store's whole job for a new visit (``handle_visit``:
a known visitor's new ad click, its source, its visit row, its lease renewed) on a
SQLite database in a temporary folder, in CPU microseconds, with the index and with
the linear scan.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ctm_pbx.adapters.config_loader import parse_config  # noqa: E402
from ctm_pbx.core.source_index import SourceIndex  # noqa: E402
from ctm_pbx.core.sources import parse_visit, resolve_source  # noqa: E402

# the sources of config.example.yaml
EXAMPLE_SOURCES = r"""
  google-ads: {preset: google_ads}
  google-organic: {preset: google_organic}
  bing-ads: {preset: bing_ads}
  facebook: {preset: facebook, label: "Facebook & Instagram"}
  x-social: {preset: x}
  email: {preset: email, priority: 28}
  referral: {preset: referral}
  direct: {preset: direct}
  spring-mailing:
    kind: onsite
    priority: 25
    last_touch: true
    match:
      - landing_params: {utm_source: newsletter, utm_campaign: spring}
      - referrer_hosts: [mail.example.com]
        landing_regex: "/spring(/|$)"
      - click_ids: mlid
      - referrer_regex: "^https?://news\\.partner\\.example/archive/"
  billboard-i90: {kind: offsite}
  radio-wxyz: {kind: offsite}
"""
EXAMPLE_COUNT = 11


def custom_source(i: int) -> str:
    """Custom source ``i``: a utm pair (even ``i``) or a referrer host (odd ``i``)."""
    if i % 2 == 0:
        rule = f"{{landing_params: {{utm_source: client{i}, utm_campaign: campaign{i}}}}}"
    else:
        rule = f"{{referrer_hosts: [partner{i}.example.net]}}"
    return f"  custom-{i:04d}: {{kind: onsite, priority: {50 + i % 40}, match: [{rule}]}}\n"


def sources_yaml(total: int) -> str:
    """The ``sources:`` section with the example's sources and custom ones up to ``total``."""
    extra = max(0, total - EXAMPLE_COUNT)
    return "sources:" + EXAMPLE_SOURCES + "".join(custom_source(i) for i in range(extra))


def visit_mix(total: int) -> list[tuple[str, str | None]]:
    """The visits timed: (landing URL without its click id, referrer)."""
    extra = max(0, total - EXAMPLE_COUNT)
    utm = [i for i in range(extra) if i % 2 == 0]
    host = [i for i in range(extra) if i % 2 == 1]
    pair = f"utm_source=client{utm[-1]}&utm_campaign=campaign{utm[-1]}" if utm else ""
    partner = f"https://blog.partner{host[-1]}.example.net/post" if host else None
    site = "https://www.example.com"
    return [
        (f"{site}/?gclid=", None),
        (f"{site}/?x=", "https://www.bing.com/search?q=plumber"),
        (f"{site}/offer?{pair or 'utm_source=newsletter&utm_campaign=spring'}&id=", None),
        (f"{site}/?ref=", partner or "https://mail.example.com/"),
        (f"{site}/pricing?v=", None),
    ]


def _time(decide, visits: list[tuple[str, str | None]], rounds: int) -> list[float]:
    times: list[float] = []
    clock = time.perf_counter
    for n in range(rounds):
        landing, referrer = visits[n % len(visits)]
        url = f"{landing}{n}"  # a click id of its own, as a new visitor has
        t0 = clock()
        decide(parse_visit(url, referrer))
        times.append(clock() - t0)
    return times


def _figures(times: list[float]) -> dict:
    times = sorted(times)
    return {
        "p50_us": round(times[len(times) // 2] * 1e6, 1),
        "p99_us": round(times[int(len(times) * 0.99)] * 1e6, 1),
        "mean_us": round(statistics.fmean(times) * 1e6, 1),
    }


def run(total: int, rounds: int) -> dict:
    config = parse_config(sources_yaml(total))
    t0 = time.perf_counter()
    index = SourceIndex(config.sources)
    build_ms = (time.perf_counter() - t0) * 1000
    visits = visit_mix(total)
    for landing, referrer in visits:  # the index answers what the scan answers
        facts = parse_visit(landing + "1", referrer)
        assert index.resolve(facts) == resolve_source(config.sources, facts), (landing, referrer)
    linear = _time(lambda f: resolve_source(config.sources, f), visits, rounds)
    indexed = _time(index.resolve, visits, rounds)
    return {
        "sources": len(config.sources),
        "rules": len(index),
        "linear": _figures(linear),
        "index": _figures(indexed),
        "index_build_ms": round(build_ms, 2),
    }


def visit_job(total: int, visits: int = 2000) -> dict:
    """CPU microseconds of ``handle_visit`` for a new visit, with the index and without."""
    import tempfile
    from datetime import UTC, datetime, timedelta

    from ctm_pbx.adapters.store import lease_index, migrate, open_db
    from ctm_pbx.adapters.visits import VisitPlan, VisitRequest, handle_visit
    from ctm_pbx.edges.cli import sync_config_numbers

    folder = tempfile.mkdtemp(prefix="ctm-bench-sources-")
    numbers = "".join(
        f'  - {{number: "+1312555{2000 + i:04d}", pool: ads, route: main}}\n' for i in range(200)
    )
    config = parse_config(
        f"database: {{path: {folder}/bench.db}}\n"
        + sources_yaml(total)
        + 'targets: {sales: "+1 312 555 0100"}\n'
        + "pools: {ads: {source: google-ads, target: sales}}\n"
        + 'receiving_numbers: {desk: {number: "+13125550101"}}\n'
        + "routes: {main: {type: single, targets: [desk]}}\n"
        + "tracking_numbers:\n"
        + numbers
    )
    db = open_db(config.database.path)
    migrate(db)
    sync_config_numbers(config, db)
    index = SourceIndex(config.sources)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    site = "https://www.example.com/?gclid="
    lease_index.attach(db)  # as the writer's connection has it
    browser = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"

    def page(visitor_id: str | None, url: str, n: int) -> VisitRequest:
        # a browser (no user agent is a crawler: nothing stored), each from its address
        return VisitRequest(
            visitor_id, url, ip=f"10.0.{n >> 8 & 255}.{n & 255}", user_agent=browser
        )

    visitors = [
        handle_visit(db, config, page(None, f"{site}seed{i}", i), start, index).visitor_id
        for i in range(200)
    ]
    db.conn.commit()
    figures = {}
    for way, sources in (("index", index), ("linear", None)):
        plan = VisitPlan.of(config, sources)  # built once per config, as the daemon does
        t0 = time.process_time()
        for n in range(visits):
            req = page(visitors[n % len(visitors)], f"{site}{way}{n}", n % len(visitors))
            handle_visit(db, config, req, start + timedelta(seconds=n), sources, plan)
            if n % 50 == 49:
                db.conn.commit()  # the writer commits a group of jobs at once
        db.conn.commit()
        figures[f"{way}_us"] = round((time.process_time() - t0) / visits * 1e6)
    db.conn.close()
    return {"sources": len(config.sources), "new_visit_store_job_cpu": figures}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sources", default="11,100,1000", help="config sizes, comma-separated")
    ap.add_argument("--rounds", type=int, default=2000, help="visits timed per size and way")
    ap.add_argument("--visit-job", action="store_true", help="also time handle_visit")
    args = ap.parse_args()
    results = []
    for total in (int(s) for s in args.sources.split(",")):
        results.append(run(total, args.rounds))
        print(json.dumps(results[-1]), flush=True)
    first, last = results[0], results[-1]
    summary = {
        "index_p50_ratio_largest_vs_smallest": round(
            last["index"]["p50_us"] / first["index"]["p50_us"], 2
        ),
        "linear_p50_ratio_largest_vs_smallest": round(
            last["linear"]["p50_us"] / first["linear"]["p50_us"], 2
        ),
        "speedup_at_largest_p50": round(last["linear"]["p50_us"] / last["index"]["p50_us"], 1),
    }
    print(json.dumps(summary), flush=True)
    if args.visit_job:
        for total in (int(s) for s in args.sources.split(",")):
            print(json.dumps(visit_job(total)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
