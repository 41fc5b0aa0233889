"""AGI mode: a route unrolled into Dial() steps, and the channel variables, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ctm_pbx.core.call.agi_plan import AgiStatus, channel_variables, plan_agi_call
from ctm_pbx.core.model import NumberInfo
from ctm_pbx.core.routing import RouteMemory
from tests.helpers import config

CFG = config(
    """\
  loop-a: {type: single, targets: [desk-1], fallback: {route: loop-b}}
  loop-b: {type: single, targets: [desk-2], fallback: {route: seq}}
"""
)
DID = "+13125550142"
T0 = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def number(route: str | None) -> NumberInfo:
    return NumberInfo(DID, "billboard", None, route)


@pytest.mark.parametrize(
    ("route", "dials", "end", "fallbacks"),
    [
        ("one", ["PJSIP/phone1,10"], "hangup", [(1, "hangup", None)]),
        ("all", ["PJSIP/phone1&PJSIP/phone2&PJSIP/phone3,15"], "hangup", [(1, "hangup", None)]),
        ("seq", ["PJSIP/phone1,5", "PJSIP/phone2,5"], "busy", [(2, "busy", None)]),
        (
            "to-route",
            ["PJSIP/phone1,20", "PJSIP/phone1,5", "PJSIP/phone2,5"],
            "busy",
            [(1, "route", "seq"), (3, "busy", None)],
        ),
        (
            "to-number",
            ["PJSIP/phone2,20", "PJSIP/+13125550199@carrier,20"],
            "hangup",
            [(1, "number", "+13125550199")],
        ),
        ("to-mobile", ["PJSIP/phone2,20", "PJSIP/+13125550109@carrier,20"], "hangup", None),
        (
            "loop-a",
            ["PJSIP/phone1,20", "PJSIP/phone2,20", "PJSIP/phone1,5", "PJSIP/phone2,5"],
            "busy",
            [(1, "route", "loop-b"), (2, "route", "seq"), (4, "busy", None)],
        ),
    ],
)
def test_route_unrolled(route, dials, end, fallbacks) -> None:
    plan = plan_agi_call(CFG, number(route), DID, {}, now=T0)
    assert plan.status == AgiStatus.OK and plan.route == route
    assert [s.dial_args() for s in plan.steps] == dials
    assert plan.end == end
    if fallbacks is not None:
        got = [(i, e.fallback, e.to_route or e.to_number) for i, e in plan.transitions]
        assert got == fallbacks


@pytest.mark.parametrize(
    ("info", "route_cfg", "status", "reason"),
    [
        (None, "", AgiStatus.UNKNOWN_NUMBER, "+13125550142 is not a tracking number"),
        (number(None), "", AgiStatus.NO_ROUTE, "+13125550142 has no route"),
        (number("gone"), "", AgiStatus.NO_ROUTE, "route 'gone' is not configured"),
    ],
)
def test_nothing_to_dial(info, route_cfg, status, reason) -> None:
    plan = plan_agi_call(CFG, info, DID, {}, now=T0)
    assert (plan.status, plan.reason, plan.steps) == (status, reason, ())
    variables = dict(channel_variables(plan, call_id=7, source=None))
    assert variables["CTM_STATUS"] == status and variables["CTM_DIAL_STEPS"] == "0"
    assert variables["CTM_DIAL"] == "" and variables["CTM_NEEDS_ARI"] == "0"


def test_round_robin_rotates_and_hands_back_its_memory() -> None:
    memory: dict[str, RouteMemory] = {}
    firsts = []
    for _ in range(4):
        plan = plan_agi_call(CFG, number("rr"), DID, memory, now=T0)
        memory.update(plan.memories)
        firsts.append(plan.steps[0].rings[0].name)
        assert len(plan.steps) == 3, "every receiving number, starting at the rotated one"
    assert firsts == ["desk-1", "desk-2", "desk-3", "desk-1"]
    assert set(plan.memories) == {"rr"}


def test_planning_does_not_change_the_memory_it_was_given() -> None:
    memory: dict[str, RouteMemory] = {}
    plan_agi_call(CFG, number("rr"), DID, memory, now=T0)
    assert memory == {}


def test_channel_variables_in_order_status_last() -> None:
    plan = plan_agi_call(CFG, number("seq"), DID, {}, now=T0)
    variables = channel_variables(
        plan,
        call_id=42,
        source="google-ads",
        source_label="Google Ads",
        visitor_id="v-1",
        confidence=0.9731,
    )
    assert variables == [
        ("CTM_CALL_ID", "42"),
        ("CTM_SOURCE", "google-ads"),
        ("CTM_SOURCE_LABEL", "Google Ads"),
        ("CTM_VISITOR_ID", "v-1"),
        ("CTM_CONFIDENCE", "0.9731"),
        ("CTM_ROUTE", "seq"),
        ("CTM_ROUTE_TYPE", "sequential"),
        ("CTM_NEEDS_ARI", "0"),
        ("CTM_DIAL", "PJSIP/phone1,5"),
        ("CTM_DIAL_STEPS", "2"),
        ("CTM_DIAL_1", "PJSIP/phone1,5"),
        ("CTM_DIAL_2", "PJSIP/phone2,5"),
        ("CTM_DIAL_END", "busy"),
        ("CTM_STATUS", "ok"),
    ]
