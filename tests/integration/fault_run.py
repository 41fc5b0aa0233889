"""One fault-injection run: calls through the real Asterisk while the daemon is killed
or Asterisk restarts, every call matched across the carrier, the phones and the call log.

Used by tests/integration/test_faults.py (short, slow) and bench/faults.py (the table
of issue-sized runs). Each call comes from its own number (a sipp injection file), to a
pool number that one website visitor holds for the whole run: phone1 answers the calls
ctm-pbx routes, the fail-safe phone those it does not.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from ctm_pbx.adapters.config_loader import load_config
from ctm_pbx.adapters.store import leases as lease_store
from ctm_pbx.adapters.store import open_db
from ctm_pbx.core.clock import iso

from .ctm import CALL_SPOOL, ProcessDaemon, clear_spool, prepare_db, write_config
from .sip import REPO, Asterisk, Phone, _sipp_base, screen_counts

Fault = Literal["none", "kill", "asterisk"]
POOL_DID = "13125550150"  # tests/integration/ctm.py: pool gads, route single (desk-1, phone1)
VISITOR = "fault-visitor"
CARRIER_PORT = 5070
SCENARIO = REPO / "tests" / "sipp" / "uac_load.xml"


@dataclass
class FaultReport:
    """What became of the calls of one run."""

    fault: str
    placed: int = 0
    carrier_ok: int = 0  # calls the carrier's scenario completed
    reached_phone: int = 0  # answered by phone1 (routed by ctm-pbx)
    took_failsafe: int = 0  # answered by the fail-safe phone
    never_rang: int = 0  # reached no phone (cut or refused by Asterisk itself)
    rows: int = 0
    missing: int = 0  # a phone answered it, and it has no row
    duplicates: int = 0  # callers with more than one row
    wrong: int = 0  # a row whose outcome or answering phone is not what the phone saw
    in_progress: int = 0
    failsafe_rows: int = 0
    not_attributed_late: int = 0  # fail-safe rows without the visitor's late attribution
    reconnect_s: float | None = None  # ARI answering again -> the app connected
    # answered by a phone, ended as Asterisk stopped: what Asterisk saw may not be what
    # the phone saw (e.g. Dial() CHANUNAVAIL while the phone answered); a row is required
    cut_at_stop: int = 0
    stopping: tuple[str, str] | None = None  # ISO UTC: Asterisk stopping .. stopped
    wrong_examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def callers(count: int) -> list[str]:
    return [f"+1773{5550000 + i:07d}" for i in range(count)]


def _seed_lease(db_path: str) -> None:
    """The visitor who holds the pool number for the whole run (as swap.js would)."""
    now = datetime.now(UTC)
    db = open_db(db_path)
    try:
        lease_store.upsert_visitor(db, VISITOR, now=now, source="google-ads", visit_id="fv1")
        lease_store.insert_visit(db, "fv1", VISITOR, now=now, source="google-ads")
        lease_store.insert_lease(
            db,
            number="+" + POOL_DID,
            pool="gads",
            visitor_id=VISITOR,
            visit_id="fv1",
            now=now - timedelta(seconds=5),
            expires_at=now + timedelta(hours=2),
        )
        db.conn.commit()
    finally:
        db.conn.close()


def _answered_by_phone(phone: Phone) -> tuple[set[str], set[str]]:
    """(callers this phone got an INVITE from, callers it answered)."""
    invited: dict[str, str] = {}
    answered: set[str] = set()
    for ev in phone.events():
        if ev.kind == "INVITE":
            invited[ev.call_id] = ev.fields.get("from", "").split("@")[0]
        elif ev.kind == "ANSWERED" and ev.call_id in invited:
            answered.add(invited[ev.call_id])
    return set(invited.values()), answered


def _wait_settled(db_path: str, timeout_s: float) -> None:
    """Until no row is open and the spool is imported (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        db = open_db(db_path)
        try:
            open_rows = db.execute(
                "SELECT COUNT(*) FROM calls WHERE status = 'in_progress'"
            ).fetchone()[0]
        finally:
            db.conn.close()
        spooled = [
            p
            for p in CALL_SPOOL.parent.glob(CALL_SPOOL.name + "*")
            if not p.name.endswith(".rejected") and p.stat().st_size > 0
        ]
        if not open_rows and not spooled:
            return
        time.sleep(0.2)


def _restart_asterisk(asterisk: Asterisk, down_s: float, report: FaultReport) -> None:
    """Stop Asterisk, start it again; measure ARI answering -> our app connected."""
    before = datetime.now(UTC) - timedelta(seconds=0.5)
    down = asterisk.run_sandbox("down", timeout_s=60)
    after = datetime.now(UTC) + timedelta(seconds=0.5)
    report.stopping = (iso(before), iso(after))
    if down.returncode != 0:
        raise RuntimeError(f"asterisk-sandbox down failed: {down.stderr}")
    time.sleep(down_s)
    result: dict = {}
    up = threading.Thread(
        target=lambda: result.setdefault("up", asterisk.run_sandbox("up", timeout_s=120))
    )
    up.start()
    t_ari = t_app = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and t_app is None:
        if t_ari is None:
            if asterisk.ari_ready():
                t_ari = time.monotonic()
        else:
            try:
                if asterisk.app in asterisk.applications():
                    t_app = time.monotonic()
            except OSError:
                pass
        time.sleep(0.02)
    up.join(120)
    if result.get("up") is None or result["up"].returncode != 0:
        raise RuntimeError(f"asterisk-sandbox up failed: {result.get('up')}")
    if t_ari is not None and t_app is not None:
        report.reconnect_s = round(t_app - t_ari, 3)


def run_fault(
    fault: Fault,
    asterisk: Asterisk,
    work: Path,
    *,
    rate: float = 10,
    seconds: float = 8,
    hold_ms: int = 1500,
    fault_at: float = 2.5,
    down_s: float = 2.0,
) -> FaultReport:
    """Place ``rate × seconds`` calls; at ``fault_at`` s inject the fault for ``down_s``."""
    work.mkdir(parents=True, exist_ok=True)
    report = FaultReport(fault=fault)
    config_path = write_config(work)
    config = load_config(config_path)
    clear_spool()
    prepare_db(config)
    _seed_lease(config.database.path)
    count = int(rate * seconds)
    numbers = callers(count)
    (work / "callers.csv").write_text("SEQUENTIAL\n" + "".join(f"{c};\n" for c in numbers))
    phone = Phone("phone1", "answer", workdir=work / "phone1", trace_msg=False).start()
    failsafe = Phone("failsafe", "answer", workdir=work / "failsafe", trace_msg=False).start()
    daemon = ProcessDaemon(config_path, asterisk, work / "ctm.log")
    carrier: subprocess.Popen | None = None
    try:
        daemon.start()
        cmd = _sipp_base(CARRIER_PORT) + [
            "-sf", str(SCENARIO), "-inf", str(work / "callers.csv"),
            "-s", POOL_DID, f"{asterisk.sip_host}:{asterisk.sip_port}",
            "-m", str(count), "-r", str(rate), "-l", str(int(rate * (hold_ms / 1000 + 5)) + 10),
            "-d", str(hold_ms), "-recv_timeout", "8000",
            "-timeout", f"{int(seconds + hold_ms / 1000 + 40)}s",
            "-trace_screen", "-screen_file", str(work / "carrier.screen.log"),
        ]  # fmt: skip
        carrier = subprocess.Popen(
            cmd, cwd=work, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        t0 = time.monotonic()
        if fault != "none":
            time.sleep(max(0.0, fault_at - (time.monotonic() - t0)))
            if fault == "kill":
                daemon.kill()
                time.sleep(down_s)
                daemon.start()
            else:
                _restart_asterisk(asterisk, down_s, report)
        carrier.wait(seconds + hold_ms / 1000 + 60)
        carrier = None
        _wait_settled(config.database.path, 15)
    finally:
        if carrier is not None:  # stop it by its PID
            carrier.send_signal(signal.SIGUSR1)
            try:
                carrier.wait(10)
            except subprocess.TimeoutExpired:
                carrier.kill()
                carrier.wait(5)
        daemon.stop()
        phone.stop()
        failsafe.stop()
    carrier_ok = screen_counts(work / "carrier.screen.log").get("Successful call", 0)
    _fill(report, config.database.path, numbers, phone, failsafe, carrier_ok)
    return report


def _fill(
    report: FaultReport,
    db_path: str,
    numbers: list[str],
    phone: Phone,
    failsafe: Phone,
    carrier_ok: int,
) -> None:
    report.placed = len(numbers)
    report.carrier_ok = carrier_ok
    phone_invited, phone_answered = _answered_by_phone(phone)
    fs_invited, fs_answered = _answered_by_phone(failsafe)
    report.reached_phone = len(phone_answered)
    report.took_failsafe = len(fs_answered)
    report.never_rang = len(set(numbers) - phone_invited - fs_invited)
    db = open_db(db_path)
    try:
        rows = [
            dict(r)
            for r in db["calls"].rows_where(
                select="caller_number, status, outcome, answered_by, failsafe, visitor_id,"
                " attributed_late, channel_id, ended_at"
            )
        ]
    finally:
        db.conn.close()
    report.rows = len(rows)
    by_caller: dict[str, list[dict]] = {}
    for row in rows:
        by_caller.setdefault(row["caller_number"] or "", []).append(row)
    report.duplicates = sum(1 for rs in by_caller.values() if len(rs) > 1)
    report.in_progress = sum(1 for r in rows if r["status"] != "completed")
    for caller in numbers:
        expected = (
            "desk-1" if caller in phone_answered else "failsafe" if caller in fs_answered else None
        )
        got = by_caller.get(caller) or []
        if expected is None:
            continue  # reached no phone: Asterisk cut or refused it
        if not got:
            report.missing += 1
            report.wrong_examples.append(f"{caller}: answered by {expected}, no row")
            continue
        row = got[0]
        stopping = report.stopping
        if stopping and row["ended_at"] and stopping[0] <= row["ended_at"] <= stopping[1]:
            report.cut_at_stop += 1
            continue
        if row["outcome"] != "answered" or row["answered_by"] != expected:
            report.wrong += 1
            report.wrong_examples.append(
                f"{caller}: answered by {expected}; row {row['outcome']} by {row['answered_by']}"
            )
    fs_rows = [r for r in rows if r["failsafe"]]
    report.failsafe_rows = len(fs_rows)
    report.not_attributed_late = sum(
        1 for r in fs_rows if r["visitor_id"] != VISITOR or not r["attributed_late"]
    )
    report.wrong_examples = report.wrong_examples[:10]
