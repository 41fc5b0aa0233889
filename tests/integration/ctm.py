"""Running ctm-pbx itself in integration tests: in a thread, or as a `ctm-pbx run` process."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ctm_pbx.adapters.config_loader import load_config
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import migrate, open_db
from ctm_pbx.core.model import Config
from ctm_pbx.edges.cli import sync_config_numbers
from ctm_pbx.edges.daemon import Daemon

from .sip import Asterisk

TEST_CONFIG = """\
asterisk:
  {{ari_url: "http://127.0.0.1:8088", username: ctm, password: ctm-secret, app: ctm-pbx,
   mode: both, agi: {{port: 4573, timeout_ms: 2000}}, ami: {{port: {ami_port}, username: ctm,
   secret: ctm-secret}},
   recordings: {{dir: /var/spool/asterisk/monitor, local_dir: {rec_local}}},
   call_spool: {spool}}}
database: {{path: {db}}}
web: {{host: 127.0.0.1, port: {port}}}
dashboard: {{host: 127.0.0.1, port: {dash_port}}}
sources:
  billboard: {{kind: offsite, label: "Billboard"}}
  radio: {{kind: offsite}}
  google-ads: {{preset: google_ads}}
targets:
  sales: "+13125550100"
pools:
  gads: {{source: google-ads, target: sales}}
receiving_numbers:
  desk-1: {{number: "+13125550101", dial: "PJSIP/phone1"}}
  desk-2: {{number: "+13125550102", dial: "PJSIP/phone2"}}
  desk-3: {{number: "+13125550103", dial: "PJSIP/phone3"}}
  desk-4: {{number: "+13125550104", dial: "PJSIP/phone4"}}
routes:
  single: {{type: single, targets: [desk-1], ring_timeout: 2}}
  simul: {{type: simultaneous, targets: [desk-1, desk-2], ring_timeout: 5}}
  seq: {{type: sequential, targets: [desk-1, desk-2, desk-3], ring_timeout: 2, fallback: busy}}
  rr: {{type: sequential, order: round_robin, targets: [desk-1, desk-2, desk-3], ring_timeout: 2}}
  nobody: {{type: single, targets: [desk-4], ring_timeout: 2, fallback: {{route: backup}}}}
  backup: {{type: single, targets: [desk-3], ring_timeout: 3}}
  office: {{type: single, targets: [desk-1], ring_timeout: 3, schedule: weekdays,
            after_hours: {{route: backup}}}}
  by-region:
    type: geo
    rules:
      - {{area_codes: ["212"], route: simul}}
      - {{states: [IL], route: single}}
    default: {{route: backup}}
  menu:
    type: ivr
    prompts: ctm-pbx/welcome
    options: {{1: {{route: single}}, 2: {{route: submenu}}, 3: {{receiving_number: desk-3}},
               "#": {{route: backup}}}}
    timeout: 1
    attempts: 2
    invalid_prompt: ctm-pbx/invalid
    default: {{route: backup}}
  submenu:
    type: ivr
    prompts: ctm-pbx/welcome
    options: {{1: {{route: simul}}, "*": {{route: menu}}}}
    timeout: 1
    default: busy
  zip-region:
    type: geo
    ask_zip: {{prompts: [ctm-pbx/enter-zip], timeout: 2, attempts: 2}}
    rules: [{{zip_prefixes: ["606"], route: single}}, {{states: [NY], route: simul}}]
    default: {{route: backup}}
  # queues: agents desk-1..3 (phone1..3)
  q-ringall: {{type: queue, strategy: ringall, targets: [desk-1, desk-2, desk-3], ring_timeout: 3}}
  q-linear: {{type: queue, strategy: linear, targets: [desk-1, desk-2, desk-3], ring_timeout: 3}}
  q-rrmemory:
    {{type: queue, strategy: rrmemory, targets: [desk-1, desk-2, desk-3], ring_timeout: 3}}
  q-leastrecent:
    {{type: queue, strategy: leastrecent, targets: [desk-1, desk-2, desk-3], ring_timeout: 3}}
  q-fewestcalls:
    {{type: queue, strategy: fewestcalls, targets: [desk-1, desk-2, desk-3], ring_timeout: 3}}
  q-random: {{type: queue, strategy: random, targets: [desk-1, desk-2, desk-3], ring_timeout: 3}}
  q-wrandom:
    type: queue
    strategy: wrandom
    targets: [{{receiving_number: desk-1, weight: 1}}, {{receiving_number: desk-2, weight: 1}},
              {{receiving_number: desk-3, weight: 1}}]
    ring_timeout: 3
  q-wrapup: {{type: queue, strategy: linear, targets: [desk-1, desk-2], ring_timeout: 3,
              wrapup: 3}}
  q-overflow: {{type: queue, targets: [desk-1], ring_timeout: 1, max_wait: 2,
                fallback: {{route: backup}}}}
  q-full: {{type: queue, targets: [desk-1], ring_timeout: 5, max_wait: 20, max_length: 1,
            fallback: {{route: backup}}}}
  q-priority: {{type: queue, strategy: linear, targets: [desk-1], ring_timeout: 5, max_wait: 30,
                priority_by_source: {{google-ads: 10}}}}
  whispered: {{type: single, targets: [desk-1], ring_timeout: 5,
               whisper: {{google-ads: ctm-pbx/whisper-google-ads, "*": ctm-pbx/whisper-call}}}}
  recorded: {{type: single, targets: [desk-1], ring_timeout: 5, record: true}}
  to-voicemail: {{type: single, targets: [desk-4], ring_timeout: 1,
                  fallback: {{voicemail: ctm-pbx/welcome}}}}
  menu-queue:
    type: ivr
    prompts: ctm-pbx/welcome
    options: {{1: {{route: q-rrmemory}}, 2: {{route: submenu-queue}}}}
    timeout: 1
    default: hangup
  submenu-queue:
    type: ivr
    prompts: ctm-pbx/welcome
    options: {{1: {{route: q-linear}}}}
    timeout: 1
    default: hangup
schedules:
  weekdays: {{time_zone: America/Chicago, hours: {{mon-fri: "09:00-17:00"}}}}
tracking_numbers:
  - {{number: "+13125550142", source: billboard, route: single}}
  - {{number: "+13125550143", source: billboard, route: simul}}
  - {{number: "+13125550144", source: radio, route: seq}}
  - {{number: "+13125550145", source: radio, route: rr}}
  - {{number: "+13125550146", source: radio, route: nobody}}
  - {{number: "+13125550147", source: radio, route: office}}
  - {{number: "+13125550148", source: radio, route: by-region}}
  - {{number: "+13125550149", source: radio, route: menu}}
  - {{number: "+13125550141", source: radio, route: zip-region}}
  - {{number: "+13125550200", source: radio, route: q-ringall}}
  - {{number: "+13125550201", source: radio, route: q-linear}}
  - {{number: "+13125550202", source: radio, route: q-rrmemory}}
  - {{number: "+13125550203", source: radio, route: q-leastrecent}}
  - {{number: "+13125550204", source: radio, route: q-fewestcalls}}
  - {{number: "+13125550205", source: radio, route: q-random}}
  - {{number: "+13125550206", source: radio, route: q-wrandom}}
  - {{number: "+13125550207", source: radio, route: q-overflow}}
  - {{number: "+13125550208", source: radio, route: q-full}}
  - {{number: "+13125550209", source: radio, route: q-priority}}
  - {{number: "+13125550210", source: google-ads, route: q-priority}}
  - {{number: "+13125550211", source: radio, route: menu-queue}}
  - {{number: "+13125550212", source: radio, route: q-wrapup}}
  - {{number: "+13125550220", source: radio, route: whispered}}
  - {{number: "+13125550221", source: google-ads, route: whispered}}
  - {{number: "+13125550222", source: radio, route: recorded}}
  - {{number: "+13125550223", source: radio, route: to-voicemail}}
  - {{number: "+13125550150", pool: gads, route: single}}
  # AGI mode (tests/asterisk/extensions_local.conf sends +1312555016X to ctm-agi-inbound)
  - {{number: "+13125550160", source: billboard, route: single}}
  - {{number: "+13125550161", source: billboard, route: simul}}
  - {{number: "+13125550162", source: radio, route: seq}}
  - {{number: "+13125550163", source: radio, route: nobody}}
  - {{number: "+13125550164", source: radio, route: by-region}}
  - {{number: "+13125550165", pool: gads, route: single}}
"""

DIDS = {
    "single": "13125550142",
    "simul": "13125550143",
    "seq": "13125550144",
    "rr": "13125550145",
    "nobody": "13125550146",
    "office": "13125550147",
    "by-region": "13125550148",
    "menu": "13125550149",
    "zip-region": "13125550141",
    "q-ringall": "13125550200",
    "q-linear": "13125550201",
    "q-rrmemory": "13125550202",
    "q-leastrecent": "13125550203",
    "q-fewestcalls": "13125550204",
    "q-random": "13125550205",
    "q-wrandom": "13125550206",
    "q-overflow": "13125550207",
    "q-full": "13125550208",
    "q-priority": "13125550209",
    "q-priority-ads": "13125550210",
    "menu-queue": "13125550211",
    "q-wrapup": "13125550212",
    "whispered": "13125550220",
    "whispered-ads": "13125550221",
    "recorded": "13125550222",
    "to-voicemail": "13125550223",
}
SANDBOX_ROOT = Path(os.environ.get("CTM_SANDBOX_DIR", "/var/lib/ctm-pbx-sandbox")) / "root"
RECORDINGS = SANDBOX_ROOT / "var/spool/asterisk/monitor"  # as this process sees them
CALL_SPOOL = SANDBOX_ROOT / "var/spool/asterisk/ctm-pbx/calls.spool"  # CTM_SPOOL
AGI_DIDS = {
    "single": "13125550160",
    "simul": "13125550161",
    "seq": "13125550162",
    "nobody": "13125550163",
    "by-region": "13125550164",
    "unknown": "13125550169",  # not a tracking number: the default destination
    "gads": "13125550165",
}
WEB_PORT = 18089
AMI_PORT = 5038  # the sandbox's manager.conf


def render_test_queues() -> str:
    """queues_ctm.conf for the sandbox: the test config's queue routes."""
    from ctm_pbx.adapters.asterisk_conf import render_queues
    from ctm_pbx.adapters.config_loader import parse_config

    text = TEST_CONFIG.format(
        db="unused.db",
        port=WEB_PORT,
        ami_port=AMI_PORT,
        dash_port=WEB_PORT + 1,
        rec_local=RECORDINGS,
        spool=CALL_SPOOL,
    )
    return render_queues(parse_config(text))


def write_config(directory: Path, port: int = WEB_PORT, ami_port: int = AMI_PORT) -> Path:
    """The test config in ``directory`` (its database too); ``ami_port``: where AMI is
    reached (a proxy that cuts it, in the fault runs)."""
    path = directory / "config.yaml"
    text = TEST_CONFIG.format(
        db=directory / "ctm.db",
        port=port,
        ami_port=ami_port,
        dash_port=port + 1,
        rec_local=RECORDINGS,
        spool=CALL_SPOOL,
    )
    path.write_text(text, encoding="utf-8")
    return path


def clear_spool() -> None:
    """Forget the call spool's lines of earlier tests (each test has its own call log)."""
    for path in CALL_SPOOL.parent.glob(CALL_SPOOL.name + "*"):
        path.unlink(missing_ok=True)


def prepare_db(config: Config) -> None:
    db = open_db(config.database.path)
    migrate(db)
    sync_config_numbers(config, db)
    db.conn.close()


def wait_app(asterisk: Asterisk, present: bool, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (asterisk.app in asterisk.applications()) != present:
        if time.monotonic() > deadline:
            raise TimeoutError(f"Stasis app {'not ' if present else ''}connected")
        time.sleep(0.05)


class ThreadDaemon:
    """The daemon in a thread of the test process (so tests can inject faults)."""

    def __init__(
        self,
        config_path: Path,
        asterisk: Asterisk,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = load_config(config_path)
        self.asterisk = asterisk
        self.clock = clock
        self.daemon: Daemon | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> ThreadDaemon:
        clear_spool()
        prepare_db(self.config)
        ready = threading.Event()

        def main() -> None:
            async def serve() -> None:
                self._loop = asyncio.get_running_loop()
                self.daemon = Daemon(self.config, self.clock) if self.clock else Daemon(self.config)
                ready.set()
                await self.daemon.serve()

            try:
                asyncio.run(serve())
            except BaseException as exc:  # surfaced by stop()
                self._error = exc
                ready.set()

        self._thread = threading.Thread(target=main, name="ctm-daemon", daemon=True)
        self._thread.start()
        ready.wait(10)
        wait_app(self.asterisk, True)
        return self

    def stop(self) -> None:
        if self._loop and self.daemon and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.daemon.stop.set)
            self._thread.join(15)
        wait_app(self.asterisk, False)
        if self._error:
            raise self._error

    def call(self, timeout_s: float = 10.0, **match) -> dict:
        """The latest completed call row matching ``match`` (waits for completion)."""
        return wait_call(self.config.database.path, timeout_s=timeout_s, **match)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The daemon's event loop (for ``run_coroutine_threadsafe``)."""
        assert self._loop is not None, "start() first"
        return self._loop


class ProcessDaemon:
    """``ctm-pbx run`` as a child process, stopped (or killed) by its PID."""

    def __init__(
        self, config_path: Path, asterisk: Asterisk, log: Path, fd_limit: int | None = None
    ) -> None:
        """``fd_limit``: its open files (soft and hard: it cannot raise them)."""
        self.config_path = config_path
        self.asterisk = asterisk
        self.log = log
        self.fd_limit = fd_limit
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ProcessDaemon:
        out = open(self.log, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ctm_pbx", "--config", str(self.config_path), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ),
            preexec_fn=self._limit if self.fd_limit else None,
        )
        out.close()
        try:
            wait_app(self.asterisk, True, timeout_s=15)
        except TimeoutError:
            self.stop()
            raise TimeoutError(
                f"ctm-pbx run did not connect:\n{self.log.read_text()[-2000:]}"
            ) from None
        return self

    def _limit(self) -> None:  # in the child, before exec
        assert self.fd_limit is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.fd_limit, self.fd_limit))

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


def wait_call(db_path: str, timeout_s: float = 10.0, **match) -> dict:
    """Poll the call log until a completed row matches ``match``; the latest such row."""
    deadline = time.monotonic() + timeout_s
    last: list[dict] = []
    while time.monotonic() < deadline:
        db = open_db(db_path)
        try:
            last = call_store.list_calls(db, limit=200)
            rows = [
                r
                for r in last
                if r["status"] == "completed" and all(r.get(k) == v for k, v in match.items())
            ]
            if rows:
                return call_store.get_call(db, rows[0]["id"])
        finally:
            db.conn.close()
        time.sleep(0.05)
    raise AssertionError(f"no completed call matching {match}; rows: {last[:3]}")
