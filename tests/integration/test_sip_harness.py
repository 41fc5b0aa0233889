"""The SIP harness itself, against the real Asterisk, without ARI.

The baseline DID 1666XXXXXXX (tests/asterisk/extensions_local.conf) dials PJSIP/phone1
directly: what the carrier sees is what phone1 does, through Asterisk.
"""

from __future__ import annotations

import pytest

from .sip import BASELINE_DID, Carrier, Phone, SippError

pytestmark = pytest.mark.integration

CALLER = "+13125550100"


def test_answered_call(asterisk, phone_factory, carrier: Carrier):
    phone1 = phone_factory("phone1", "answer", ring_ms=300)

    call = carrier.place_call(BASELINE_DID, "call", from_number=CALLER, hold_ms=300)

    assert call.success, call.describe()
    assert call.final_code == 200 and 180 in call.codes, call.describe()
    assert call.ended_by == "caller"
    # rings ~300 ms, talks ~300 ms
    assert 0.55 < call.elapsed_s < 2.0, call.describe()
    assert phone1.wait_for("COMPLETED", timeout_s=3), phone1.describe()
    stats = phone1.stop()
    assert (stats.invites, stats.answered, stats.completed) == (1, 1, 1), phone1.describe()
    assert stats.callers == (CALLER,), phone1.describe()
    assert phone1.events()[0].fields["to"] == "phone1"


def test_busy_phone(asterisk, phone_factory, carrier: Carrier):
    phone1 = phone_factory("phone1", "busy")

    call = carrier.place_call(BASELINE_DID, "reject", from_number=CALLER)

    assert call.success, call.describe()
    # the phone's 486 becomes DIALSTATUS=BUSY, cause 17, which Asterisk answers with 486
    assert call.final_code == 486, call.describe()
    assert [e.fields.get("arg") for e in call.events if e.kind == "FINAL"] == ["486"]
    assert call.elapsed_s < 2.0, call.describe()
    stats = phone1.stop()
    assert (stats.invites, stats.busy, stats.answered) == (1, 1, 0), phone1.describe()


def test_caller_cancels_a_ringing_phone(asterisk, phone_factory, carrier: Carrier):
    phone1 = phone_factory("phone1", "noanswer")

    call = carrier.place_call(BASELINE_DID, "cancel", from_number=CALLER, cancel_ms=300)

    assert call.success, call.describe()
    assert call.final_code == 487, call.describe()
    assert [e.kind for e in call.events] == ["RINGING", "CANCELLED"], call.describe()
    assert phone1.wait_for("CANCELLED", timeout_s=3), phone1.describe()
    stats = phone1.stop()
    assert (stats.invites, stats.cancelled, stats.answered) == (1, 1, 0), phone1.describe()


def test_answering_phone_takes_a_cancel_while_ringing(asterisk, phone_factory, carrier: Carrier):
    phone1 = phone_factory("phone1", "answer", ring_ms=5000)

    call = carrier.place_call(BASELINE_DID, "cancel", cancel_ms=200)

    assert call.success and call.final_code == 487, call.describe()
    assert call.elapsed_s < 2.0, call.describe()
    assert phone1.wait_for("CANCELLED", timeout_s=3), phone1.describe()
    stats = phone1.stop()
    assert (stats.cancelled, stats.answered) == (1, 0), phone1.describe()


def test_phone_hangs_up_first(asterisk, phone_factory, carrier: Carrier):
    phone1 = phone_factory("phone1", "answer", hangup_ms=300)

    call = carrier.place_call(BASELINE_DID, "call", hold_ms=10_000)

    assert call.success, call.describe()
    assert call.ended_by == "remote", call.describe()
    assert call.elapsed_s < 2.0, call.describe()
    stats = phone1.stop()
    assert (stats.answered, stats.hungup, stats.completed) == (1, 1, 0), phone1.describe()


def test_reject_scenario_fails_when_answered(asterisk, phone_factory, carrier: Carrier):
    phone1 = phone_factory("phone1", "answer")

    call = carrier.place_call(BASELINE_DID, "reject")

    assert not call.success
    assert call.exit_code == 1 and call.final_code == 200, call.describe()
    # the answered call was still hung up (the autouse fixture checks no channel is left)
    assert phone1.wait_for("COMPLETED", timeout_s=3), phone1.describe()


def test_several_calls(asterisk, phone_factory, carrier: Carrier):
    phone1 = phone_factory("phone1", "answer", ring_ms=100)

    batch = carrier.place_calls(BASELINE_DID, count=6, rate=6, hold_ms=300)

    assert batch.exit_code == 0, batch.describe()
    assert (batch.placed, batch.answered, batch.succeeded, batch.failed) == (6, 6, 6, 0), (
        batch.describe()
    )
    assert phone1.wait_for("COMPLETED", count=6, timeout_s=3), phone1.describe()
    assert phone1.stop().answered == 6


@pytest.mark.parametrize("scenario", ["dtmf_info", "dtmf_2833"])
def test_dtmf_scenarios_run(asterisk, phone_factory, carrier: Carrier, scenario):
    phone1 = phone_factory("phone1", "answer")

    call = carrier.place_call(BASELINE_DID, scenario, digits="1#", gap_ms=200, hold_ms=100)

    assert call.success, call.describe()
    if scenario == "dtmf_info":
        sent = [e.fields["arg"] for e in call.events if e.kind == "DTMF"]
        assert sent == ["1", "#"], call.describe()
    assert phone1.wait_for("COMPLETED", timeout_s=3), phone1.describe()


def test_phone_port_in_use_is_reported(asterisk, phone_factory, tmp_path):
    phone_factory("phone2", "busy")
    with pytest.raises(SippError, match="already in use"):
        Phone("phone2", "busy", workdir=tmp_path / "second").start()
