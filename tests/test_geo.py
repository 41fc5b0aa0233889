"""Caller location from the number, a ZIP, and geo rules, table-driven."""

from __future__ import annotations

import pytest

from ctm_pbx.core.geo import GeoRule, Location, ZipInfo, locate_number, locate_zip, match_rule


@pytest.mark.parametrize(
    ("number", "country", "region", "area_code"),
    [
        ("+13125550100", "US", "IL", "312"),
        ("+12125550100", "US", "NY", "212"),
        ("+12065550100", "US", "WA", "206"),  # "Washington State"
        ("+16475550100", "CA", "ON", "647"),  # "Ontario"
        ("+18005550100", "US", None, "800"),  # toll-free: nowhere
        ("+442071234567", "GB", None, None),
    ],
)
def test_locate_number(number, country, region, area_code) -> None:
    where = locate_number(number)
    assert (where.country, where.region, where.area_code) == (country, region, area_code)
    assert where.source == "number"


@pytest.mark.parametrize("number", [None, "", "anonymous", "5550100", "+1"])
def test_unknown_callers_have_no_location(number) -> None:
    assert locate_number(number) is None


RULES = [
    GeoRule("chicago", zip_prefixes=("606",)),
    GeoRule("nyc", area_codes=("212", "646")),
    GeoRule("midwest", regions=("IL", "WI", "IN")),
]


@pytest.mark.parametrize(
    ("where", "target"),
    [
        (Location("US", "IL", area_code="312"), "midwest"),
        (Location("US", "NY", area_code="212"), "nyc"),
        (Location("US", "NY", area_code="518"), None),
        (Location("US", "IL", zip="60606", source="zip"), "chicago"),
        (Location("US", "IL", zip="62701", source="zip"), "midwest"),
        (Location("GB"), None),
        (None, None),
    ],
)
def test_first_matching_rule(where, target) -> None:
    rule = match_rule(RULES, where)
    assert (rule.target if rule else None) == target


def test_locate_zip() -> None:
    table = {"60606": ZipInfo("60606", "IL", "Cook County", "Chicago")}
    where = locate_zip("60606", table.get)
    assert (where.region, where.zip, where.county, where.source) == (
        "IL",
        "60606",
        "Cook County",
        "zip",
    )
    assert locate_zip("99999", table.get) is None
