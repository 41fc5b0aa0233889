"""What leaves the building: webhook bodies and their signature, the delivery worker's
backoff, GA4 Measurement Protocol payloads and Google Ads click-conversion rows.

Pure: the caller passes the call (as ``calls show --json`` gives it), the time and
any randomness in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ctm_pbx.core.model import Config, ConversionValues

WEBHOOK_VERSION = 1  # the body's "version": bumped when a field changes meaning or goes
SIGNATURE_HEADER = "X-CTM-Signature"
# GA4 takes events up to 72 hours old (timestamp_micros); older ones are not sent
GA4_MAX_AGE = timedelta(hours=72)
ADS_COLUMNS = (
    "Google Click ID",
    "GBRAID",
    "WBRAID",
    "Conversion Name",
    "Conversion Time",
    "Conversion Value",
    "Conversion Currency",
)
ADS_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # in the file's Parameters:TimeZone
NO_VALUES = ConversionValues()  # every call the section's one value


def webhook_body(event_id: str, event_type: str, occurred_at: str, call: dict) -> bytes:
    """The JSON body of a webhook: the event, and the call as ``calls show --json``."""
    body = {
        "version": WEBHOOK_VERSION,
        "id": event_id,
        "type": event_type,
        "occurred_at": occurred_at,
        "call": call,
    }
    return json.dumps(body, default=str, separators=(",", ":")).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def backoff_seconds(attempts: int, first: float, cap: float, rand: float) -> float:
    """The pause after the ``attempts``-th failure: doubling from ``first`` up to ``cap``,
    then jittered into [half, all] of it (``rand`` in [0, 1)), so that many events that
    failed together do not retry together."""
    delay = min(cap, first * 2 ** max(0, attempts - 1))
    return delay * (0.5 + rand / 2)


def conversion_value(default: float | None, values: ConversionValues, call: dict) -> float | None:
    """The value of a call's conversion: the first of its tags with a value, else its
    route's, else its source's, else ``default``."""
    tags = call.get("tags") or ""
    if isinstance(tags, str):
        tags = [t for t in tags.split(",") if t]
    by_tag = dict(values.by_tag)
    for tag in tags:
        if tag in by_tag:
            return by_tag[tag]
    for key, table in (("route", values.by_route), ("source", values.by_source)):
        found = dict(table).get(call.get(key) or "")
        if found is not None:
            return found
    return default


# -- GA4 ---------------------------------------------------------------------------------

_GA_COOKIE = re.compile(r"^GA\d\.\d+\.(\d+\.\d+)$")  # _ga: GA1.1.<random>.<first visit>
_CLIENT_ID = re.compile(r"^\d+\.\d+$")
_GS1 = re.compile(r"^GS1\.\d+\.(\d+)\.")  # _ga_<stream>: GS1.1.<session id>.<count>...
_GS2 = re.compile(r"^GS2\.\d+\.s(\d+)")  # GS2.1.s<session id>$o<count>...


def ga_client_id(raw: str | None) -> str | None:
    """GA's client id (``<random>.<timestamp>``) from the ``_ga`` cookie or the id itself."""
    if not raw:
        return None
    raw = raw.strip()
    if _CLIENT_ID.match(raw):
        return raw
    m = _GA_COOKIE.match(raw)
    return m.group(1) if m else None


def ga_session_id(raw: str | None) -> str | None:
    """GA's session id (digits) from the ``_ga_<stream>`` cookie or the id itself."""
    if not raw:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return raw
    m = _GS1.match(raw) or _GS2.match(raw)
    return m.group(1) if m else None


@dataclass(frozen=True)
class Ga4Event:
    """What a GA4 event is made of; ``payload`` gives the Measurement Protocol body."""

    client_id: str
    session_id: str | None
    name: str
    at: datetime
    params: dict

    def payload(self) -> dict:
        params = dict(self.params)
        if self.session_id:
            params["session_id"] = self.session_id
        params.setdefault("engagement_time_msec", 1)  # counts the session as engaged
        return {
            "client_id": self.client_id,
            "timestamp_micros": int(self.at.timestamp() * 1_000_000),
            "events": [{"name": self.name, "params": params}],
        }


def ga4_event(
    call: dict,
    visit: dict | None,
    *,
    name: str,
    value: float | None,
    currency: str,
    now: datetime,
    values: ConversionValues = NO_VALUES,
) -> tuple[Ga4Event | None, str]:
    """The GA4 event of a call, or None and why not.

    No GA client id on the call's visit (no visit, no consent, no GA on the page):
    nothing is sent. A made-up client id would be a new GA user with no session,
    source or campaign: it would add users and credit the call to nothing.
    """
    raw = (visit or {}).get("ga_client_id")
    client_id = ga_client_id(raw)
    if client_id is None:
        why = "no visit" if visit is None else "the visit has no GA client id"
        return None, why
    at = datetime.fromisoformat(call.get("ended_at") or call["started_at"])
    if now - at > GA4_MAX_AGE:
        return None, "older than GA4's 72 hours"
    params: dict = {
        "call_id": str(call["id"]),
        "source": call.get("source") or "",
        "campaign": call.get("utm_campaign") or "",
        "medium": call.get("utm_medium") or "",
        "term": call.get("utm_term") or "",
        "tracking_number": call.get("tracking_number") or "",
        "outcome": call.get("outcome") or "",
        "talk_seconds": round(float(call.get("talk_seconds") or 0.0), 1),
    }
    params = {k: v for k, v in params.items() if v != ""}
    value = conversion_value(value, values, call)
    if value is not None:
        params["value"] = float(value)
        params["currency"] = currency
    return Ga4Event(
        client_id, ga_session_id((visit or {}).get("ga_session_id")), name, at, params
    ), ""


# -- Google Ads --------------------------------------------------------------------------


@dataclass(frozen=True)
class AdsConversion:
    """One row of the click-conversion upload: exactly one click id of the three."""

    gclid: str
    gbraid: str
    wbraid: str
    name: str
    at: datetime
    value: float | None
    currency: str

    def row(self, tz: ZoneInfo) -> list[str]:
        value = "" if self.value is None else f"{self.value:.2f}"
        at = self.at.astimezone(tz).strftime(ADS_TIME_FORMAT)
        currency = self.currency if self.value is not None else ""
        return [self.gclid, self.gbraid, self.wbraid, self.name, at, value, currency]


def ads_conversion(
    call: dict,
    click_ids: dict,
    *,
    name: str,
    value: float | None,
    currency: str,
    values: ConversionValues = NO_VALUES,
) -> AdsConversion | None:
    """The conversion of a qualified call, when its visit came from a Google click:
    the gclid if there is one, else the gbraid, else the wbraid (Google Ads takes one
    per row). The conversion time is the call's start (when the lead called)."""
    ids = {k.lower(): str(v) for k, v in (click_ids or {}).items() if v}
    gclid, gbraid, wbraid = ids.get("gclid", ""), ids.get("gbraid", ""), ids.get("wbraid", "")
    if gclid:
        gbraid = wbraid = ""
    elif gbraid:
        wbraid = ""
    elif not wbraid:
        return None
    at = datetime.fromisoformat(call["started_at"])
    value = conversion_value(value, values, call)
    return AdsConversion(gclid, gbraid, wbraid, name, at, value, currency)


def ads_time_zone(config: Config) -> str:
    """The zone of the file's times: google_ads.time_zone, else the reports', else UTC."""
    ads = config.google_ads
    return (ads.time_zone if ads else None) or config.reports.time_zone or "UTC"


def ads_header(tz_name: str) -> list[list[str]]:
    """The template's first lines: the time zone of the times, then the columns."""
    return [[f"Parameters:TimeZone={tz_name}"], list(ADS_COLUMNS)]
