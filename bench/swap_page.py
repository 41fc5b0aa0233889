"""Benchmark: swap.js on a page of 5,000 elements in headless Chromium, from the API's answer
to the end of the swap.

    .venv/bin/python bench/swap_page.py --runs 20
    .venv/bin/python bench/swap_page.py --runs 20 --cpu
    .venv/bin/python bench/swap_page.py --runs 20 --script /tmp/other-swap.js
    .venv/bin/python bench/swap_page.py --runs 5 --profile /tmp/swap.cpuprofile

It serves, on 127.0.0.1 (ephemeral ports; two origins, the site's and the API's, so the
script's call is cross-origin as on a real site), a generated page of ``--rows`` rows of 5
elements (1,000 rows: 5,000 elements, ~8,000 text nodes) with a target number every 20 rows,
half of them in ``tel:`` links, and a minimal fake ``POST /api/visit`` that answers the four
targets of the browser tests after ``--delay`` seconds, so that the answer arrives once the
page is parsed: what is timed is the script's own work (reading the answer, the pass over the
page, the event), not the parser's. Chromium may still be busy with the page then (on 2 cores
it often is at 0.5 s, and competes with the script for the cores); a longer ``--delay``
measures the script on an idle page. Each run opens the page in a fresh browser context (no
cookies, no storage, a new page, a new renderer) in Debian's /usr/bin/chromium driven by
Playwright, with the launch arguments of the browser tests (``tests/chromium.py``); one
warm-up run is left out.

Measured per run: from the ``responseEnd`` of the ``/api/visit`` resource entry (the answer's
last byte) to the ``ctm:swapped`` event (``performance.now()`` in a listener registered before
the script), wall-clock time in the page; then a full ``CTM.rescan()`` (a warm pass over the
page with nothing left to swap). Each run checks that every number was swapped, once.

``--cpu`` also records a Chrome trace of each run and reports the wall and thread CPU time of
the renderer's main-thread task that swapped (from the answer's JSON to the event, and the
visitor id stored just after it). On a machine with few cores the wall time is mostly the
CPU time plus the time the main thread waited for a core (the browser, its other processes
and threads run at the same time); tracing itself costs a little, so compare like with like.

``--profile PATH`` adds one run, after the measured ones and left out of their figures, with
Chrome's sampling CPU profiler (CDP ``Profiler``, 50 us) on from before the answer to the
event: it writes the profile (open it in Chrome DevTools) and prints to stderr the functions
with the most self time while the script runs (profiling slows the script down: use it to
see where the time goes, not how much there is).

Prints one JSON object: p50/p99/min/max in ms, the page's element and text-node counts, the
number of swaps, the script's raw and gzip -9 sizes (the file is served as it is, compacted by
hand: there is no minified build), Chromium's version, the cores and the load average.
p99 is the nearest rank: with fewer than 100 runs it is the slowest run.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path

from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.browser.pages import ThreadedServers, big_page  # noqa: E402
from tests.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

SCRIPT = REPO / "ctm_pbx" / "edges" / "static" / "swap.js"
TARGETS = {  # target -> the tracking number the visitor gets (as in tests/browser)
    "+13125550100": "+13125550150",
    "+18005550199": "+18005550170",
    "+13125550110": "+13125550180",
    "+442079460958": "+442079460960",
}

# Resolves on the first ctm:swapped event (no polling while the script works), fails after 10 s.
SWAPPED = """() => ctmEvents.length || new Promise((done, fail) => {
    document.addEventListener('ctm:swapped', done, {once: true});
    setTimeout(() => fail(new Error('no ctm:swapped event within 10 s')), 10000);
})"""
MEASURE = """() => {
    const visit = performance.getEntriesByType('resource')
        .find(e => e.name.endsWith('/api/visit'));
    const events = ctmEvents.length;
    const t0 = performance.now(), again = CTM.rescan(), t1 = performance.now();
    return {swap_ms: ctmEvents[0].t - visit.responseEnd, rescan_ms: t1 - t0, again, events,
            count: ctmEvents[0].count,
            elements: document.getElementsByTagName('*').length,
            texts: document.evaluate('count(//text())', document, null, 1, null).numberValue,
            left: document.body.textContent.split('312-555-0100').length - 1
                + document.querySelectorAll('a[href="tel:+13125550100"]').length};
}"""


class Servers(ThreadedServers):
    """The site and the fake API, two aiohttp servers in one background thread."""

    def __init__(self, script: bytes, rows: int, delay: float) -> None:
        super().__init__()
        self.script, self.rows, self.delay = script, rows, delay

    def __enter__(self) -> Servers:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _script(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.script,
            content_type="application/javascript",
            headers={"Cache-Control": "no-store"},
        )

    async def _visit(self, request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(self.delay)
        answer = {
            "visitor_id": "bench-visitor-0001",
            "source": None,
            "rule": "default",
            "numbers": {
                t: {"number": n, "pool": "website", "shared": False} for t, n in TARGETS.items()
            },
            "renew_every_s": 3600,
        }
        headers = {"Access-Control-Allow-Origin": request.headers.get("Origin", "*")}
        return web.json_response(answer, headers=headers)

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(
            text=big_page(self.api, self.rows),
            content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    async def _start(self) -> None:
        api = web.Application()
        api.router.add_get("/swap.js", self._script)
        api.router.add_post("/api/visit", self._visit)
        site = web.Application()
        site.router.add_get("/big.html", self._page)
        self.api = await self._listen(api)
        self.site = await self._listen(site)


def swap_task(trace: dict | list) -> tuple[float, float]:
    """Wall and thread CPU ms of the outermost traced main-thread event around the
    ``ctm:swapped`` dispatch (the task, or microtask checkpoint, that swapped)."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    dispatch = next(
        e
        for e in events
        if e.get("name") == "EventDispatch"
        and e.get("args", {}).get("data", {}).get("type") == "ctm:swapped"
    )
    around = [
        e
        for e in events
        if e.get("ph") == "X"
        and "tdur" in e
        and (e["pid"], e["tid"]) == (dispatch["pid"], dispatch["tid"])
        and e["ts"] <= dispatch["ts"] <= e["ts"] + e["dur"]
    ]
    task = max(around, key=lambda e: e["dur"])
    return task["dur"] / 1000, task["tdur"] / 1000


def run_once(browser, url: str, expected: int, cpu: bool = False, profile: Path | None = None):
    context = browser.new_context()
    try:
        page = context.new_page()
        cdp = None
        if profile:
            cdp = context.new_cdp_session(page)
            cdp.send("Profiler.enable")
            cdp.send("Profiler.setSamplingInterval", {"interval": 50})
        page.goto(url)  # "load": the page is parsed, the API has not answered yet
        if cpu:
            browser.start_tracing(page=page, categories=["toplevel", "devtools.timeline"])
        if cdp:
            cdp.send("Profiler.start")
        page.evaluate(SWAPPED)
        if cdp:
            taken = cdp.send("Profiler.stop")["profile"]
            profile.write_text(json.dumps(taken))
            print_profile(taken)
        if cpu:
            trace = json.loads(browser.stop_tracing())
        result = page.evaluate(MEASURE)
    finally:
        context.close()
    if result["count"] != expected or result["left"] or result["again"] or result["events"] != 1:
        raise SystemExit(f"the swap is incomplete: {result}")
    if cpu:
        result["task_wall_ms"], result["task_cpu_ms"] = swap_task(trace)
    return result


def print_profile(profile: dict, top: int = 15) -> None:
    """Self time by function over the samples taken while the script runs (swap.js on the
    stack); ``timeDeltas`` are in microseconds."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {c: n["id"] for n in profile["nodes"] for c in n.get("children", [])}

    def in_script(node_id: int | None) -> bool:
        while node_id is not None:
            if nodes[node_id]["callFrame"]["url"].endswith("/swap.js"):
                return True
            node_id = parent.get(node_id)
        return False

    self_us: Counter[str] = Counter()
    samples, deltas = profile["samples"], profile["timeDeltas"]
    for node_id, delta in zip(samples, deltas[1:] + [0], strict=True):  # how long it lasted
        if in_script(node_id):
            frame = nodes[node_id]["callFrame"]
            url = frame["url"].rsplit("/", 1)[-1]
            where = f" {url}:{frame['lineNumber'] + 1}" if url else " (native)"
            self_us[f"{frame['functionName'] or '(anonymous)'}{where}"] += delta
    print(f"swap.js on the stack: {sum(self_us.values()) / 1000:.1f} ms;", file=sys.stderr)
    for name, us in self_us.most_common(top):
        print(f"  {us / 1000:7.2f} ms  {name}", file=sys.stderr)


def stats(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "p50_ms": round(ordered[(len(ordered) - 1) // 2], 1),
        "p99_ms": round(ordered[max(math.ceil(len(ordered) * 0.99) - 1, 0)], 1),
        "min_ms": round(ordered[0], 1),
        "max_ms": round(ordered[-1], 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rows", type=int, default=1000, help="rows of 5 elements")
    ap.add_argument("--delay", type=float, default=0.5, help="seconds before the API answers")
    ap.add_argument("--script", type=Path, default=SCRIPT, help="the swap.js to measure")
    ap.add_argument("--cpu", action="store_true", help="trace each run: the swap task's CPU time")
    ap.add_argument("--profile", type=Path, help="write a CPU profile of one more run here")
    args = ap.parse_args()
    if args.runs < 1 or args.rows < 40:
        ap.error("--runs must be >= 1 and --rows >= 40")
    from playwright.sync_api import sync_playwright

    script = args.script.read_bytes()
    expected = len(range(0, args.rows, 20)) + len(range(20, args.rows, 40))
    load_before = os.getloadavg()
    results = []
    with Servers(script, args.rows, args.delay) as servers, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            url = f"{servers.site}/big.html"
            run_once(browser, url, expected)  # warm up: the browser's caches, not the page's
            for _ in range(args.runs):
                results.append(run_once(browser, url, expected, cpu=args.cpu))
            if args.profile:
                run_once(browser, url, expected, profile=args.profile)
            version = browser.version
        finally:
            browser.close()
    first = results[0]
    report = {
        "api_answer_to_swapped": stats([r["swap_ms"] for r in results]),
        "full_rescan": stats([r["rescan_ms"] for r in results]),
    }
    if args.cpu:
        report["traced_swap_task_wall"] = stats([r["task_wall_ms"] for r in results])
        report["traced_swap_task_cpu"] = stats([r["task_cpu_ms"] for r in results])
    report.update(
        {
            "runs": args.runs,
            "delay_s": args.delay,
            "elements": first["elements"],
            "text_nodes": int(first["texts"]),
            "swaps": first["count"],
            "script": {
                "path": str(args.script),
                "raw_bytes": len(script),
                "gzip9_bytes": len(gzip.compress(script, 9)),
            },
            "chromium": version,
            "cores": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        }
    )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
