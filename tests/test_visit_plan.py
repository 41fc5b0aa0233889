"""The visit plan: a visit touches only its source's pools, and each target gets the pool
made for it, else a general pool of the source, else the source's own number."""

from __future__ import annotations

from ctm_pbx.core.visit_plan import VisitPlan, pool_for
from tests.helpers import config

CFG = config(
    """\
targets:
  sales: {number: "+13125550100"}
  support: {number: "+13125550110"}
pools:
  ads-sales: {source: google-ads, target: sales}
  ads-any: {source: google-ads}
"""
)


def test_each_onsite_source_has_its_pools_and_each_target_its_pool() -> None:
    plan = VisitPlan.of(CFG)
    assert set(plan.pools) == {"google-ads"}, "off-site sources take no pool number"
    assert [p.name for p in plan.pools["google-ads"]] == ["ads-sales", "ads-any"]
    by_target = {number: pool.name if pool else None for number, pool in plan.targets["google-ads"]}
    assert by_target == {"+13125550100": "ads-sales", "+13125550110": "ads-any"}


def test_a_target_without_a_pool_of_the_source_shows_the_sources_own_number() -> None:
    pools = VisitPlan.of(CFG).pools["google-ads"]
    assert pool_for(pools[:1], "support") is None
    assert pool_for(pools, "sales").name == "ads-sales"


def test_a_page_is_read_once_with_or_without_the_index() -> None:
    from ctm_pbx.core.source_index import SourceIndex

    url = "https://shop.example/?gclid=abc"
    for plan in (VisitPlan.of(CFG), VisitPlan.of(CFG, SourceIndex(CFG.sources))):
        facts, decision = plan.read_page(url, None)
        assert decision.source == "google-ads" and facts.param("gclid") == "abc"
