"""The pure rules of what leaves the building: signatures, backoff, Ads rows."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from ctm_pbx.core.integrations import (
    ads_conversion,
    backoff_seconds,
    conversion_value,
    signature,
)
from ctm_pbx.core.model import ConversionValues


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"id":"evt_1"}'
    want = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("s3cret", 1700000000, body) == f"t=1700000000,v1={want}"
    assert signature("s3cret", 1700000001, body) != signature("s3cret", 1700000000, body)


def test_backoff_doubles_up_to_the_cap_with_jitter_between_half_and_all() -> None:
    assert [backoff_seconds(n, 5, 60, 1.0) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert backoff_seconds(3, 5, 60, 0.0) == 10.0
    assert backoff_seconds(30, 5, 60, 0.5) == 45.0


def test_an_ads_row_takes_one_click_id_and_the_accounts_time_zone() -> None:
    call = {"id": 1, "started_at": "2026-07-01T15:30:00.000Z"}
    conv = ads_conversion(call, {"wbraid": "w", "gbraid": "g"}, name="Call", value=None,
                          currency="USD")  # fmt: skip
    assert conv is not None
    row = conv.row(ZoneInfo("America/New_York"))
    assert row == ["", "g", "", "Call", "2026-07-01 11:30:00", "", ""], "no value, no currency"
    assert ads_conversion(call, {"msclkid": "m"}, name="Call", value=1, currency="USD") is None
    assert conv.at == datetime(2026, 7, 1, 15, 30, tzinfo=UTC)


def test_a_calls_value_is_its_tags_else_its_routes_else_its_sources() -> None:
    values = ConversionValues(
        by_tag=(("sale", 500.0), ("lead", 100.0)),
        by_route=(("sales", 70.0),),
        by_source=(("google-ads", 60.0),),
    )
    call = {"source": "google-ads", "route": "sales", "tags": ",spam,lead,"}
    assert conversion_value(10.0, values, call) == 100.0
    assert conversion_value(10.0, values, {**call, "tags": ["sale"]}) == 500.0
    assert conversion_value(10.0, values, {**call, "tags": ""}) == 70.0
    assert conversion_value(10.0, values, {**call, "tags": "", "route": "x"}) == 60.0
    assert conversion_value(None, values, {"source": "radio"}) is None
