"""A client that saturates the web listener does not reach the call path.

``ctm-pbx run`` runs with few file descriptors (128, soft and hard: it cannot raise
them); a client keeps 160 idle connections open to the web port from eight loopback
addresses, opening a new one whenever the daemon closes one. Before the listener's
caps this took every descriptor, and the FastAGI listener reset Asterisk's
connections (AGI calls went to the default destination, unlogged). Now the web
listener holds at most half the descriptors, and an AGI call and an ARI call made
during the attack are routed and logged.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .ctm import AGI_DIDS, DIDS, WEB_PORT, wait_app, wait_call, write_config
from .sip import Asterisk, Carrier

pytestmark = pytest.mark.integration

FD_LIMIT = 128
ATTACKERS = [f"127.0.0.{i}" for i in range(20, 28)]
PER_ATTACKER = 20  # under the per-client cap: the total cap is what holds


class Saturator:
    """Keeps ``len(sources) * per_source`` idle connections open to ``port``."""

    def __init__(self, port: int, sources: list[str], per_source: int) -> None:
        self.port, self.sources, self.per_source = port, sources, per_source
        self.stopping = threading.Event()
        self.opened = 0
        self.held = 0
        self.thread = threading.Thread(target=self._run, name="saturator", daemon=True)

    def _open(self, sel: selectors.DefaultSelector, source: str) -> None:
        s = socket.socket()
        s.bind((source, 0))
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        sel.register(s, selectors.EVENT_READ, source)
        self.opened += 1

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        for source in self.sources:
            for _ in range(self.per_source):
                self._open(sel, source)
        try:
            while not self.stopping.is_set():
                closed = []
                for key, _ in sel.select(timeout=0.5):
                    try:
                        data = key.fileobj.recv(4096)  # type: ignore[union-attr]
                    except OSError:
                        data = b""
                    if not data:  # the daemon closed it (or refused it): open another
                        closed.append(key)
                for key in closed:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]
                self.held = len(sel.get_map())
                time.sleep(0.5)  # an attacker in a hurry, not a busy loop on a shared CPU
                for key in closed:
                    self._open(sel, key.data)
        finally:
            for key in list(sel.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            sel.close()

    def __enter__(self) -> Saturator:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(10)


def _few_descriptors() -> None:  # in the child, before exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@pytest.fixture
def daemon(asterisk: Asterisk, tmp_path: Path) -> Iterator[Path]:
    """``ctm-pbx run`` with FD_LIMIT descriptors; yields its log."""
    config = write_config(tmp_path)
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ctm_pbx", "--config", str(config), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ),
            preexec_fn=_few_descriptors,
        )
    try:
        wait_app(asterisk, True, timeout_s=15)
        deadline = time.monotonic() + 10
        while b"AMI connected" not in log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        wait_app(asterisk, False)


def health(path: str = "/healthz") -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}{path}", timeout=5) as resp:
        return json.load(resp)  # urlopen raises on a 503


def test_calls_complete_while_the_web_listener_is_saturated(
    daemon: Path, tmp_path: Path, phone_factory, carrier: Carrier
) -> None:
    phone = phone_factory("phone1", "answer", ring_ms=200)
    with Saturator(WEB_PORT, ATTACKERS, PER_ATTACKER) as attack:
        time.sleep(2)  # every connection opened, the refused ones opening again
        assert attack.opened > len(ATTACKERS) * PER_ATTACKER, "the daemon refused some"
        agi = carrier.place_call(AGI_DIDS["single"], "call", hold_ms=300)
        ari = carrier.place_call(DIDS["single"], "call", hold_ms=300)
    assert agi.success, agi.describe()
    assert ari.success, ari.describe()
    db = str(tmp_path / "ctm.db")
    agi_row = wait_call(db, tracking_number="+13125550160")
    assert agi_row["mode"] == "agi" and agi_row["route"] == "single" and not agi_row["failsafe"]
    assert agi_row["outcome"] == "answered" and agi_row["answered_by"] == "desk-1"
    ari_row = wait_call(db, tracking_number="+13125550142")
    assert ari_row["route"] == "single" and ari_row["outcome"] == "answered"
    phone.stop()
    # the attack is over: the listener serves again, and says what it refused
    web = health()["components"]["web"]
    assert web["max_connections"] == FD_LIMIT // 2
    assert web["refused_connections"] > 0
    assert "Too many open files" not in daemon.read_text()
    # mode both, on the real Asterisk: the call path is ready, each part connected
    calls = health("/healthz/calls")
    assert calls["status"] == "ok" and calls["ready"] == {"web_api": True, "calls": True}
    assert {name for name, part in calls["components"].items() if part["ok"]} == {
        "database",
        "web",
        "ari",
        "ami",
        "fastagi",
    }
