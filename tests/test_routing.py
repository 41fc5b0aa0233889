"""Routing decisions: route -> steps, round robin, fallbacks (pure, table-driven)."""

from __future__ import annotations

import pytest

from ctm_pbx.core.model import Fallback, FallbackKind
from ctm_pbx.core.routing import (
    RouteMemory,
    RoutingError,
    pick_weighted,
    plan_fallback,
    plan_route,
)
from tests.helpers import config

CFG = config()


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ("one", ["PJSIP/phone1,10"]),
        ("all", ["PJSIP/phone1&PJSIP/phone2&PJSIP/phone3,15"]),
        ("seq", ["PJSIP/phone1,5", "PJSIP/phone2,5"]),
    ],
)
def test_route_becomes_dial_steps(route: str, expected: list[str]) -> None:
    plan = plan_route(CFG.routes[route], CFG)
    assert [s.dial_args() for s in plan.steps] == expected
    assert plan.memory is None


def test_default_dial_template_uses_the_trunk() -> None:
    assert CFG.receiving_numbers["mobile"].dial_string == "PJSIP/+13125550109@carrier"


def test_round_robin_rotates_the_first_leg_across_calls() -> None:
    memory = None
    firsts = []
    for _ in range(6):
        plan = plan_route(CFG.routes["rr"], CFG, memory)
        firsts.append(plan.steps[0].rings[0].name)
        assert len(plan.steps) == 3  # every number still rings, in rotated order
        memory = plan.memory
    assert firsts == ["desk-1", "desk-2", "desk-3"] * 2


def test_round_robin_memory_survives_serialisation() -> None:
    plan = plan_route(CFG.routes["rr"], CFG)
    restored = RouteMemory.from_dict(plan.memory.as_dict())
    nxt = plan_route(CFG.routes["rr"], CFG, restored)
    assert nxt.steps[0].rings[0].name == "desk-2"


@pytest.mark.parametrize(
    ("weights", "picks"),
    [
        ([("a", 1), ("b", 1)], "abab"),
        ([("a", 3), ("b", 1)], "aaba" * 2),
        ([("a", 5), ("b", 1), ("c", 1)], "aabacaa"),
    ],
)
def test_smooth_weighted_round_robin(weights, picks) -> None:
    memory = RouteMemory()
    got = ""
    for _ in picks:
        i, memory = pick_weighted(weights, memory)
        got += weights[i][0]
    assert got == picks


def test_weighted_route_prefers_the_heavier_number() -> None:
    memory, firsts = None, []
    for _ in range(4):
        plan = plan_route(CFG.routes["wrr"], CFG, memory)
        memory = plan.memory
        firsts.append(plan.steps[0].rings[0].name)
    assert firsts.count("desk-1") == 3


@pytest.mark.parametrize(
    ("route", "kind", "dial"),
    [
        ("to-route", FallbackKind.ROUTE, None),  # the route is selected and planned by the caller
        ("to-number", FallbackKind.NUMBER, ["PJSIP/+13125550199@carrier,20"]),
        ("to-mobile", FallbackKind.NUMBER, ["PJSIP/+13125550109@carrier,20"]),
        ("seq", FallbackKind.BUSY, None),
        ("one", FallbackKind.HANGUP, None),
    ],
)
def test_fallbacks(route: str, kind: FallbackKind, dial) -> None:
    action = plan_fallback(
        CFG.routes[route].fallback, CFG, from_route=route, visited=frozenset({route})
    )
    assert action.kind is kind
    got = [s.dial_args() for s in action.plan.steps] if action.plan else None
    assert got == dial
    assert action.route == ("seq" if kind is FallbackKind.ROUTE else None)


def test_fallback_loop_is_refused() -> None:
    with pytest.raises(RoutingError, match="loop"):
        plan_fallback(
            Fallback(FallbackKind.ROUTE, "seq"), CFG, from_route="x", visited=frozenset({"seq"})
        )
