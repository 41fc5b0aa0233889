"""Business hours and geo routing against the real Asterisk (ARI and AGI mode).

The daemon's clock is pinned (Monday 10:00 or Sunday 10:00 in Chicago); the
caller's number decides the region.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from .ctm import DIDS, ThreadDaemon, write_config
from .sip import Asterisk, Carrier

pytestmark = pytest.mark.integration

MONDAY_10 = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # 10:00 America/Chicago
SUNDAY_10 = datetime(2026, 11, 29, 16, 0, tzinfo=UTC)


def run(asterisk: Asterisk, tmp_path: Path, now: datetime) -> ThreadDaemon:
    return ThreadDaemon(write_config(tmp_path), asterisk, clock=lambda: now).start()


@pytest.mark.parametrize(
    ("now", "phone", "answered_by"),
    [(MONDAY_10, "phone1", "desk-1"), (SUNDAY_10, "phone3", "desk-3")],
)
def test_business_hours(
    asterisk, tmp_path, phone_factory, carrier: Carrier, now, phone, answered_by
) -> None:
    daemon = run(asterisk, tmp_path, now)
    try:
        phone_factory(phone, "answer", ring_ms=100)
        call = carrier.place_call(DIDS["office"], "call", hold_ms=300)
        assert call.success, call.describe()
        row = daemon.call(tracking_number="+13125550147")
    finally:
        daemon.stop()
    assert row["answered_by"] == answered_by and row["route"] == "office"
    closed = [p for p in row["path"] if "schedule" in p]
    if now is SUNDAY_10:
        assert closed == [
            {
                "schedule": "weekdays",
                "open": False,
                "from_route": "office",
                "at": "2026-11-29T16:00:00.000Z",
                "to_route": "backup",
            }
        ]
    else:
        assert closed == []


@pytest.mark.parametrize(
    ("caller", "phone", "answered_by", "region"),
    [
        ("+13125550100", "phone1", "desk-1", "IL"),
        ("+12125550100", "phone2", "desk-2", "NY"),
        ("+442071234567", "phone3", "desk-3", None),
    ],
)
def test_geo_route_by_area_code(
    asterisk, tmp_path, phone_factory, carrier: Carrier, caller, phone, answered_by, region
) -> None:
    daemon = run(asterisk, tmp_path, MONDAY_10)
    try:
        if phone == "phone2":  # the simul route rings phone1 too: it must answer the INVITE
            phone_factory("phone1", "noanswer")
        phone_factory(phone, "answer", ring_ms=100)
        call = carrier.place_call(DIDS["by-region"], "call", from_number=caller, hold_ms=300)
        assert call.success, call.describe()
        row = daemon.call(tracking_number="+13125550148")
    finally:
        daemon.stop()
    assert row["answered_by"] == answered_by
    assert row["caller_region"] == region and row["caller_location_source"] == "number"
    geo = next(p for p in row["path"] if "geo" in p)
    assert geo["from_route"] == "by-region" and geo["geo"].get("region") == region
