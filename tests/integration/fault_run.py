"""One fault-injection run: calls through the real Asterisk while a fault is injected,
every call matched across the carrier, the phones and the call log.

Used by tests/integration/test_faults.py (short, slow) and bench/faults.py (the table
of issue-sized runs). Each call comes from its own number (a sipp injection file), to a
pool number that one website visitor holds for the whole run: phone1 answers the calls
ctm-pbx routes, the fail-safe phone those it does not. The faults (``FAULTS``):

- ``none``: the baseline (``none-agi``: the same in AGI mode, the baseline of ``ami``);
- ``kill``: ``ctm-pbx run`` killed with SIGKILL, started again ``down_s`` later; in
  between ``ctm-pbx asterisk handover`` runs, as the systemd unit's ``ExecStopPost=``
  does (``handover=False``: not);
- ``asterisk``: Asterisk stopped, started again ``down_s`` later (the daemon stays up);
- ``disk``: the database's disk (a tmpfs) filled for ``down_s``;
- ``lock``: another process holds the database's write lock (``BEGIN EXCLUSIVE``);
- ``ami``: AGI mode; AMI's TCP connection cut and refused for ``down_s`` (a proxy
  between ctm-pbx and Asterisk);
- ``web``: the web listener saturated by idle and slow clients for the whole run
  (the daemon with ``WEB_FD_LIMIT`` open files).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from ctm_pbx.adapters.config_loader import load_config
from ctm_pbx.adapters.store import leases as lease_store
from ctm_pbx.adapters.store import open_db
from ctm_pbx.adapters.store import visitors as visitor_store
from ctm_pbx.core.clock import iso

from .ctm import (
    AMI_PORT,
    CALL_SPOOL,
    WEB_PORT,
    ProcessDaemon,
    clear_spool,
    prepare_db,
    write_config,
)
from .sip import REPO, Asterisk, Phone, _sipp_base, screen_counts
from .web_clients import Saturator

Fault = Literal["none", "kill", "asterisk", "disk", "lock", "none-agi", "ami", "web"]
FAULTS: tuple[Fault, ...] = ("none", "kill", "asterisk", "disk", "lock", "none-agi", "ami", "web")
AGI_FAULTS = ("none-agi", "ami")  # calls to the AGI-mode pool number
POOL_DID = "13125550150"  # tests/integration/ctm.py: pool gads, route single (desk-1, phone1)
AGI_POOL_DID = "13125550165"  # the same in AGI mode (tests/asterisk/extensions_local.conf)
AMI_PROXY_PORT = 15038
DISK_SIZE = "64m"
WEB_FD_LIMIT = 256  # the web listener takes at most half
WEB_ATTACKERS = [f"127.0.0.{i}" for i in range(20, 36)]
WEB_PER_ATTACKER = 20  # under the per-client cap: 320 connections, past the total cap (128)
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
    wrong_unknown: int = 0  # of which the outcome is 'unknown' (ctm-pbx never saw the end)
    in_progress: int = 0
    failsafe_rows: int = 0
    not_attributed_late: int = 0  # fail-safe rows without the visitor's late attribution
    connected: int = 0  # calls the carrier completed: answered, talked, hung up by the caller
    dropped: int = 0  # placed, not completed (refused, not answered or cut)
    completed: int = 0  # rows completed
    writes_held: int = 0  # disk, lock: most writes the daemon held in memory meanwhile
    unwritable_seen: bool = False  # disk, lock: /healthz said the database could not be written
    web_refused: int | None = None  # web: connections the listener refused
    reconnect_s: float | None = None  # ARI answering again -> the app connected
    handed_over: int | None = None  # kill: calls `ctm-pbx asterisk handover` sent on
    handover_s: float | None = None  # kill: the command's run, from the kill (s)
    # answered by a phone, ended as Asterisk stopped: what Asterisk saw may not be what
    # the phone saw (e.g. Dial() CHANUNAVAIL while the phone answered); a row is required
    cut_at_stop: int = 0
    stopping: tuple[str, str] | None = None  # ISO UTC: Asterisk stopping .. stopped
    wrong_examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def callers(count: int) -> list[str]:
    return [f"+1773{5550000 + i:07d}" for i in range(count)]


def _seed_lease(db_path: str, did: str) -> None:
    """The visitor who holds the pool number for the whole run (as swap.js would)."""
    now = datetime.now(UTC)
    db = open_db(db_path)
    try:
        visitor_store.upsert_visitor(db, VISITOR, now=now, source="google-ads", visit_id="fv1")
        visitor_store.insert_visit(db, "fv1", VISITOR, now=now, source="google-ads")
        lease_store.insert_lease(
            db,
            number="+" + did,
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


def health() -> dict | None:
    """The daemon's ``/healthz`` (None when it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/healthz", timeout=2) as resp:
            return json.load(resp)
    except (OSError, ValueError):
        return None


def _db_idle() -> bool:
    """Whether the daemon's writer holds no write (all committed)."""
    db = (health() or {}).get("components", {}).get("database", {})
    return bool(db.get("writable")) and db.get("backlog") == 0 and db.get("writes_waiting") == 0


def _wait_settled(db_path: str, timeout_s: float) -> None:
    """Until the writer holds nothing, no row is open and the spool is imported (or the
    time is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _db_idle():
            time.sleep(0.2)
            continue
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


def fill_disk(root: Path) -> None:
    """Fill the file system of ``root`` (its database ``ctm.db``) with ``root/filler``."""
    conn = sqlite3.connect(root / "ctm.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the next commit needs new space
    conn.close()
    fd = os.open(root / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 16, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    assert os.statvfs(root).f_bavail == 0


# another process that takes the database's write lock and keeps it (argv: db, seconds)
_LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def _hold_lock(db_path: str, seconds: float) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOCKER, db_path, str(seconds)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"locked":
            raise RuntimeError("the locker did not take the lock")
        proc.wait(seconds + 30)
    finally:
        if proc.poll() is None:  # stop it by its PID
            proc.kill()
            proc.wait(5)


def _watch_writer(report: FaultReport, until: float) -> None:
    """Meanwhile, what /healthz says of the writer: held writes, unwritable."""
    while time.monotonic() < until:
        db = (health() or {}).get("components", {}).get("database")
        if db:
            held = (db.get("backlog") or 0) + (db.get("writes_waiting") or 0)
            report.writes_held = max(report.writes_held, held)
            report.unwritable_seen |= db.get("writable") is False
        time.sleep(0.25)


class TcpProxy:
    """A loopback TCP proxy to ``upstream`` that can be cut: its connections closed and
    new ones refused (the listener closed) for a while."""

    def __init__(self, port: int, upstream: int) -> None:
        self.port, self.upstream = port, upstream
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> TcpProxy:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        self._listener = s
        self._thread = threading.Thread(target=self._accept, args=(s,), daemon=True)
        self._thread.start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._conns |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._conns -= {src, dst}

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self, seconds: float) -> None:
        """Close every connection, refuse new ones for ``seconds``, then listen again."""
        self.stop()
        time.sleep(seconds)
        self.start()


def hand_over(config_path: Path) -> int:
    """``ctm-pbx asterisk handover`` (systemd's ``ExecStopPost=``): the calls it sent on."""
    out = subprocess.run(
        [sys.executable, "-m", "ctm_pbx", "--config", str(config_path), "asterisk", "handover"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"ctm-pbx asterisk handover failed: {out.stderr}")
    return int(out.stdout.split()[0])


def _wait_log(log: Path, text: bytes, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log.read_bytes():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} not in {log}")
        time.sleep(0.05)


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
    handover: bool = True,
) -> FaultReport:
    """Place ``rate × seconds`` calls; at ``fault_at`` s inject the fault for ``down_s``
    (``web``: for the whole run; ``handover``: see ``kill``)."""
    work.mkdir(parents=True, exist_ok=True)
    report = FaultReport(fault=fault)
    did = AGI_POOL_DID if fault in AGI_FAULTS else POOL_DID
    home = work / "disk" if fault == "disk" else work  # config and database
    if fault == "disk":
        home.mkdir(exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(home)], check=True
        )
    proxy = TcpProxy(AMI_PROXY_PORT, AMI_PORT).start() if fault == "ami" else None
    attack: Saturator | None = None
    try:
        config_path = write_config(home, ami_port=AMI_PROXY_PORT if proxy else AMI_PORT)
        config = load_config(config_path)
        clear_spool()
        prepare_db(config)
        _seed_lease(config.database.path, did)
        count = int(rate * seconds)
        numbers = callers(count)
        (work / "callers.csv").write_text("SEQUENTIAL\n" + "".join(f"{c};\n" for c in numbers))
        phone = Phone("phone1", "answer", workdir=work / "phone1", trace_msg=False).start()
        failsafe = Phone("failsafe", "answer", workdir=work / "failsafe", trace_msg=False).start()
        fd_limit = WEB_FD_LIMIT if fault == "web" else None
        daemon = ProcessDaemon(config_path, asterisk, work / "ctm.log", fd_limit=fd_limit)
        carrier: subprocess.Popen | None = None
        try:
            daemon.start()
            _wait_log(work / "ctm.log", b"AMI connected")
            if fault == "web":
                attack = Saturator(WEB_PORT, WEB_ATTACKERS, WEB_PER_ATTACKER, slow_every=2)
                attack.__enter__()
                time.sleep(2)  # every connection opened, the refused ones opening again
            cmd = _sipp_base(CARRIER_PORT) + [
                "-sf", str(SCENARIO), "-inf", str(work / "callers.csv"),
                "-s", did, f"{asterisk.sip_host}:{asterisk.sip_port}",
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
            if fault not in ("none", "none-agi", "web"):
                time.sleep(max(0.0, fault_at - (time.monotonic() - t0)))
                _inject(
                    fault, report, asterisk, daemon, home, config.database.path, proxy, down_s,
                    config_path if handover else None,
                )  # fmt: skip
            carrier.wait(seconds + hold_ms / 1000 + 60)
            carrier = None
            if attack is not None:
                attack.__exit__(None, None, None)
                attack = None
                web = (health() or {}).get("components", {}).get("web", {})
                report.web_refused = web.get("refused_connections")
            _wait_settled(config.database.path, 30)
        finally:
            if attack is not None:
                attack.__exit__(None, None, None)
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
    finally:
        if proxy is not None:
            proxy.stop()
        if fault == "disk":
            (home / "filler").unlink(missing_ok=True)
            subprocess.run(["umount", "-l", str(home)], check=False)
    return report


def _inject(
    fault: Fault,
    report: FaultReport,
    asterisk: Asterisk,
    daemon: ProcessDaemon,
    home: Path,
    db_path: str,
    proxy: TcpProxy | None,
    down_s: float,
    handover_config: Path | None,
) -> None:
    """The fault, for ``down_s`` seconds."""
    if fault == "kill":
        killed = time.monotonic()
        daemon.kill()
        if handover_config is not None:
            report.handed_over = hand_over(handover_config)
            report.handover_s = round(time.monotonic() - killed, 2)
        time.sleep(max(0.0, down_s - (time.monotonic() - killed)))
        daemon.start()
    elif fault == "asterisk":
        _restart_asterisk(asterisk, down_s, report)
    elif fault == "ami":
        assert proxy is not None
        proxy.cut(down_s)
    elif fault in ("disk", "lock"):
        watch = threading.Thread(
            target=_watch_writer, args=(report, time.monotonic() + down_s + 1), daemon=True
        )
        watch.start()
        if fault == "disk":
            fill_disk(home)
            time.sleep(down_s)
            (home / "filler").unlink()
        else:
            _hold_lock(db_path, down_s)
        watch.join(down_s + 5)
    else:
        raise ValueError(f"unknown fault {fault!r}")


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
    report.connected = carrier_ok
    report.dropped = report.placed - carrier_ok
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
    report.completed = report.rows - report.in_progress
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
            report.wrong_unknown += row["outcome"] == "unknown"
            report.wrong_examples.append(
                f"{caller}: answered by {expected}; row {row['outcome']} by {row['answered_by']}"
            )
    fs_rows = [r for r in rows if r["failsafe"]]
    report.failsafe_rows = len(fs_rows)
    report.not_attributed_late = sum(
        1 for r in fs_rows if r["visitor_id"] != VISITOR or not r["attributed_late"]
    )
    report.wrong_examples = report.wrong_examples[:10]
