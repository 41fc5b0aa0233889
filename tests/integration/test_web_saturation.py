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
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .ctm import AGI_DIDS, DIDS, WEB_PORT, wait_app, wait_call, write_config
from .sip import Asterisk, Carrier
from .web_clients import Saturator

pytestmark = pytest.mark.integration

FD_LIMIT = 128
ATTACKERS = [f"127.0.0.{i}" for i in range(20, 28)]
PER_ATTACKER = 20  # under the per-client cap: the total cap is what holds


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
