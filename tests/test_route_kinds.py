"""Each kind of route is its own type: a rule can read only what its kind has."""

from __future__ import annotations

import dataclasses

from ctm_pbx.core.model import (
    GeoRoute,
    IvrRoute,
    QueueRoute,
    Route,
    RouteOrder,
    RouteType,
    SequentialRoute,
)
from tests.helpers import config

CFG = config(
    """\
  menu: {type: ivr, prompts: ctm-pbx/main-menu, options: {1: {route: one}}}
  region:
    type: geo
    rules: [{states: [IL], route: one}]
    default: {route: all}
  q: {type: queue, targets: [desk-1, desk-2], max_wait: 45}
"""
)
KIND = {
    RouteType.SINGLE: Route,
    RouteType.SIMULTANEOUS: Route,
    RouteType.SEQUENTIAL: SequentialRoute,
    RouteType.GEO: GeoRoute,
    RouteType.IVR: IvrRoute,
    RouteType.QUEUE: QueueRoute,
}


def test_the_loader_builds_each_kind_as_its_type() -> None:
    assert {r.type for r in CFG.routes.values()} == set(RouteType)
    for route in CFG.routes.values():
        assert type(route) is KIND[route.type], route.name


def test_a_kind_has_its_own_settings_and_no_others() -> None:
    routes = CFG.routes
    assert routes["rr"].order is RouteOrder.ROUND_ROBIN
    assert routes["q"].queue.max_wait == 45 and routes["q"].queue_name == "ctm-q"
    assert routes["region"].geo_rules[0].target == "one"
    assert [o.key for o in routes["menu"].options] == ["1"]
    plain = {f.name for f in dataclasses.fields(Route)}
    assert not plain & {"order", "queue", "geo_rules", "options", "prompts", "default"}
    assert not hasattr(routes["one"], "order") and not hasattr(routes["menu"], "queue")
