"""Benchmark: calls through ctm-pbx (ARI mode, AGI mode) against a plain dialplan Dial().

All on the same sandbox Asterisk, to the same receiving phone (a sipp UAS on
phone1), at rising call rates with short calls:

  (a) ctm      : DID -> Stasis(ctm-pbx) -> simultaneous route of one phone -> Dial()
  (b) agi      : DID -> [ctm-agi-inbound] -> AGI(agi://…/inbound) -> Dial(${CTM_DIAL_1}),
                 the row completed from AMI events (dialplan/ctm-pbx-agi.conf)
  (c) dialplan : DID 1666... -> Dial(PJSIP/phone1) (tests/asterisk/extensions_local.conf)
  (e) agi-floor: as (b), but the AGI answered by bench/null_agi.py, a server that does no
                 work (a fixed answer, no row): Asterisk's own cost of AGI mode
  (f) ctm-nospool: as (a), with the global CTM_SPOOL emptied for the run: the hangup
                 handler writes no spool line (the cost of the call spool: compare with (a))
  (g) ctm-hooks: as (a), the daemon with two webhook destinations wanting every call
                 event: one slow (answers after 2 s), one failing (always 500, retried
                 with backoff): the call path must not feel them (compare with (a))
  (d) ivrq     : DID -> Stasis -> a menu (Read(), one key by SIP INFO) -> a queue
                 (Queue(), the agent phone1) -- compare it with (a), the plain route
  (g) ctm-live : as (a), with a dashboard page's live feed (/calls/live, server-sent
                 events) open for the run: the cost of the live feed (compare with (a))
  (h) ctm-nosummary: as (a), with the report summary's triggers dropped for the run:
                 the cost of keeping call_summary in the writer's transaction

For each rate: calls placed, calls the phone completed, call-log rows completed as
answered (ctm, agi), post-dial delay (the caller's INVITE -> 180 Ringing; median, p99),
CPU of Asterisk and of ctm-pbx, ARI requests per call. "Clean" = every call reached
the phone, completed, and (ctm, agi) was logged as answered; no channel left. The sipp
processes are kept light (built-in UAS, no per-call logs) since they share the cores.

Run as root from the repository (the sandbox must be installable):

    .venv/bin/python bench/ari_routing.py --rates 50,100,200,300,400 --seconds 5
    .venv/bin/python bench/ari_routing.py --modes dialplan,agi --rates 100,200,300
    .venv/bin/python bench/ari_routing.py --modes ctm,ivrq --rates 50,100,150
    .venv/bin/python bench/ari_routing.py --modes ctm,ctm-hooks --rates 100,200,300

ctm-hooks restarts the daemon with the webhooks (and back) when the mode changes.
    .venv/bin/python bench/ari_routing.py --modes ctm,ctm-live,ctm-nosummary --rates 100,150

For ivrq the "post-dial delay" is INVITE -> 200 (the menu answers), not -> 180.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ctm_pbx.adapters.agi_calls import answer_command  # noqa: E402
from ctm_pbx.adapters.asterisk_conf import render_queues  # noqa: E402
from ctm_pbx.adapters.config_loader import parse_config  # noqa: E402
from ctm_pbx.adapters.store import open_db, summaries  # noqa: E402
from ctm_pbx.adapters.store import users as user_store  # noqa: E402
from ctm_pbx.core.call.agi_plan import channel_variables, plan_agi_call  # noqa: E402
from ctm_pbx.core.model import NumberInfo  # noqa: E402
from tests.integration.ctm import ProcessDaemon  # noqa: E402
from tests.integration.sip import BASELINE_DID, Asterisk, screen_counts  # noqa: E402

SIPP_DIR = REPO / "bench" / "sipp"
PHONE_PORT, CARRIER_PORT = 5081, 5070

BENCH_DID = "13125550199"
AGI_DID = "13125550160"  # tests/asterisk/extensions_local.conf sends it to [ctm-agi-inbound]
IVR_DID = "13125550198"
FLOOR_DID = "13125550159"  # extensions_local.conf: the AGI dialplan, with the null server
FLOOR_AGI_PORT = 14574  # bench/null_agi.py
DIDS = {
    "ctm": BENCH_DID,
    "ctm-nospool": BENCH_DID,
    "ctm-hooks": BENCH_DID,
    "ctm-live": BENCH_DID,
    "ctm-nosummary": BENCH_DID,
    "agi": AGI_DID,
    "dialplan": BASELINE_DID,
    "ivrq": IVR_DID,
    "agi-floor": FLOOR_DID,
}
CARRIER_INFO_PORT = 5071  # the carrier address whose DTMF is SIP INFO
WEB_PORT = 18090
DASHBOARD_PORT = 18091
SUMMARY_TRIGGERS = summaries.TRIGGERS
SPOOL_AST = "/var/spool/asterisk/ctm-pbx/calls.spool"  # CTM_SPOOL, as Asterisk sees it
SPOOL = Path(os.environ.get("CTM_SANDBOX_DIR", "/var/lib/ctm-pbx-sandbox")) / "root" / SPOOL_AST[1:]
CONFIG = f"""\
asterisk:
  {{ari_url: "http://127.0.0.1:8088", username: ctm, password: ctm-secret, app: ctm-pbx,
   mode: MODE, ami: {{secret: ctm-secret}},
   call_spool: {SPOOL}}}
database: {{path: ctm.db}}
web: {{host: 127.0.0.1, port: {WEB_PORT}}}
dashboard: {{enabled: true, host: 127.0.0.1, port: {DASHBOARD_PORT}}}
sources:
  bench: {{kind: offsite}}
receiving_numbers:
  desk-1: {{number: "+13125550101", dial: "PJSIP/phone1"}}
routes:
  bench: {{type: simultaneous, targets: [desk-1], ring_timeout: 30}}
  bench-menu:
    type: ivr
    prompts: ctm-pbx/beep
    options: {{1: {{route: bench-queue}}}}
    timeout: 5
    default: hangup
  bench-queue: {{type: queue, strategy: ringall, targets: [desk-1], ring_timeout: 30,
                 max_wait: 60, ring_in_use: true}}
tracking_numbers:
  - {{number: "+{BENCH_DID}", source: bench, route: bench}}
  - {{number: "+{AGI_DID}", source: bench, route: bench}}
  - {{number: "+{IVR_DID}", source: bench, route: bench-menu}}
"""


HOOK_PORTS = (18091, 18092)  # the slow receiver, the failing one
HOOKS = f"""\
webhooks:
  slow:
    url: http://127.0.0.1:{HOOK_PORTS[0]}/hook
    secret: bench-secret-0123456789
    events: [call.started, call.completed, call.qualified]
    timeout_seconds: 5
  failing:
    url: http://127.0.0.1:{HOOK_PORTS[1]}/hook
    secret: bench-secret-0123456789
    events: [call.started, call.completed, call.qualified]
outbox: {{backoff_first_seconds: 1, backoff_max_seconds: 5}}
"""
RECEIVERS = """
import asyncio, sys
from aiohttp import web
async def slow(request):
    await request.read()
    await asyncio.sleep(2)
    return web.Response(status=200)
async def failing(request):
    await request.read()
    return web.Response(status=500)
async def main():
    for port, handler in ((int(sys.argv[1]), slow), (int(sys.argv[2]), failing)):
        app = web.Application()
        app.router.add_post("/hook", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()
asyncio.run(main())
"""


def start_receivers() -> subprocess.Popen:
    """The two webhook receivers of ctm-hooks, in their own process."""
    proc = subprocess.Popen([sys.executable, "-c", RECEIVERS, *map(str, HOOK_PORTS)])
    time.sleep(1.0)
    return proc


@dataclass
class Run:
    mode: str
    rate: int
    placed: int
    phone_completed: int
    logged_answered: int | None
    clean: bool
    pdd_ms_p50: float | None
    pdd_ms_p99: float | None
    asterisk_cpu: float  # 1.0 = one core
    ctm_cpu: float
    ari_requests_per_call: float | None
    channels_left: int
    asterisk_ms_per_call: float = 0.0  # CPU milliseconds per call
    ctm_ms_per_call: float = 0.0
    sipp_ms_per_call: float = 0.0  # both sipps (carrier and phone): the same work in every mode
    asterisk_rss_mb: float = 0.0  # Asterisk's resident memory after the run
    round: int = 1  # which pass over the rates (--repeat)
    live_events: int | None = None  # ctm-live: calls the dashboard's live feed pushed


class LiveClient:
    """A dashboard page's live feed (``/calls/live``), read on a thread: counts the
    events (call rows) the daemon pushes. Logs in by a session written to the call
    log's database (as the login form would)."""

    def __init__(self, db_path: Path) -> None:
        db = open_db(db_path)
        try:
            now = datetime.now(UTC)
            with db.conn:
                if not db.execute("SELECT 1 FROM users WHERE name = 'bench'").fetchone():
                    user_store.add_user(db, "bench", "bench live feed 123", user_store.Role.VIEWER,
                                        now)  # fmt: skip
                self.token, _csrf = user_store.create_session(db, "bench", now)
        finally:
            db.conn.close()
        self.events = 0
        self.opened = threading.Event()
        self._resp = None
        self._thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        req = urllib.request.Request(
            f"http://127.0.0.1:{DASHBOARD_PORT}/calls/live",
            headers={"Cookie": f"ctm_session={self.token}", "Accept": "text/event-stream"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            self._resp = resp
            self.opened.set()
            try:
                for line in resp:
                    if line.startswith(b"data:"):
                        self.events += 1
            except (OSError, ValueError, AttributeError):  # closed by stop() mid-read
                pass

    def start(self) -> LiveClient:
        self._thread.start()
        if not self.opened.wait(10):
            raise RuntimeError("the dashboard's live feed did not open")
        time.sleep(1.5)  # the feed's first poll (it starts from the newest call)
        return self

    def stop(self) -> int:
        time.sleep(2.5)  # the last calls' ends (the feed polls once a second)
        if self._resp is not None:
            self._resp.close()
        self._thread.join(5)
        return self.events


def summary_triggers(db_path: Path, on: bool, saved: dict[str, str]) -> None:
    """Drop the report summary's triggers (saving their SQL) or put them back."""
    db = open_db(db_path)
    try:
        with db.conn:
            if not on:
                for name, sql in db.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
                ).fetchall():
                    if name in SUMMARY_TRIGGERS:
                        saved[name] = sql
                        db.execute(f"DROP TRIGGER {name}")
            else:
                for sql in saved.values():
                    db.execute(sql)
                saved.clear()
    finally:
        db.conn.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpus(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def children_cpu_seconds() -> float:
    """CPU of the child processes this bench has waited for (the sipps)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sipp(port: int, *args: str) -> list[str]:
    """A light sipp on loopback: no per-call logs, only the screen (and RTT) at the end."""
    return [
        "sipp",
        "-i",
        "127.0.0.1",
        "-mi",
        "127.0.0.1",
        "-p",
        str(port),
        "-mp",
        str(20000 + port * 2 % 10000),
        "-ci",
        "127.0.0.1",
        "-cp",
        str(13000 + port % 1000),
        "-nostdin",
        "-trace_screen",
        "-screen_file",
        "screen.log",
        *args,
    ]


def start_phone(work: Path, max_s: int) -> subprocess.Popen:
    """phone1: sipp's built-in UAS (180 + 200 at once), until SIGUSR1."""
    work.mkdir(parents=True)
    proc = subprocess.Popen(
        sipp(PHONE_PORT, "-sn", "uas", "-trace_err", "-timeout", f"{max_s}s"),
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    time.sleep(0.3)  # sipp binds its port at once; give it a moment to start its loop
    return proc


def stop_phone(proc: subprocess.Popen, work: Path) -> int:
    """Stop the phone by its PID; the number of calls it completed."""
    proc.send_signal(signal.SIGUSR1)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    return screen_counts(work / "screen.log").get("Successful call", 0)


AREA_CODES = (
    "312", "773", "415", "212", "646", "617", "305", "404", "713", "214",
    "602", "303", "206", "503", "702", "215", "412", "313", "612", "314",
)  # fmt: skip
REPEAT_SHARE = 0.2  # callers who called before: a real mix, not one caller a thousand times


def write_callers(path: Path, count: int, seed: int = 7) -> Path:
    """A sipp injection file of ``count`` caller numbers across US area codes, some
    calling again: what a tracking number's traffic looks like."""
    rng = random.Random(seed)
    callers: list[str] = []
    for _ in range(count):
        if callers and rng.random() < REPEAT_SHARE:
            callers.append(rng.choice(callers))
        else:
            exchange = rng.randint(200, 999)
            callers.append(f"+1{rng.choice(AREA_CODES)}{exchange}{rng.randint(0, 9999):04d}")
    path.write_text("SEQUENTIAL\n" + "".join(f"{c};\n" for c in callers))
    return path


def place_calls(
    work: Path, did: str, count: int, rate: int, hold_ms: int, ivr: bool = False
) -> tuple[int, list]:
    """``count`` calls at ``rate``/s; (calls completed, post-dial delays in ms)."""
    work.mkdir(parents=True)
    limit = str(rate * (hold_ms // 1000 + 5))
    carrier = subprocess.Popen(
        sipp(
            CARRIER_INFO_PORT if ivr else CARRIER_PORT,
            "-sf",
            str(SIPP_DIR / ("uac_ivr.xml" if ivr else "uac_pdd.xml")),
            "-inf",
            str(write_callers(work / "callers.csv", count)),
            "-s",
            did,
            "127.0.0.1:5060",
            "-m",
            str(count),
            "-r",
            str(rate),
            "-l",
            limit,
            "-d",
            str(hold_ms),
            "-trace_rtt",
            "-rtt_freq",
            "1",
            "-timeout",
            f"{count // rate + 60}s",
        ),
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        carrier.wait(count // rate + 90)
    except subprocess.TimeoutExpired:  # an overloaded run: stop it, count what completed
        stop_phone(carrier, work)
    delays = []
    for rtt in work.glob("*_rtt.csv"):
        for line in rtt.read_text().splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 2:
                delays.append(float(parts[1]))
    return screen_counts(work / "screen.log").get("Successful call", 0), sorted(delays)


def set_spool(asterisk: Asterisk, path: str) -> None:
    """The global CTM_SPOOL: empty, the hangup handler writes no spool line."""
    query = urllib.parse.urlencode({"variable": "CTM_SPOOL", "value": path})
    asterisk.ari_send("POST", f"asterisk/variable?{query}")


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(p * len(values)))], 2)


def healthz() -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/healthz", timeout=5) as resp:
        return json.loads(resp.read())


def answered_rows(db_path: Path, since_id: int, mode: str = "ari") -> tuple[int, int]:
    db = open_db(db_path)
    try:
        rows = db.execute(
            "SELECT COUNT(*), COALESCE(MAX(id), ?) FROM calls WHERE id > ?"
            " AND status = 'completed' AND outcome = 'answered' AND mode = ?",
            [since_id, since_id, mode],
        ).fetchone()
        top = db.execute("SELECT COALESCE(MAX(id), 0) FROM calls").fetchone()[0]
        return rows[0], top
    finally:
        db.conn.close()


def one_run(
    mode, rate, seconds, hold_ms, work, asterisk, ast_pid, ctm_pids, db_path, round_no=1
) -> Run:
    """One mode at one rate. ``ctm_pids``: ctm-pbx's process, and for agi-floor the
    null FastAGI server too (its CPU is counted as ctm-pbx's)."""
    count = rate * seconds
    did = DIDS[mode]
    _, top_before = answered_rows(db_path, 0)
    tag = f"{mode}-{rate}-{round_no}"
    phone_dir = work / f"{tag}-phone"
    phone = start_phone(phone_dir, max_s=seconds + hold_ms // 1000 + 120)
    set_spool(asterisk, "" if mode == "ctm-nospool" else SPOOL_AST)
    saved: dict[str, str] = {}
    if mode == "ctm-nosummary":
        summary_triggers(db_path, False, saved)
    live = LiveClient(db_path).start() if mode == "ctm-live" else None
    req0 = healthz()["ari_requests"]
    s0 = children_cpu_seconds()
    try:
        a0, c0, t0 = cpu_seconds(ast_pid), cpus(ctm_pids), time.monotonic()
        completed, pdd = place_calls(
            work / f"{tag}-carrier", did, count, rate, hold_ms, ivr=mode == "ivrq"
        )
        left = asterisk.wait_no_channels(timeout_s=30)
        a1, c1, t1 = cpu_seconds(ast_pid), cpus(ctm_pids), time.monotonic()
    finally:
        phone_completed = stop_phone(phone, phone_dir)
        live_events = live.stop() if live is not None else None
        if saved:
            summary_triggers(db_path, True, saved)
    sipp_s = children_cpu_seconds() - s0
    wall = t1 - t0
    logged = None
    req_per_call = None
    if mode in ("ctm", "ctm-nospool", "ctm-live", "ctm-nosummary", "agi", "ivrq", "ctm-hooks"):
        deadline = time.monotonic() + 30
        while True:
            logged, _ = answered_rows(db_path, top_before, "agi" if mode == "agi" else "ari")
            if logged >= count or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        req_per_call = round((healthz()["ari_requests"] - req0) / max(1, count), 2)
    clean = (
        phone_completed == count
        and completed == count
        and not left
        and (logged is None or logged == count)
    )
    return Run(
        mode=mode,
        rate=rate,
        placed=count,
        phone_completed=phone_completed,
        logged_answered=logged,
        clean=clean,
        pdd_ms_p50=percentile(pdd, 0.5),
        pdd_ms_p99=percentile(pdd, 0.99),
        asterisk_cpu=round((a1 - a0) / wall, 2),
        ctm_cpu=round((c1 - c0) / wall, 2),
        ari_requests_per_call=req_per_call,
        channels_left=len(left),
        asterisk_ms_per_call=round((a1 - a0) * 1000 / count, 2),
        ctm_ms_per_call=round((c1 - c0) * 1000 / count, 2),
        sipp_ms_per_call=round(sipp_s * 1000 / count, 2),
        asterisk_rss_mb=rss_mb(ast_pid),
        round=round_no,
        live_events=live_events,
    )


def summarize(runs: list[Run], modes: list[str]) -> dict:
    """One pass over the rates: the highest clean rate of each mode, its ratio to plain
    Dial(), the added post-dial delay and the CPU ratios."""
    best = {m: max((r.rate for r in runs if r.mode == m and r.clean), default=0) for m in modes}
    base = {r.rate: r for r in runs if r.mode == "dialplan"}
    others = [m for m in modes if m != "dialplan"]

    def both_clean(mode: str) -> list[tuple[Run, Run]]:
        """The mode's runs and the baseline's at the same rate, where both were clean."""
        pairs = [(r, base[r.rate]) for r in runs if r.mode == mode and r.clean and r.rate in base]
        return sorted(((r, b) for r, b in pairs if b.clean), key=lambda p: p[0].rate)

    def added(mode: str) -> list[float]:
        """Added delay where both connected every call (the baseline not saturated)."""
        return [
            round(r.pdd_ms_p50 - b.pdd_ms_p50, 2)
            for r, b in both_clean(mode)
            if r.pdd_ms_p50 is not None and b.pdd_ms_p50 is not None
        ]

    def cpu_ratio(mode: str, with_sipp: bool) -> float | None:
        """Plain Dial()'s CPU per call over the mode's, at the lowest rate where both were
        clean: what the cores allow, steadier than the clean rates on a shared machine.
        Without the sipps (the same work in both): Asterisk + ctm-pbx. With them: the share
        of the machine a call takes, which bounds the clean rate when all share the cores."""
        for r, b in both_clean(mode)[:1]:
            ours = r.asterisk_ms_per_call + r.ctm_ms_per_call
            theirs = b.asterisk_ms_per_call + (b.ctm_ms_per_call if with_sipp else 0.0)
            if with_sipp:
                ours, theirs = ours + r.sipp_ms_per_call, theirs + b.sipp_ms_per_call
            return round(theirs / ours, 2) if ours else None
        return None

    hooks = None
    if "ctm" in modes and "ctm-hooks" in modes:
        plain = {r.rate: r for r in runs if r.mode == "ctm" and r.clean}
        pairs = [(r, plain[r.rate]) for r in runs if r.mode == "ctm-hooks" and r.clean
                 and r.rate in plain]  # fmt: skip
        hooks = {
            "clean_rate_ratio": round(best["ctm-hooks"] / best["ctm"], 2) if best["ctm"] else None,
            # ctm-pbx's CPU per call without webhooks over with them, at each common clean rate
            "ctm_cpu_per_call_ratio": {
                r.rate: round(p.ctm_ms_per_call / r.ctm_ms_per_call, 2) for r, p in pairs
            },
            "added_pdd_ms_p50": {
                r.rate: round(r.pdd_ms_p50 - p.pdd_ms_p50, 2)
                for r, p in pairs
                if r.pdd_ms_p50 is not None and p.pdd_ms_p50 is not None
            },
        }
    return {
        "hooks_vs_ctm": hooks,
        "highest_clean_rate": best,
        "ratio_vs_dialplan": {m: round(best[m] / best["dialplan"], 2) for m in others}
        if best.get("dialplan")
        else None,
        "added_pdd_ms_p50_by_clean_rate": {m: added(m) for m in others},
        "cpu_per_call_ratio": {m: cpu_ratio(m, False) for m in others},
        "machine_cpu_per_call_ratio": {m: cpu_ratio(m, True) for m in others},
    }


def over_passes(passes: list[dict], modes: list[str]) -> dict:
    """Several passes (--repeat): each pass's figures, and the median of each ratio. On a
    shared machine one pass's clean rates move with the neighbours; the median of
    interleaved passes is the figure to quote."""
    others = [m for m in modes if m != "dialplan"]

    def median(key: str, mode: str) -> float | None:
        values = [p[key][mode] for p in passes if p[key] and p[key][mode] is not None]
        return round(statistics.median(values), 2) if values else None

    return {
        "passes": passes,
        "median_highest_clean_rate": {
            m: statistics.median(p["highest_clean_rate"][m] for p in passes) for m in modes
        },
        "median_ratio_vs_dialplan": {m: median("ratio_vs_dialplan", m) for m in others},
        "median_cpu_per_call_ratio": {m: median("cpu_per_call_ratio", m) for m in others},
        "median_machine_cpu_per_call_ratio": {
            m: median("machine_cpu_per_call_ratio", m) for m in others
        },
    }


def start_null_agi(work: Path) -> subprocess.Popen:
    """bench/null_agi.py, answering what ctm-pbx answers for the bench's AGI number."""
    config = parse_config(CONFIG.replace("MODE", "both"))
    info = NumberInfo(f"+{AGI_DID}", "bench", None, "bench")
    plan = plan_agi_call(config, info, info.number, {}, now=datetime.now(UTC))
    variables = channel_variables(
        plan,
        call_id=1000,
        source="bench",
        source_label=config.sources["bench"].label,
        confidence=1.0,
    )
    answer = work / "null-agi-answer"
    answer.write_text(answer_command(variables, disarm=True) + "\n")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "null_agi.py"), str(FLOOR_AGI_PORT), str(answer)],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rates", default="50,100,200,300,400", help="calls/s, comma-separated")
    ap.add_argument("--seconds", type=int, default=5, help="seconds of calls at each rate")
    ap.add_argument("--hold-ms", type=int, default=1000, help="talk time of each call")
    ap.add_argument(
        "--modes",
        default="dialplan,ctm",
        help="of dialplan, ctm (ARI), ctm-nospool, ctm-live, ctm-nosummary, agi, agi-floor, ivrq",
    )
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (sipp logs…)")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="passes over the rates; the summary gives each pass's ratios and their median",
    )
    args = ap.parse_args()
    rates = [int(r) for r in args.rates.split(",")]

    # the test endpoints and dialplan, and the bench config's queue
    extra = Path(tempfile.mkdtemp(prefix="ctm-bench-etc-"))
    for conf in (REPO / "tests" / "asterisk").glob("*.conf"):
        shutil.copy(conf, extra / conf.name)
    queues = render_queues(parse_config(CONFIG.replace("MODE", "ari")))
    (extra / "queues_ctm.conf").write_text(queues)
    env = dict(os.environ, CTM_SANDBOX_EXTRA_ETC=str(extra))
    asterisk = Asterisk(env=env)
    was_running = asterisk.run_sandbox("status").returncode == 0
    up = asterisk.run_sandbox("up", timeout_s=900)
    if up.returncode != 0:
        print(up.stdout, up.stderr, file=sys.stderr)
        return 1
    sandbox_dir = Path(os.environ.get("CTM_SANDBOX_DIR", "/var/lib/ctm-pbx-sandbox"))
    ast_pid = int((sandbox_dir / "run" / "asterisk.pid").read_text())

    work = Path(tempfile.mkdtemp(prefix="ctm-bench-"))
    # AGI mode's AMI listener costs both sides a little on every call, ARI calls too:
    # run it only when AGI mode is measured
    mode = "both" if {"agi", "agi-floor"} & set(args.modes.split(",")) else "ari"
    (work / "config.yaml").write_text(CONFIG.replace("MODE", mode), encoding="utf-8")
    (work / "hooks.yaml").write_text(CONFIG.replace("MODE", mode) + HOOKS, encoding="utf-8")
    daemon = ProcessDaemon(work / "config.yaml", asterisk, work / "daemon.log").start()
    floor = start_null_agi(work) if "agi-floor" in args.modes.split(",") else None
    receivers = start_receivers() if "ctm-hooks" in args.modes.split(",") else None
    runs: list[Run] = []
    try:
        # modes alternate at each rate, and their order flips from rate to rate (A B, B A,
        # …): Asterisk slows down over its first thousands of calls (its memory grows
        # to a plateau, in every mode: asterisk_rss_mb), so a fixed order would favour
        # the first mode
        # with --repeat the order goes on flipping at every step, across passes too
        steps = [(k + 1, rate) for k in range(args.repeat) for rate in rates]
        for i, (round_no, rate) in enumerate(steps):
            order = args.modes.split(",")
            for mode in order if i % 2 == 0 else order[::-1]:
                wanted = work / ("hooks.yaml" if mode == "ctm-hooks" else "config.yaml")
                if daemon.config_path != wanted:  # the webhooks come and go with a restart
                    daemon.stop()
                    daemon = ProcessDaemon(wanted, asterisk, work / "daemon.log").start()
                run = one_run(
                    mode,
                    rate,
                    args.seconds,
                    args.hold_ms,
                    work,
                    asterisk,
                    ast_pid,
                    [daemon.proc.pid, floor.pid] if mode == "agi-floor" else [daemon.proc.pid],
                    work / "ctm.db",
                    round_no,
                )
                runs.append(run)
                print(json.dumps(asdict(run)), flush=True)
    finally:
        set_spool(asterisk, SPOOL_AST)
        if receivers is not None:
            receivers.terminate()
            receivers.wait(10)
        if floor is not None:
            floor.terminate()
            floor.wait(10)
        daemon.stop()
        if not was_running:
            asterisk.run_sandbox("down")
        shutil.rmtree(extra, ignore_errors=True)
        if args.keep:
            print(f"sipp logs, daemon log and call log kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    modes = args.modes.split(",")
    passes = [summarize([r for r in runs if r.round == k + 1], modes) for k in range(args.repeat)]
    summary = dict(passes[0]) if args.repeat == 1 else over_passes(passes, modes)
    summary.update(seconds_per_rate=args.seconds, hold_ms=args.hold_ms, cores=os.cpu_count())
    print(json.dumps(summary))
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"ari_routing-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"runs": [asdict(r) for r in runs], "summary": summary}, indent=2))
    print(f"results in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
