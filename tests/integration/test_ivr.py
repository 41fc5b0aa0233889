"""Voice menus against the real Asterisk: DTMF by RFC 4733 (sip-tester's pcaps) and by
SIP INFO, timeouts, wrong keys, nested menus, and a ZIP code keyed in for geo routing.

Keys spread over several Read()s go by SIP INFO: replaying sip-tester's RFC 4733 pcaps
one after another (each with its own fixed RTP timestamps) does not reliably deliver
the second key to Asterisk, which is an artefact of the replay, not of the menus.

Menu ``menu``: 1 -> single (phone1), 2 -> submenu, 3 -> desk-3 (phone3), # -> backup;
after two plays without a valid key -> backup (phone3). ``submenu``: 1 -> simul.
"""

from __future__ import annotations

import pytest

from .ctm import DIDS
from .sip import Carrier

pytestmark = pytest.mark.integration


def ivr_path(row: dict) -> list[tuple]:
    return [(p["ivr"], p["key"], p.get("to") or p["result"]) for p in row["path"] if "ivr" in p]


@pytest.mark.parametrize("method", ["dtmf_2833", "dtmf_info"])
def test_menu_key_routes_the_call(ctm, phone_factory, carrier: Carrier, method) -> None:
    phone = phone_factory("phone1", "answer", ring_ms=100)
    call = carrier.place_call(DIDS["menu"], method, digits="1", gap_ms=300, hold_ms=2500)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550149")
    assert row["outcome"] == "answered" and row["answered_by"] == "desk-1"
    assert row["ivr_digits"] == "1"
    assert ivr_path(row) == [("menu", "1", "route:single")]
    assert phone.wait_for("ANSWERED")


def test_menu_key_to_a_receiving_number(ctm, phone_factory, carrier: Carrier) -> None:
    phone_factory("phone3", "answer", ring_ms=100)
    call = carrier.place_call(DIDS["menu"], "dtmf_info", digits="3", gap_ms=300, hold_ms=2500)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550149")
    assert row["answered_by"] == "desk-3" and row["ivr_digits"] == "3"


def test_pound_is_a_menu_key(ctm, phone_factory, carrier: Carrier) -> None:
    phone_factory("phone3", "answer", ring_ms=100)
    call = carrier.place_call(DIDS["menu"], "dtmf_2833", digits="#", gap_ms=300, hold_ms=2500)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550149")
    assert ivr_path(row) == [("menu", "#", "route:backup")] and row["answered_by"] == "desk-3"


def test_no_key_replays_then_takes_the_default(ctm, phone_factory, carrier: Carrier) -> None:
    phone_factory("phone3", "answer", ring_ms=100)
    call = carrier.place_call(DIDS["menu"], "call", hold_ms=9000)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550149", timeout_s=15)
    assert ivr_path(row) == [("menu", None, "timeout"), ("menu", None, "timeout")]
    assert row["answered_by"] == "desk-3" and row["ivr_digits"] is None


def test_wrong_key_then_a_right_one(ctm, phone_factory, carrier: Carrier) -> None:
    phone_factory("phone1", "answer", ring_ms=100)
    call = carrier.place_call(DIDS["menu"], "dtmf_info", digits="71", gap_ms=2500, hold_ms=2500)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550149")
    assert ivr_path(row) == [("menu", "7", "invalid"), ("menu", "1", "route:single")]
    assert row["answered_by"] == "desk-1" and row["ivr_digits"] == "1"


def test_nested_menu(ctm, phone_factory, carrier: Carrier) -> None:
    phone_factory("phone1", "noanswer")
    phone_factory("phone2", "answer", ring_ms=100)
    call = carrier.place_call(DIDS["menu"], "dtmf_info", digits="21", gap_ms=1500, hold_ms=2500)
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550149")
    assert ivr_path(row) == [("menu", "2", "route:submenu"), ("submenu", "1", "route:simul")]
    assert row["ivr_digits"] == "2,1" and row["answered_by"] == "desk-2"


def test_zip_code_keyed_in_decides_the_geo_route(ctm, phone_factory, carrier: Carrier) -> None:
    phone_factory("phone1", "answer", ring_ms=100)
    call = carrier.place_call(
        DIDS["zip-region"],
        "dtmf_info",
        digits="60606",
        gap_ms=250,
        from_number="+12125550100",
        hold_ms=2500,
    )
    assert call.success, call.describe()
    row = ctm.call(tracking_number="+13125550141")
    assert row["answered_by"] == "desk-1", "the ZIP (Chicago) wins over the area code (NY)"
    assert (row["caller_zip"], row["caller_region"], row["caller_county"]) == (
        "60606",
        "IL",
        "Cook County",
    )
    assert row["caller_location_source"] == "zip" and row["ivr_digits"] == "60606"
