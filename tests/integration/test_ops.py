"""Operations against the real Asterisk: the call counters of ``/metrics`` move with
real calls, and a config reload while a call is up leaves that call on its route
while the next call takes the new one."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import open_db

from .ctm import AGI_DIDS, DIDS, ThreadDaemon
from .sip import Carrier

pytestmark = pytest.mark.integration


def scrape(ctm: ThreadDaemon) -> dict[tuple[str, tuple], float]:
    d = ctm.config.dashboard
    with urllib.request.urlopen(f"http://{d.host}:{d.port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def calls(mode: str, outcome: str, source: str) -> tuple[str, tuple]:
    labels = (("mode", mode), ("outcome", outcome), ("source", source))
    return ("ctm_calls_total", labels)


def legs(row: dict) -> list[str]:
    return [f"{leg['receiving_number']}={leg['result']}" for leg in row["legs"]]


def test_real_calls_move_the_call_counters(
    ctm: ThreadDaemon, phone_factory, carrier, caplog
) -> None:
    """One ARI and one AGI call: each adds one to ``ctm_calls_total`` and logs its line."""
    caplog.set_level(logging.INFO, logger="ctm_pbx.adapters.finished_calls")
    phone_factory("phone1", "answer", ring_ms=200)
    before = scrape(ctm)
    assert before[("ctm_ari_connected", ())] == 1 and before[("ctm_ami_connected", ())] == 1
    ari_answered = calls("ari", "answered", "billboard")
    agi_answered = calls("agi", "answered", "billboard")
    assert before.get(ari_answered, 0) == 0 and before.get(agi_answered, 0) == 0

    call = carrier.place_call(DIDS["single"], "call", hold_ms=300)
    assert call.success, call.describe()
    assert ctm.call(tracking_number="+13125550142")["outcome"] == "answered"
    call = carrier.place_call(AGI_DIDS["single"], "call", hold_ms=300)
    assert call.success, call.describe()
    assert ctm.call(tracking_number="+13125550160")["outcome"] == "answered"

    after = scrape(ctm)
    assert after[ari_answered] == 1 and after[agi_answered] == 1
    assert after[("ctm_calls_in_progress", (("mode", "ari"),))] == 0
    assert after[("ctm_calls_in_progress", (("mode", "agi"),))] == 0
    rest = ("ctm_ari_rest_seconds_count", (("transport", "websocket"),))
    assert after[rest] >= before.get(rest, 0) + 1, "the ARI call's continue"
    assert after[("ctm_fastagi_answer_seconds_count", ())] == 1
    assert after[("ctm_store_commit_seconds_count", ())] > 0

    lines = {
        r.fields["mode"]: r.fields for r in caplog.records if r.getMessage() == "call finished"
    }
    assert lines["ari"]["did"] == "+13125550142" and lines["agi"]["did"] == "+13125550160"
    for fields in lines.values():
        assert fields["source"] == "billboard" and fields["route"] == "single"
        assert fields["outcome"] == "answered" and fields["confidence"] == 1.0
        assert isinstance(fields["id"], int) and fields["talk_s"] > 0 and fields["ring_s"] > 0


def test_a_route_changed_while_a_call_is_up(
    ctm: ThreadDaemon, phone_factory, carrier, tmp_path: Path
) -> None:
    """Route ``seq`` rings desk-1 (no answer), then desk-2. While desk-1 rings, the
    reload makes it ring desk-3 alone: the call goes on to desk-2 (the config it
    started with), the next call rings desk-3."""
    phone1 = phone_factory("phone1", "noanswer")
    phone_factory("phone2", "answer", ring_ms=200)
    phone_factory("phone3", "answer", ring_ms=200)
    first: dict = {}
    caller = threading.Thread(
        target=lambda: first.setdefault(
            "call", carrier.place_call(DIDS["seq"], "call", hold_ms=500, timeout_s=15)
        )
    )
    caller.start()
    try:
        assert phone1.wait_for("INVITE", timeout_s=5), phone1.describe()
        path = Path(ctm.config.path or "")
        old = "seq: {type: sequential, targets: [desk-1, desk-2, desk-3]"
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, "seq: {type: sequential, targets: [desk-3]"))
        reload = asyncio.run_coroutine_threadsafe(ctm.daemon.reloader.reload(), ctm.loop)
        assert reload.result(10) is True
        assert ctm.daemon.config.routes["seq"].targets[0].receiving_number == "desk-3"
        second = Carrier(tmp_path / "second", port=5072).place_call(
            DIDS["seq"], "call", hold_ms=300
        )
        assert second.success, second.describe()
    finally:
        caller.join(20)
    assert first["call"].success, first["call"].describe()
    rows = sorted(_rows(ctm, "+13125550144"), key=lambda r: r["started_at"])
    assert [legs(r) for r in rows] == [
        ["desk-1=no_answer", "desk-2=answered"],
        ["desk-3=answered"],
    ]
    assert all(r["route"] == "seq" and r["outcome"] == "answered" for r in rows)


def _rows(ctm: ThreadDaemon, number: str) -> list[dict]:
    ctm.call(tracking_number=number)  # waits for the completed rows
    db = open_db(ctm.config.database.path)
    try:
        for _ in range(100):
            rows = [
                r
                for r in call_store.list_calls(db, number=number, limit=10)
                if r["status"] == "completed"
            ]
            if len(rows) >= 2:
                return [call_store.get_call(db, r["id"]) for r in rows]
            time.sleep(0.1)
        raise AssertionError(f"two completed calls to {number} expected, got {len(rows)}")
    finally:
        db.conn.close()
