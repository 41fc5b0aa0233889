"""Call queues (queue routes on Asterisk's app_queue) against the real Asterisk.

Agents desk-1..3 are sipp phones 1..3. Each strategy's agent order shows over a few
calls in a row; overflow on max wait and on max length; priority by source; an IVR
menu leading (nested) to a queue.
"""

from __future__ import annotations

import threading
import time

import pytest

from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import open_db

from .ctm import DIDS
from .sip import Carrier

pytestmark = pytest.mark.integration


def agents_in_turn(ctm, phone_factory, carrier, route: str, calls: int, rings=(100, 100, 100)):
    for i, ring_ms in enumerate(rings, 1):
        phone_factory(f"phone{i}", "answer", ring_ms=ring_ms)
    number = "+" + DIDS[route]
    answered = []
    for n in range(calls):
        call = carrier.place_call(DIDS[route], "call", hold_ms=200)
        assert call.success, call.describe()
        row = _nth(ctm, number, n + 1)
        assert row["queue_status"] == "CONNECTED" and row["queue_name"] == route, row
        answered.append(row["answered_by"])
    return answered


def _nth(ctm, number: str, n: int) -> dict:
    """The n-th call to ``number`` (1: the first), waiting until it is completed
    (a later call may complete before it)."""
    deadline = time.monotonic() + 10
    while True:
        db = open_db(ctm.config.database.path)
        try:
            calls = call_store.list_calls(db, number=number, limit=100)
            rows = sorted(calls, key=lambda r: r["id"])
            if len(rows) >= n and rows[n - 1]["status"] == "completed":
                return call_store.get_call(db, rows[n - 1]["id"])
        finally:
            db.conn.close()
        assert time.monotonic() < deadline, f"call {n} to {number} not completed: {rows}"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("route", "rings", "expected"),
    [
        ("q-ringall", (600, 100, 900), ["desk-2"] * 3),  # all ring: the quickest answers
        ("q-linear", (100, 100, 100), ["desk-1"] * 3),  # always the first free agent
    ],
)
def test_strategy_agent_order(
    ctm, asterisk, phone_factory, carrier, route, rings, expected
) -> None:
    asterisk.cli(f"queue reset stats ctm-{route}")  # who took calls before this test
    assert agents_in_turn(ctm, phone_factory, carrier, route, len(expected), rings) == expected


def test_leastrecent_and_fewestcalls_share_the_calls(ctm, asterisk, phone_factory, carrier):
    """leastrecent: the agent idle longest rings (the fourth call goes back to the first
    agent); fewestcalls: nobody takes a second call before everyone has had one."""
    for route in ("q-leastrecent", "q-fewestcalls"):
        asterisk.cli(f"queue reset stats ctm-{route}")
    phone_factory("phone1", "answer", ring_ms=100)
    phone_factory("phone2", "answer", ring_ms=100)
    phone_factory("phone3", "answer", ring_ms=100)
    for route in ("q-leastrecent", "q-fewestcalls"):
        answered = []
        for n in range(4):
            call = carrier.place_call(DIDS[route], "call", hold_ms=200)
            assert call.success, call.describe()
            answered.append(_nth(ctm, "+" + DIDS[route], n + 1)["answered_by"])
        assert len(set(answered[:3])) == 3, (route, answered)
        if route == "q-leastrecent":
            assert answered[3] == answered[0], answered


def test_round_robin_with_memory_rotates(ctm, phone_factory, carrier) -> None:
    """rrmemory goes on after the agent it rang last (across calls; where it starts
    depends on calls before this test)."""
    answered = agents_in_turn(ctm, phone_factory, carrier, "q-rrmemory", 4)
    order = ["desk-1", "desk-2", "desk-3"]
    start = order.index(answered[0])
    assert answered == [order[(start + i) % 3] for i in range(4)]


@pytest.mark.parametrize("route", ["q-random", "q-wrandom"])
def test_random_strategies_spread_calls(ctm, phone_factory, carrier, route) -> None:
    answered = agents_in_turn(ctm, phone_factory, carrier, route, 8)
    assert set(answered) <= {"desk-1", "desk-2", "desk-3"}
    assert len(set(answered)) >= 2, answered  # all eight on one agent: p = 3 / 3**8


def test_wrapup_rests_the_agent(ctm, phone_factory, carrier) -> None:
    """linear always tries desk-1 first, but not while it wraps up (3 s) after a call."""
    for name in ("phone1", "phone2"):
        phone_factory(name, "answer", ring_ms=100)
    answered = []
    for n in range(3):
        if n == 2:
            time.sleep(3.5)  # desk-1's wrap-up is over
        call = carrier.place_call(DIDS["q-wrapup"], "call", hold_ms=200)
        assert call.success, call.describe()
        answered.append(_nth(ctm, "+13125550212", n + 1)["answered_by"])
    assert answered == ["desk-1", "desk-2", "desk-1"]
    # wrap-up counts across queues (shared_lastcall): leave desk-1 rested for the next test
    time.sleep(3.5)


def test_queue_row_has_wait_position_and_agent(ctm, phone_factory, carrier) -> None:
    phone_factory("phone1", "answer", ring_ms=800)
    call = carrier.place_call(DIDS["q-linear"], "call", hold_ms=500)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550201")
    assert row["outcome"] == "answered" and row["answered_by"] == "desk-1"
    assert row["queue_agent"] == "desk-1" and row["queue_position"] == 1
    assert 0 <= row["queue_wait_seconds"] <= 3 and row["talk_seconds"] > 0.3
    queue_step = next(p for p in row["path"] if "queue" in p)
    assert queue_step["queue"] == "CONNECTED" and queue_step["agent"] == "desk-1"
    assert [(leg["receiving_number"], leg["result"]) for leg in row["legs"]] == [
        ("desk-1", "answered"),
        ("desk-2", "cancelled"),
        ("desk-3", "cancelled"),
    ]


def test_overflow_on_max_wait(ctm, phone_factory, carrier) -> None:
    phone_factory("phone1", "noanswer")
    phone_factory("phone3", "answer", ring_ms=100)
    call = carrier.place_call(DIDS["q-overflow"], "call", hold_ms=300)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550207")
    assert row["answered_by"] == "desk-3" and row["queue_status"] == "TIMEOUT"
    # app_queue's expiry is whole seconds of time(): max_wait 2 s ends the wait 1 to 2 s in
    assert 1.0 <= row["queue_wait_seconds"] <= 4
    fallback = next(p for p in row["path"] if "fallback" in p)
    assert (fallback["from_route"], fallback["to_route"]) == ("q-overflow", "backup")


def test_overflow_on_max_length(ctm, phone_factory, carrier, tmp_path) -> None:
    """One caller waits (the agent is slow to answer); a second finds the queue full."""
    phone_factory("phone1", "answer", ring_ms=2500)
    phone_factory("phone3", "answer", ring_ms=100)
    waiting = Carrier(tmp_path / "first", port=5072)
    first: dict = {}
    t = threading.Thread(
        target=lambda: first.setdefault(
            "call", waiting.place_call(DIDS["q-full"], "call", hold_ms=300)
        )
    )
    t.start()
    try:
        time.sleep(0.8)  # the first caller is in the queue (max_length 1)
        second = carrier.place_call(DIDS["q-full"], "call", hold_ms=300)
    finally:
        t.join(15)
    assert second.success and first["call"].success, second.describe()
    rows = [_nth(ctm, "+13125550208", i) for i in (1, 2)]
    by_status = {r["queue_status"]: r for r in rows}
    assert by_status["FULL"]["answered_by"] == "desk-3"
    assert by_status["CONNECTED"]["answered_by"] == "desk-1"


def test_priority_by_source(ctm, phone_factory, carrier, tmp_path) -> None:
    """The one agent is busy; a radio caller starts waiting, then a Google Ads caller
    (priority 10 for google-ads). When the agent is free, Google Ads is served first."""
    phone = phone_factory("phone1", "answer", ring_ms=100)
    calls: dict = {}

    def place(name: str, c: Carrier, did: str, hold_ms: int) -> threading.Thread:
        t = threading.Thread(
            target=lambda: calls.setdefault(name, c.place_call(did, "call", hold_ms=hold_ms))
        )
        t.start()
        return t

    busy = place("busy", carrier, DIDS["q-priority"], 3000)  # keeps the agent on a call
    assert phone.wait_for("ANSWERED", timeout_s=5)
    radio = place("radio", Carrier(tmp_path / "radio", port=5072), DIDS["q-priority"], 300)
    time.sleep(0.7)
    ads = place("ads", Carrier(tmp_path / "ads", port=5073), DIDS["q-priority-ads"], 300)
    for t in (busy, radio, ads):
        t.join(40)
    assert all(c.success for c in calls.values()), {k: c.describe() for k, c in calls.items()}
    radio_rows = [_nth(ctm, "+13125550209", i) for i in (1, 2)]
    radio_row = max(radio_rows, key=lambda r: r["started_at"])
    ads_row = ctm.call(tracking_number="+13125550210")
    assert radio_row["started_at"] < ads_row["started_at"], "the radio caller came first"
    assert ads_row["answered_at"] < radio_row["answered_at"], "Google Ads was served first"
    assert ads_row["queue_position"] == 1 and radio_row["queue_position"] == 1
    assert radio_row["queue_wait_seconds"] > ads_row["queue_wait_seconds"]


def test_nested_menu_to_a_queue(ctm, phone_factory, carrier) -> None:
    phone_factory("phone1", "answer", ring_ms=100)
    call = carrier.place_call(
        DIDS["menu-queue"], "dtmf_info", digits="21", gap_ms=1500, hold_ms=2500
    )
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550211")
    assert row["ivr_digits"] == "2,1" and row["queue_name"] == "q-linear"
    assert row["answered_by"] == "desk-1"
