"""Google Ads click conversions from the call log: qualified calls whose visit came
from a Google ad click (``calls.click_ids_json``, copied from the visit attributed)."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo

import sqlite_utils

from ctm_pbx.core.clock import iso
from ctm_pbx.core.integrations import AdsConversion, ads_conversion, ads_header
from ctm_pbx.core.model import GoogleAdsSettings
from ctm_pbx.core.reports import QualifiedCall

_CONVERSIONS = (
    "SELECT id, started_at, outcome, talk_seconds, click_ids_json, source, route, tags"
    " FROM calls"
    " WHERE status = 'completed' AND started_at >= ? AND started_at < ?"
    " AND click_ids_json != '{}' ORDER BY started_at, id"
)


def conversions(
    db: sqlite_utils.Database,
    ads: GoogleAdsSettings,
    qualified: QualifiedCall,
    start: datetime,
    end: datetime,
) -> list[AdsConversion]:
    """The conversions of calls started in [start, end), oldest first: one per call."""
    out = []
    for call_id, started, outcome, talk, click_ids, source, route, tags in db.execute(
        _CONVERSIONS, [iso(start), iso(end)]
    ).fetchall():
        if not qualified(outcome, talk):
            continue
        conv = ads_conversion(
            {"id": call_id, "started_at": started, "source": source, "route": route, "tags": tags},
            json.loads(click_ids or "{}"),
            name=ads.conversion_name,
            value=ads.value,
            currency=ads.currency,
            values=ads.values,
        )
        if conv is not None:
            out.append(conv)
    return out


def write_csv(stream: TextIO, found: list[AdsConversion], tz_name: str) -> None:
    """The upload template: its time-zone line, its columns, a row per conversion."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerows(ads_header(tz_name))
    tz = ZoneInfo(tz_name)
    writer.writerows(c.row(tz) for c in found)
