"""Where a caller is: from the caller's number (area code) or a ZIP they entered.

Pure. Numbers go through ``phonenumbers`` (the area code's place, e.g.
"Chicago, IL"); ZIP codes through a ``zip_lookup`` function the adapter passes
in (an offline dataset). Locations decide geo routes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

# State and province names as phonenumbers' geocoder writes them when it gives no
# "City, ST" form (e.g. "Washington State", "Ontario").
REGION_NAMES = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "district of columbia": "DC",
    "washington d.c.": "DC", "florida": "FL", "georgia": "GA", "hawaii": "HI", "idaho": "ID",
    "illinois": "IL", "indiana": "IN", "iowa": "IA", "kansas": "KS", "kentucky": "KY",
    "louisiana": "LA", "maine": "ME", "maryland": "MD", "massachusetts": "MA",
    "michigan": "MI", "minnesota": "MN", "mississippi": "MS", "missouri": "MO",
    "montana": "MT", "nebraska": "NE", "nevada": "NV", "new hampshire": "NH",
    "new jersey": "NJ", "new mexico": "NM", "new york": "NY", "north carolina": "NC",
    "north dakota": "ND", "ohio": "OH", "oklahoma": "OK", "oregon": "OR",
    "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC",
    "south dakota": "SD", "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT",
    "virginia": "VA", "washington": "WA", "washington state": "WA", "west virginia": "WV",
    "wisconsin": "WI", "wyoming": "WY", "puerto rico": "PR", "guam": "GU",
    "alberta": "AB", "british columbia": "BC", "manitoba": "MB", "new brunswick": "NB",
    "newfoundland and labrador": "NL", "nova scotia": "NS", "ontario": "ON",
    "prince edward island": "PE", "quebec": "QC", "saskatchewan": "SK",
    "northwest territories": "NT", "nunavut": "NU", "yukon": "YT",
}  # fmt: skip


@dataclass(frozen=True)
class Location:
    """What is known of where the caller is."""

    country: str | None = None  # ISO region code, e.g. US
    region: str | None = None  # state/province code, e.g. IL
    place: str | None = None  # e.g. "Chicago, IL"
    area_code: str | None = None  # NANP area code (NPA), e.g. 312
    zip: str | None = None  # entered by the caller
    county: str | None = None  # from the ZIP
    source: str = "number"  # "number" (area code) or "zip"


@dataclass(frozen=True)
class ZipInfo:
    zip: str
    state: str
    county: str = ""
    city: str = ""


ZipLookup = Callable[[str], ZipInfo | None]


@lru_cache(maxsize=65536)
def locate_number(e164: str | None) -> Location | None:
    """The caller's location from their number's area code (None when unknown).

    Cached (repeat callers): the geocoder costs about 0.1 ms a number.
    """
    if not e164 or not e164.startswith("+"):
        return None
    try:
        parsed = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return None
    country = phonenumbers.region_code_for_number(parsed)
    area = None
    if parsed.country_code == 1:
        area = str(parsed.national_number)[:3]
    from phonenumbers import geocoder  # imported here: its data is most of a CLI's start

    place = geocoder.description_for_number(parsed, "en") or None
    return Location(country, _region(place), place, area)


def warm() -> None:
    """Import the geocoder's and the time zones' data now: the daemon does at its start,
    off the event loop, so that no call pays for it; commands that never locate a
    caller (``config check``) never do."""
    locate_number("+13125550100")
    number_time_zones("+13125550100")


# A number whose prefix spans more zones than this (toll-free, some mobile ranges) says
# nothing useful about where its caller is.
MAX_NUMBER_ZONES = 3


@lru_cache(maxsize=65536)
def number_time_zones(e164: str | None) -> tuple[str, ...]:
    """The IANA time zones of a number's area (phonenumbers' timezone data), or ``()``.

    ``()`` when unknown or too wide to tell (more than ``MAX_NUMBER_ZONES``).
    """
    if not e164 or not e164.startswith("+"):
        return ()
    try:
        parsed = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return ()
    from phonenumbers import timezone as number_zones

    zones = tuple(
        z for z in number_zones.time_zones_for_number(parsed) if "/" in z and z != "Etc/Unknown"
    )
    return zones if 0 < len(zones) <= MAX_NUMBER_ZONES else ()


def _region(place: str | None) -> str | None:
    if not place:
        return None
    head, sep, tail = place.rpartition(", ")
    if sep and len(tail) == 2 and tail.isupper():
        return tail
    return REGION_NAMES.get(place.lower())


def locate_zip(zip_code: str, lookup: ZipLookup) -> Location | None:
    info = lookup(zip_code)
    if info is None:
        return None
    place = f"{info.city}, {info.state}" if info.city else info.state
    return Location("US", info.state, place, None, info.zip, info.county or None, "zip")


@dataclass(frozen=True)
class GeoRule:
    """Matches when any listed region, area code or ZIP prefix matches."""

    target: str  # route name
    regions: tuple[str, ...] = ()
    area_codes: tuple[str, ...] = ()
    zip_prefixes: tuple[str, ...] = ()


def match_rule(rules: Sequence[GeoRule], where: Location | None) -> GeoRule | None:
    """The first rule the location matches."""
    if where is None:
        return None
    for rule in rules:
        if where.zip and any(where.zip.startswith(p) for p in rule.zip_prefixes):
            return rule
        if where.area_code and where.area_code in rule.area_codes:
            return rule
        if where.region and where.region in rule.regions:
            return rule
    return None


def valid_zip(text: str) -> bool:
    return len(text) == 5 and text.isdigit()
