"""ARI mode against the real Asterisk: sipp as the carrier and as the receiving phones.

Each test places real SIP calls to tracking DIDs; ctm-pbx (in a thread of this process)
routes them; the call log must say what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctm_pbx.core.call import route_walk
from ctm_pbx.edges.cli import main

from .ctm import DIDS, ProcessDaemon, ThreadDaemon, wait_app, wait_call, write_config
from .sip import Asterisk, Carrier

pytestmark = pytest.mark.integration

CALLER = "+13125550100"


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@pytest.fixture
def ctm(asterisk: Asterisk, config_path: Path) -> Iterator[ThreadDaemon]:
    daemon = ThreadDaemon(config_path, asterisk).start()
    yield daemon
    daemon.stop()


def legs(row: dict) -> list[str]:
    return [f"{leg['receiving_number']}={leg['result']}" for leg in row["legs"]]


def test_single_route_answered(ctm, phone_factory, carrier: Carrier) -> None:
    phone = phone_factory("phone1", "answer", ring_ms=300)
    call = carrier.place_call(DIDS["single"], "call", from_number=CALLER, hold_ms=600)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550142")
    assert row["outcome"] == "answered" and row["answered_by"] == "desk-1"
    assert row["caller_number"] == CALLER and row["source"] == "billboard"
    assert row["route"] == "single" and row["answered_number"] == "+13125550101"
    assert row["ring_seconds"] >= 0.25 and 0.4 <= row["talk_seconds"] <= 3
    assert legs(row) == ["desk-1=answered"]
    assert phone.stop().callers == (CALLER,), "the phone sees the caller's number"


def test_rest_requests_go_on_the_event_socket(ctm, phone_factory, carrier: Carrier) -> None:
    """Asterisk 22 answers ARI REST requests on the event WebSocket: no HTTP per call."""
    assert ctm.daemon.status()["ari_rest_transport"] == "websocket"
    sent = ctm.daemon.status()["ari_requests"]
    phone = phone_factory("phone1", "answer")
    call = carrier.place_call(DIDS["single"], "call", from_number=CALLER, hold_ms=200)
    assert call.success, call.describe()
    assert ctm.call(tracking_number="+13125550142")["outcome"] == "answered"
    assert ctm.daemon.status()["ari_requests"] == sent + 1, "one continue per one-leg call"
    phone.stop()


def test_listings_go_over_http_even_when_the_socket_carries_rest(ctm, asterisk: Asterisk) -> None:
    """A channel list of a busy PBX on the event socket crashes Asterisk 22.10 (it builds
    each frame it sends on its thread's stack); reconciliation must not ask for one there."""
    assert ctm.daemon.status()["ari_rest_transport"] == "websocket"
    name = "n" * 8000  # 30 local pairs with long caller names: a listing of ~1 MB
    held = [
        asterisk.ari_send(
            "POST",
            "channels",
            {
                "endpoint": "Local/s@ctm-test-hold",
                "context": "ctm-test-hold",
                "extension": "s",
                "priority": 1,
                "callerId": f'"{name}" <1312555{i:04d}>',
            },
        )["id"]
        for i in range(30)
    ]
    try:
        asyncio.run_coroutine_threadsafe(ctm.daemon.handler.reconcile(), ctm.loop).result(15)
        assert asterisk.ari_ready(), "Asterisk survived the listing"
        assert len(asterisk.ari_get("channels")) >= 30
    finally:
        for channel_id in held:
            with contextlib.suppress(OSError):
                asterisk.ari_send("DELETE", f"channels/{channel_id}")
    assert asterisk.wait_no_channels(timeout_s=10) == []


def test_caller_is_not_answered_before_the_phone(ctm, phone_factory, carrier: Carrier) -> None:
    phone_factory("phone1", "answer", ring_ms=1200)
    call = carrier.place_call(DIDS["single"], "call", hold_ms=300)
    assert call.success, call.describe()
    assert 180 in call.codes, "the caller hears ringing while the phone rings"
    assert call.codes.index(180) < call.codes.index(200)
    row = ctm.call(tracking_number="+13125550142")
    assert row["ring_seconds"] >= 1.1


def test_simultaneous_first_to_answer_wins(ctm, phone_factory, carrier: Carrier) -> None:
    slow = phone_factory("phone1", "answer", ring_ms=2500)
    fast = phone_factory("phone2", "answer", ring_ms=300)
    call = carrier.place_call(DIDS["simul"], "call", hold_ms=500)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550143")
    assert row["answered_by"] == "desk-2"
    assert legs(row) == ["desk-1=cancelled", "desk-2=answered"]
    assert slow.wait_for("CANCELLED", timeout_s=3), slow.describe()
    assert (slow.stop().answered, fast.stop().answered) == (0, 1)


def test_sequential_skips_a_busy_phone(ctm, phone_factory, carrier: Carrier) -> None:
    busy = phone_factory("phone1", "busy")
    answering = phone_factory("phone2", "answer", ring_ms=200)
    call = carrier.place_call(DIDS["seq"], "call", hold_ms=400)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550144")
    assert legs(row) == ["desk-1=busy", "desk-2=answered"]
    assert [p.get("dial_status") for p in row["path"]] == ["BUSY", "ANSWER"]
    assert busy.stop().busy == 1 and answering.stop().answered == 1


def test_never_answering_phone_times_out(ctm, phone_factory, carrier: Carrier) -> None:
    phone = phone_factory("phone1", "noanswer")
    call = carrier.place_call(DIDS["single"], "reject", timeout_s=10)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550142")
    assert row["outcome"] == "no_answer" and legs(row) == ["desk-1=no_answer"]
    assert 1.9 <= row["ring_seconds"] <= 4, "the 2 s ring timeout"
    assert phone.wait_for("CANCELLED", timeout_s=3), phone.describe()


def test_caller_hangs_up_while_phones_ring(ctm, phone_factory, carrier: Carrier) -> None:
    phones = [phone_factory(p, "noanswer") for p in ("phone1", "phone2")]
    call = carrier.place_call(DIDS["simul"], "cancel", cancel_ms=700)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550143")
    assert row["outcome"] == "abandoned"
    assert legs(row) == ["desk-1=abandoned", "desk-2=abandoned"]
    for phone in phones:
        assert phone.wait_for("CANCELLED", timeout_s=3), phone.describe()


def test_everyone_busy_gives_the_caller_busy(ctm, phone_factory, carrier: Carrier) -> None:
    for name in ("phone1", "phone2", "phone3"):
        phone_factory(name, "busy")
    call = carrier.place_call(DIDS["seq"], "reject", timeout_s=10)
    assert call.success and call.final_code == 486, call.describe()
    row = ctm.call(tracking_number="+13125550144")
    assert row["outcome"] == "busy"
    assert legs(row) == ["desk-1=busy", "desk-2=busy", "desk-3=busy"]
    assert row["path"][-1]["fallback"] == "busy"


def test_fallback_route_takes_the_call(ctm, phone_factory, carrier: Carrier) -> None:
    phone_factory("phone4", "busy")
    backup = phone_factory("phone3", "answer", ring_ms=200)
    call = carrier.place_call(DIDS["nobody"], "call", hold_ms=400)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550146")
    assert legs(row) == ["desk-4=busy", "desk-3=answered"]
    assert row["path"][1] == {**row["path"][1], "fallback": "route", "to_route": "backup"}
    assert backup.stop().answered == 1


def test_round_robin_rotates_across_calls_and_restarts(
    asterisk, config_path, phone_factory, carrier: Carrier
) -> None:
    for name in ("phone1", "phone2", "phone3"):
        phone_factory(name, "answer", ring_ms=100)
    answered = []
    for restart in (False, False, True, False):
        daemon = ThreadDaemon(config_path, asterisk).start()
        try:
            before = len(answered)
            call = carrier.place_call(DIDS["rr"], "call", hold_ms=200)
            assert call.success, call.describe()
            rows = _completed(daemon, "+13125550145", before + 1)
            answered.append(rows[0]["answered_by"])
        finally:
            daemon.stop()  # the next iteration is a fresh daemon: memory comes from the DB
        assert restart in (True, False)
    assert answered == ["desk-1", "desk-2", "desk-3", "desk-1"]


def _completed(daemon: ThreadDaemon, number: str, count: int) -> list[dict]:
    import time

    from ctm_pbx.adapters.store import calls as call_store
    from ctm_pbx.adapters.store import open_db

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        db = open_db(daemon.config.database.path)
        rows = [r for r in call_store.list_calls(db, number=number) if r["status"] == "completed"]
        db.conn.close()
        if len(rows) >= count:
            return rows
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} completed calls to {number}")


def test_handler_error_sends_the_call_to_the_failsafe(
    ctm, phone_factory, carrier: Carrier, monkeypatch
) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("injected fault")

    monkeypatch.setattr(route_walk, "plan_route", broken)
    failsafe = phone_factory("failsafe", "answer", ring_ms=200)
    call = carrier.place_call(DIDS["single"], "call", hold_ms=400)
    assert call.success, call.describe()
    assert failsafe.stop().answered == 1
    row = ctm.call(tracking_number="+13125550142")
    assert row["failsafe"] == 1 and row["outcome"] == "answered"
    assert row["answered_by"] == "failsafe"
    assert "injected fault" in row["path"][0]["failsafe"]


def test_unknown_did_reaches_the_failsafe_and_is_logged(ctm, phone_factory, carrier) -> None:
    failsafe = phone_factory("failsafe", "answer", ring_ms=100)
    call = carrier.place_call("13125550177", "call", hold_ms=300)
    assert call.success, call.describe()
    assert failsafe.stop().answered == 1
    row = ctm.call(tracking_number="+13125550177")
    assert row["failsafe"] == 1 and row["source"] is None


def test_daemon_killed_mid_call(asterisk, config_path, tmp_path, phone_factory, carrier) -> None:
    """The bridged call survives a SIGKILL of ctm-pbx; the restarted daemon completes the row."""
    phone = phone_factory("phone1", "answer", ring_ms=100)
    daemon = ProcessDaemon(config_path, asterisk, tmp_path / "daemon.log").start()
    result: dict = {}
    caller = threading.Thread(
        target=lambda: result.setdefault(
            "call", carrier.place_call(DIDS["single"], "call", hold_ms=2500)
        )
    )
    caller.start()
    try:
        assert phone.wait_for("ANSWERED", timeout_s=5), phone.describe()
        daemon.kill()
        wait_app(asterisk, False)
        caller.join(15)
        assert result["call"].success, result["call"].describe()
        assert result["call"].ended_by == "caller", "the call was not cut by the kill"
    finally:
        caller.join(15)
        daemon.stop()
    restarted = ProcessDaemon(config_path, asterisk, tmp_path / "daemon.log").start()
    try:
        row = wait_call(str(tmp_path / "ctm.db"), tracking_number="+13125550142")
        assert row["outcome"] == "answered" and row["answered_by"] == "desk-1"
        assert 2.0 <= row["talk_seconds"] <= 5
    finally:
        assert restarted.stop() == 0, (tmp_path / "daemon.log").read_text()[-2000:]


def test_daemon_not_running_failsafe_answers(asterisk, phone_factory, carrier) -> None:
    wait_app(asterisk, False)
    failsafe = phone_factory("failsafe", "answer", ring_ms=100)
    call = carrier.place_call(DIDS["simul"], "call", hold_ms=300)
    assert call.success, call.describe()
    assert failsafe.stop().answered == 1


def test_calls_list_and_show_display_the_path(ctm, config_path, phone_factory, carrier) -> None:
    phone_factory("phone1", "busy")
    phone_factory("phone2", "answer", ring_ms=100)
    assert carrier.place_call(DIDS["seq"], "call", hold_ms=300).success
    row = ctm.call(tracking_number="+13125550144")
    runner = CliRunner()
    listed = runner.invoke(main, ["--config", str(config_path), "calls", "list"])
    assert listed.exit_code == 0 and "answered" in listed.output and "desk-2" in listed.output
    shown = runner.invoke(main, ["--config", str(config_path), "calls", "show", str(row["id"])])
    assert shown.exit_code == 0, shown.output
    assert "step 1 route seq: desk-1=busy (BUSY" in shown.output
    assert "step 2 route seq: desk-2=answered (ANSWER" in shown.output
