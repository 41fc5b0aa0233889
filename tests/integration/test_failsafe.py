"""Without the ctm-pbx app, a call to a tracking number still reaches a person.

dialplan/ctm-pbx.conf: [ctm-inbound] -> Stasis(ctm-pbx) returns at once when no app is
connected (STASISSTATUS=FAILED) -> [ctm-failsafe] Dial(PJSIP/failsafe), the sipp phone on
127.0.0.1:5099.
"""

from __future__ import annotations

import pytest

from .sip import TRACKING_DID, Asterisk, Carrier

pytestmark = pytest.mark.integration

CALLER = "+13125550100"


def assert_no_app(asterisk: Asterisk) -> None:
    apps = asterisk.applications()
    assert asterisk.app not in apps, (
        f"the Stasis app {asterisk.app!r} is connected to the sandbox Asterisk "
        f"(apps: {apps}); these tests need it disconnected"
    )


def test_call_without_app_reaches_the_failsafe_phone(asterisk, phone_factory, carrier: Carrier):
    assert_no_app(asterisk)
    failsafe = phone_factory("failsafe", "answer", ring_ms=200)

    call = carrier.place_call(TRACKING_DID, "call", from_number=CALLER, hold_ms=300)

    assert call.success, call.describe()
    assert call.ended_by == "caller", call.describe()
    assert failsafe.wait_for("COMPLETED", timeout_s=3), failsafe.describe()
    stats = failsafe.stop()
    assert (stats.invites, stats.answered, stats.completed) == (1, 1, 1), failsafe.describe()
    # the caller's number reaches the fail-safe phone unchanged
    assert stats.callers == (CALLER,), failsafe.describe()
    assert asterisk.wait_no_channels(timeout_s=3) == []


def test_busy_failsafe_rejects_the_caller_quickly(asterisk, phone_factory, carrier: Carrier):
    assert_no_app(asterisk)
    failsafe = phone_factory("failsafe", "busy")

    call = carrier.place_call(TRACKING_DID, "reject", from_number=CALLER, timeout_s=10)

    assert call.success, call.describe()
    # Dial() ends BUSY, Hangup() with cause 17 (user busy): Asterisk answers 486
    assert call.final_code == 486, call.describe()
    assert call.elapsed_s < 3, call.describe()
    stats = failsafe.stop()
    assert (stats.invites, stats.busy, stats.answered) == (1, 1, 0), failsafe.describe()
    assert asterisk.wait_no_channels(timeout_s=3) == []


def test_caller_hanging_up_while_failsafe_rings(asterisk, phone_factory, carrier: Carrier):
    assert_no_app(asterisk)
    failsafe = phone_factory("failsafe", "noanswer")

    call = carrier.place_call(TRACKING_DID, "cancel", from_number=CALLER, cancel_ms=300)

    assert call.success, call.describe()
    assert call.final_code == 487, call.describe()
    assert failsafe.wait_for("CANCELLED", timeout_s=3), failsafe.describe()
    assert failsafe.stop().cancelled == 1, failsafe.describe()
    assert asterisk.wait_no_channels(timeout_s=3) == []
