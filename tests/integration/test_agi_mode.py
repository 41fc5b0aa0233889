"""AGI mode against the real Asterisk: the admin's dialplan asks ctm-pbx over FastAGI,
dials by itself (dialplan/ctm-pbx-agi.conf), and AMI events complete the call row.

The daemon runs in ``both`` mode: +1312555016X reach [ctm-agi-inbound] through
tests/asterisk/extensions_local.conf, the other DIDs the ARI app.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .ctm import AGI_DIDS, ProcessDaemon, ThreadDaemon, clear_spool, wait_call, write_config
from .sip import Asterisk, Carrier

pytestmark = pytest.mark.integration

CALLER = "+13125550100"
AGI_PORT = 4573


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@pytest.fixture
def ctm(asterisk: Asterisk, config_path: Path) -> Iterator[ThreadDaemon]:
    daemon = ThreadDaemon(config_path, asterisk).start()
    deadline = time.monotonic() + 10
    while not daemon.daemon.agi.ami.connected.is_set():
        assert time.monotonic() < deadline, "AMI did not connect"
        time.sleep(0.02)
    yield daemon
    daemon.stop()


def legs(row: dict) -> list[str]:
    return [f"{leg['receiving_number']}={leg['result']}" for leg in row["legs"]]


def test_simultaneous_first_answer_wins(ctm, phone_factory, carrier: Carrier) -> None:
    phone_factory("phone1", "answer", ring_ms=1500)
    phone_factory("phone2", "answer", ring_ms=200)
    call = carrier.place_call(AGI_DIDS["simul"], "call", from_number=CALLER, hold_ms=600)
    assert call.success, call.describe()
    assert 180 in call.codes, "the caller hears ringing: not answered before a phone"
    row = ctm.call(tracking_number="+13125550161")
    assert row["mode"] == "agi" and row["source"] == "billboard" and row["route"] == "simul"
    assert row["outcome"] == "answered" and row["answered_by"] == "desk-2"
    assert row["answered_number"] == "+13125550102" and row["caller_number"] == CALLER
    assert legs(row) == ["desk-1=cancelled", "desk-2=answered"]
    assert 0.1 <= row["ring_seconds"] <= 1.4 and 0.4 <= row["talk_seconds"] <= 3
    assert row["hangup_cause"] == 16 and not row["failsafe"]
    assert row["channel_id"] and row["linkedid"] == row["channel_id"]
    assert row["path"][0]["dial_status"] == "ANSWER"


def test_sequential_skips_busy_and_unanswered(ctm, phone_factory, carrier: Carrier) -> None:
    phone_factory("phone1", "busy")
    phone_factory("phone2", "noanswer")
    phone_factory("phone3", "answer", ring_ms=200)
    call = carrier.place_call(AGI_DIDS["seq"], "call", hold_ms=300)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550162")
    assert row["outcome"] == "answered" and row["answered_by"] == "desk-3"
    assert legs(row) == ["desk-1=busy", "desk-2=no_answer", "desk-3=answered"]
    assert [leg["step"] for leg in row["legs"]] == [1, 2, 3]
    assert 1.5 <= row["legs"][1]["ring_seconds"] <= 3, "ring_timeout 2 s"
    assert [p["dial_status"] for p in row["path"]] == ["BUSY", "NOANSWER", "ANSWER"]


def test_all_busy_ends_busy(ctm, phone_factory, carrier: Carrier) -> None:
    for name in ("phone1", "phone2", "phone3"):
        phone_factory(name, "busy")
    call = carrier.place_call(AGI_DIDS["seq"], "reject")
    assert call.final_code == 486, call.describe()  # the route's fallback: busy
    row = ctm.call(tracking_number="+13125550162")
    assert row["outcome"] == "busy" and row["answered_by"] is None
    assert legs(row) == ["desk-1=busy", "desk-2=busy", "desk-3=busy"]
    assert row["path"][-1]["fallback"] == "busy" and row["path"][-1]["from_route"] == "seq"


def test_fallback_route(ctm, phone_factory, carrier: Carrier) -> None:
    phone_factory("phone4", "noanswer")
    phone_factory("phone3", "answer", ring_ms=100)
    call = carrier.place_call(AGI_DIDS["nobody"], "call", hold_ms=300)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550163")
    assert row["outcome"] == "answered" and row["answered_by"] == "desk-3"
    assert legs(row) == ["desk-4=no_answer", "desk-3=answered"]
    fallback = next(p for p in row["path"] if "fallback" in p)
    assert (fallback["from_route"], fallback["to_route"]) == ("nobody", "backup")


def test_geo_route_decided_in_agi_mode(ctm, phone_factory, carrier: Carrier) -> None:
    phone_factory("phone1", "noanswer")
    phone_factory("phone2", "answer", ring_ms=100)
    call = carrier.place_call(AGI_DIDS["by-region"], "call", from_number="+12125550100")
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550164")
    assert row["mode"] == "agi" and row["answered_by"] == "desk-2"
    assert row["caller_region"] == "NY" and row["caller_area_code"] == "212"
    geo = next(p for p in row["path"] if "geo" in p)
    assert geo["to_route"] == "simul"


def test_caller_hangs_up_while_ringing(ctm, phone_factory, carrier: Carrier) -> None:
    phone1 = phone_factory("phone1", "noanswer")
    phone2 = phone_factory("phone2", "noanswer")
    call = carrier.place_call(AGI_DIDS["simul"], "cancel", cancel_ms=700)
    assert call.final_code == 487, call.describe()
    row = ctm.call(tracking_number="+13125550161")
    assert row["outcome"] == "abandoned"
    assert legs(row) == ["desk-1=abandoned", "desk-2=abandoned"]
    assert phone1.wait_for("CANCELLED", timeout_s=3), phone1.describe()
    assert phone2.wait_for("CANCELLED", timeout_s=3), phone2.describe()


def test_unknown_number_goes_to_the_default_destination(
    ctm, phone_factory, carrier: Carrier
) -> None:
    phone_factory("failsafe", "answer", ring_ms=100)
    call = carrier.place_call(AGI_DIDS["unknown"], "call", hold_ms=300)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550169")
    assert row["mode"] == "agi" and row["source"] is None and row["failsafe"]
    assert row["outcome"] == "answered" and row["answered_by"] == "PJSIP/failsafe"
    assert "not a tracking number" in row["path"][0]["default_destination"]


def test_default_destination_set_by_the_dialplan(ctm, phone_factory, carrier) -> None:
    """CTM_AGI_DEFAULT (context,exten,priority) replaces the fail-safe Dial()."""
    phone_factory("phone4", "answer", ring_ms=100)
    call = carrier.place_call("13125550168", "call", hold_ms=300)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550168")
    assert row["failsafe"] and row["answered_by"] == "PJSIP/phone4"


def test_agi_server_down_the_call_still_connects(asterisk, phone_factory, carrier) -> None:
    """No ctm-pbx at all: AGI() fails at once and the default destination answers."""
    phone_factory("failsafe", "answer", ring_ms=100)
    t0 = time.monotonic()
    call = carrier.place_call(AGI_DIDS["single"], "call", hold_ms=300)
    assert call.success, call.describe()
    assert time.monotonic() - t0 < 3, "no wait for a server that is not there"


def test_a_call_longer_than_the_agi_timeout_is_not_cut(ctm, phone_factory, carrier) -> None:
    """The absolute timeout armed around the request (3 s in the sandbox) is cleared by
    ctm-pbx's answer (``disarm``): a conversation may last longer than the request could."""
    phone_factory("phone1", "answer", ring_ms=100)
    call = carrier.place_call(AGI_DIDS["single"], "call", hold_ms=3500)
    assert call.success and call.ended_by == "caller", call.describe()
    row = ctm.call(tracking_number="+13125550160")
    assert row["outcome"] == "answered" and not row["failsafe"]
    assert legs(row) == ["desk-1=answered"] and len(row["path"]) == 1
    assert row["talk_seconds"] >= 3.3


def test_agi_server_down_a_long_call_is_not_cut(asterisk, phone_factory, carrier) -> None:
    """No answer to clear the request's absolute timeout: [ctm-agi-default] clears it."""
    phone_factory("failsafe", "answer", ring_ms=100)
    call = carrier.place_call(AGI_DIDS["single"], "call", hold_ms=3500)
    assert call.success and call.ended_by == "caller", call.describe()


def test_agi_server_hung_the_call_goes_on_in_bounded_time(
    asterisk, phone_factory, carrier, tmp_path
) -> None:
    """A server that accepts and never answers (a hung ctm-pbx): after CTM_AGI_TIMEOUT
    (3 s in the sandbox) the dialplan takes the call to the default destination."""
    listener = socket.create_server(("127.0.0.1", AGI_PORT))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(conn)  # read nothing, answer nothing

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        phone_factory("failsafe", "answer", ring_ms=100)
        t0 = time.monotonic()
        call = carrier.place_call(AGI_DIDS["single"], "call", hold_ms=300)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        listener.close()
    assert accepted, "Asterisk asked the hung server"
    assert call.success, call.describe()
    assert 2.5 <= elapsed <= 6, f"default destination after the 3 s AGI timeout ({elapsed:.1f} s)"


def test_ctm_pbx_too_slow_gives_up_and_logs_the_default_destination(
    asterisk, config_path, phone_factory, carrier
) -> None:
    """ctm-pbx itself slower than asterisk.agi.timeout_ms: it stops answering, the dialplan
    goes to the default destination, and the row says so."""
    text = config_path.read_text().replace("timeout_ms: 2000", "timeout_ms: 50")
    config_path.write_text(text)
    daemon = ThreadDaemon(config_path, asterisk).start()
    # a slow store: another process (the CLI, say) holds the write lock until ctm-pbx
    # has given up on the request; the row is written, but late
    other = sqlite3.connect(
        daemon.config.database.path, isolation_level=None, check_same_thread=False
    )
    other.execute("BEGIN IMMEDIATE")
    agi = daemon.daemon.agi

    def release() -> None:
        deadline = time.monotonic() + 10
        while agi.timeouts == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        other.execute("COMMIT")

    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        phone_factory("failsafe", "answer", ring_ms=100)
        call = carrier.place_call(AGI_DIDS["single"], "call", hold_ms=300)
        assert call.success, call.describe()
        releaser.join()
        row = wait_call(daemon.config.database.path, tracking_number="+13125550160")
    finally:
        releaser.join()
        other.close()
        daemon.stop()
    assert row["failsafe"] and row["answered_by"] == "PJSIP/failsafe"
    assert agi.timeouts == 1
    assert row["path"][0]["default_destination"] == "ctm-pbx answered too late"


def test_daemon_killed_mid_call_row_is_still_completed(
    asterisk, config_path, tmp_path, phone_factory, carrier
) -> None:
    """SIGKILL mid-call: the call is untouched (the dialplan owns it); the restarted
    daemon adopts the live channel from AMI and completes the row at its hangup: what
    it missed meanwhile (the answer) from the dialplan's call spool line."""
    clear_spool()  # earlier tests' lines are for their own databases
    phone = phone_factory("phone1", "answer", ring_ms=100)
    log = tmp_path / "daemon.log"
    daemon = ProcessDaemon(config_path, asterisk, log).start()
    result: dict = {}
    caller = threading.Thread(
        target=lambda: result.setdefault(
            "call", carrier.place_call(AGI_DIDS["single"], "call", hold_ms=4000)
        )
    )
    caller.start()
    try:
        assert phone.wait_for("ANSWERED", timeout_s=5), phone.describe()
        daemon.kill()
        restarted = ProcessDaemon(config_path, asterisk, log).start()
        caller.join(15)
        assert result["call"].success and result["call"].ended_by == "caller"
        row = wait_call(str(tmp_path / "ctm.db"), tracking_number="+13125550160")
    finally:
        caller.join(15)
        daemon.stop()
    assert restarted.stop() == 0, log.read_text()[-2000:]
    assert "adopted after a restart" in log.read_text()
    assert row["mode"] == "agi" and row["ended_at"] > row["started_at"]
    assert row["outcome"] == "answered" and row["hangup_cause"] == 16
    assert row["answered_by"] == "desk-1" and row["talk_seconds"] > 3
    assert [(leg["receiving_number"], leg["result"]) for leg in row["legs"]] == [
        ("desk-1", "answered")
    ]
