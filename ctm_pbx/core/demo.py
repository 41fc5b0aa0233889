"""Sample calls for a first look at the reports and the dashboard (``ctm-pbx demo seed``).

Deterministic for a seed: business-hours arrivals, each configured source with its
own share, campaigns and keywords for ad sources, outcomes, talk times, repeat
callers, attribution confidence. Every row is marked ``mode = 'demo'`` so that
``demo clear`` (and a person) can tell them from real calls.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ctm_pbx.core.clock import iso
from ctm_pbx.core.model import Config, SourceKind

DEMO_MODE = "demo"
CAMPAIGNS = {
    "google": (("winter-heating", ("furnace repair", "emergency plumber", "boiler service")),
               ("brand", ("acme plumbing", "acme near me"))),
    "bing": (("winter-heating", ("furnace repair", "heating engineer")),),
    "facebook": (("retargeting", ("",)), ("spring-promo", ("",))),
}  # fmt: skip
AREA_CODES = (("312", "IL", "Chicago, IL"), ("773", "IL", "Chicago, IL"),
              ("847", "IL", "Evanston, IL"), ("630", "IL", "Naperville, IL"),
              ("414", "WI", "Milwaukee, WI"), ("219", "IN", "Gary, IN"))  # fmt: skip
PAGES = ("/", "/pricing", "/services/heating", "/contact", "/emergency")
HOUR_WEIGHTS = (0, 0, 0, 0, 0, 0, 1, 3, 8, 10, 10, 9, 7, 8, 9, 9, 8, 6, 4, 3, 2, 1, 1, 0)


def _family(name: str) -> str:
    for key in CAMPAIGNS:
        if key in name:
            return key
    return ""


def demo_calls(config: Config, *, now: datetime, days: int, calls: int, seed: int = 7):
    """Rows for the ``calls`` table (dicts), oldest first; times before ``now``, in the
    business hours of ``reports.time_zone``."""
    rng = random.Random(seed)
    tz = ZoneInfo(config.reports.time_zone or "UTC")
    sources = sorted(config.sources) or ["google-ads", "billboard"]
    weights = [3 if "google" in s else 2 if s in ("facebook", "bing-ads") else 1 for s in sources]
    receivers = sorted(config.receiving_numbers) or ["desk-1"]
    routes = sorted(config.routes) or ["main"]
    callers: list[tuple[str, str, str, str]] = []
    rows = []
    start = now - timedelta(days=days)
    for _ in range(calls):
        day = (start + timedelta(days=rng.random() * days)).astimezone(tz)
        hour = rng.choices(range(24), HOUR_WEIGHTS)[0]
        local = day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))
        at = local.astimezone(UTC)
        if at >= now:
            at = now - timedelta(minutes=rng.randrange(1, 600))
        source = rng.choices(sources, weights)[0]
        if callers and rng.random() < 0.18:
            number, area, region, place = rng.choice(callers)
        else:
            area, region, place = rng.choice(AREA_CODES)
            number = f"+1{area}555{rng.randrange(10000):04d}"
            callers.append((number, area, region, place))
        outcome = rng.choices(
            ("answered", "no_answer", "busy", "voicemail", "abandoned"), (70, 12, 4, 9, 5)
        )[0]
        ring = round(rng.uniform(2, 18), 1)
        talk = round(rng.lognormvariate(4.3, 0.9), 1) if outcome == "answered" else None
        known = config.sources.get(source)
        onsite = known is None or known.kind is SourceKind.ONSITE
        family = _family(source)
        campaign = term = None
        if family and onsite:
            campaign, terms = rng.choice(CAMPAIGNS[family])
            term = rng.choice(terms) or None
        row = {
            "mode": DEMO_MODE,
            "status": "completed",
            "started_at": iso(at),
            "ended_at": iso(at + timedelta(seconds=ring + (talk or 0))),
            "tracking_number": f"+1312555{rng.randrange(150, 170):04d}",
            "caller_number": number,
            "caller_place": place,
            "caller_region": region,
            "caller_area_code": area,
            "source": source,
            "route": rng.choice(routes),
            "outcome": outcome,
            "ring_seconds": ring,
            "talk_seconds": talk,
            "answered_by": rng.choice(receivers) if outcome == "answered" else None,
            "utm_campaign": campaign,
            "utm_term": term,
            "utm_source": family or None,
            "utm_medium": "cpc" if family in ("google", "bing") and campaign else None,
            "landing_url": f"https://www.example.com{rng.choice(PAGES)}" if onsite else None,
            "attribution_confidence": (
                round(min(1.0, rng.betavariate(9, 1.2)), 3) if onsite else 1.0
            ),
            "notes": "sample call (ctm-pbx demo seed)",
        }
        rows.append(row)
    rows.sort(key=lambda r: str(r["started_at"]))
    return rows
